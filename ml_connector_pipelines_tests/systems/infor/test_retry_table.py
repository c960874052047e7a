"""Every M3 read the adapter sends is in the explicit table of transactions safe to retry."""

import re
from pathlib import Path

from ml_connector_pipelines.systems.infor import m3
from ml_connector_pipelines.systems.infor.m3 import SAFE_TO_RETRY, is_read

CALL = re.compile(r'"([A-Z]{3}\d{3}MI|MDBREADMI|EXPORTMI|CUGEX1MI)",\s*"(\w+)"')


def test_every_read_the_adapter_sends_is_safe_to_retry() -> None:
    # A read left out of the table turns a gateway 504 into an unknown outcome and fails the record.
    sources = Path(m3.__file__).parent.glob("*.py")
    used = {match.groups() for path in sources for match in CALL.finditer(path.read_text())}
    reads = {call for call in used if is_read(call[1])}
    assert reads, "no M3 reads found: the pattern no longer matches the adapter's calls"
    assert sorted(reads - SAFE_TO_RETRY) == []
