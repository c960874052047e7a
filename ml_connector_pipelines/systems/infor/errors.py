"""How the ION API Gateway, M3 and SyteLine say what went wrong: the HTTP layer's ErrorHooks for Infor.

- M3 MI REST: `{"errorMessage": "WCU0102 Customer does not exist   "}` (padded), and a NOK answer
  `{"@type": "ServerReturnedNOK", "Message": "..."}`;
- SyteLine Mongoose IDO REST: `{"Message": "..."}`;
- the gateway's OAuth token endpoint: `{"error": "...", "error_description": "..."}`.
"""

from __future__ import annotations

import httpx

from ...core.http import ErrorHooks, generic_error_message


def infor_error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("errorMessage", "Message", "error_description"):
            if isinstance(body.get(key), str) and body[key].strip():
                return body[key].strip()
    return generic_error_message(response)


INFOR_HOOKS = ErrorHooks(message=infor_error_message)
