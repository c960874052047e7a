from __future__ import annotations

from collections.abc import Iterator

import pytest

from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines_tests.systems.cin7.cin7_env import Cin7Company, fast_cin7


@pytest.fixture
def cin7_sandbox(sandbox_server: SandboxServer) -> Iterator[SandboxServer]:
    yield from fast_cin7(sandbox_server)


@pytest.fixture
def company(cin7_sandbox: SandboxServer) -> Cin7Company:
    return Cin7Company.new(cin7_sandbox)
