"""What every simulator is built with: where the sandbox is served, its seed, latency and faults.

Apart from `host.py`, which imports every simulator, so a simulator can import this without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .faults import FaultInjector


@dataclass
class SandboxContext:
    base_url: str
    seed: int = 7
    latency_ms: int = 0
    faults: FaultInjector = field(default_factory=FaultInjector)

    def system_url(self, system: str) -> str:
        return f"{self.base_url}/{system}"
