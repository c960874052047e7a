"""The system registry: one `SystemSpec` per external system, the only list of systems there is.

Tenancy (`register_tenant`, `check_tenant`, `webhook_verifiers`), the CLI (`tenants add` options), the
Dagster resources (`build_resources`) and the test fixtures all loop over `SYSTEMS`.

How to add a system (say Cin7 Core):
1. Write the package `systems/cin7/`: its client (on `core.http.HttpClient`), pydantic models, and
   `spec.py` with `SYSTEM = SystemSpec(...)`: a credentials model, `open_client`, `ping`, a
   `rate_limit` (take it from `DEFAULT_RATE_LIMITS` below), `cli_options` for `tenants add`, and a
   `webhook_verifier` if the system sends webhooks.
2. Add one entry to `SYSTEMS` below. Nothing else lists systems: `ml-connector tenants add` grows the
   options, `register_tenant(..., cin7={...})` accepts the credentials, the resource
   `SystemResource("cin7")` opens clients, and the receiver serves `/webhooks/cin7/<tenant>`.

Default budgets per credential, from the contracts (`contracts/<system>.md`); where the vendor
publishes none, the figure is the connector's assumption and the client still backs off on 429.
"""

from __future__ import annotations

from ..core.http import RateLimit
from .alerts.spec import SYSTEM as ALERTS
from .cin7.spec import SYSTEM as CIN7
from .cleo.spec import SYSTEM as CLEO
from .infor.spec import SYSTEM as INFOR
from .procurify.spec import SYSTEM as PROCURIFY
from .spec import SystemSpec, per_minute
from .stripe.spec import SYSTEM as STRIPE
from .wise.spec import SYSTEM as WISE

DEFAULT_RATE_LIMITS: dict[str, RateLimit] = {
    "infor": INFOR.rate_limit,  # 500 requests/min per tenant (no published default quota)
    "wise": WISE.rate_limit,  # none published (dynamic per account): assumed 100/s
    "stripe": STRIPE.rate_limit,  # 100/s live, 25/s test mode (the gateway picks by key)
    "cin7": per_minute(60),  # "60 calls per minute" per API application; over it: HTTP 503
    "procurify": PROCURIFY.rate_limit,  # none documented: a gentle assumed 5/s
    "cleo": RateLimit(per_second=5, burst=5),  # none found: assumed 5/s
}

# `alerts` is a tenant's alert channels: their secrets live in the vault like any credentials.
SYSTEMS: dict[str, SystemSpec] = {
    spec.name: spec for spec in (INFOR, WISE, STRIPE, CLEO, CIN7, PROCURIFY, ALERTS)
}


def system(name: str) -> SystemSpec:
    try:
        return SYSTEMS[name]
    except KeyError:
        raise ValueError(f"unknown system {name!r}; known: {', '.join(SYSTEMS)}") from None
