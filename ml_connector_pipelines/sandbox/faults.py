"""Named, deterministic fault profiles shared by every simulator.

A profile is a set of rates. For a given seed the sequence of faults a system sees is fixed, so a
failing test can be replayed exactly. The profiles:

- ``none``: every request succeeds.
- ``flaky``: what a normal bad day looks like: some 429s (with ``Retry-After`` in seconds, as an
  HTTP-date, as ``0``, or with no header), some 5xx, a few writes committed before the gateway
  answered 504, and the odd token revoked before its expiry.
- ``storm``: a 429 storm: half of all requests are rate limited.
- ``chaos``: all of the above at high rates, for soak tests of exactly-once behaviour.
- ``gateway_timeout``: like the ION gateway, a write is committed and the answer comes back as a 504
  only after 60 s (clients need a timeout above that, or see OutcomeUnknown). Slow by design: for
  manual runs of `sandbox serve`, not for the test suite.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime


@dataclass(frozen=True)
class FaultProfile:
    name: str
    description: str
    rate_limit: float = 0.0  # 429 with Retry-After in seconds (0 or 1)
    rate_limit_http_date: float = 0.0  # 429 with Retry-After as an HTTP-date
    rate_limit_no_header: float = 0.0  # 429 with no Retry-After at all
    server_error: float = 0.0  # 500 / 502 / 503, nothing committed
    commit_then_timeout: float = 0.0  # the request is processed, then the gateway answers 504
    token_revocation: float = 0.0  # a valid token is treated as revoked early
    timeout_hang_seconds: float = 0.0  # how long a commit-then-timeout waits before its 504


PROFILES: dict[str, FaultProfile] = {
    "none": FaultProfile("none", "every request succeeds"),
    "flaky": FaultProfile(
        "flaky",
        "some 429s (all Retry-After forms), 5xx, commit-then-504 and early token revocation",
        rate_limit=0.05,
        rate_limit_http_date=0.02,
        rate_limit_no_header=0.03,
        server_error=0.05,
        commit_then_timeout=0.04,
        token_revocation=0.02,
    ),
    "storm": FaultProfile(
        "storm",
        "a 429 storm: half of all requests are rate limited",
        rate_limit=0.25,
        rate_limit_no_header=0.25,
    ),
    "chaos": FaultProfile(
        "chaos",
        "every fault at high rates",
        rate_limit=0.08,
        rate_limit_http_date=0.04,
        rate_limit_no_header=0.08,
        server_error=0.10,
        commit_then_timeout=0.10,
        token_revocation=0.05,
    ),
    "gateway_timeout": FaultProfile(
        "gateway_timeout",
        "some writes are committed, then answered 504 after 60 s (the ION gateway's timeout)",
        commit_then_timeout=0.05,
        timeout_hang_seconds=60.0,
    ),
}

# Order matters only for determinism: one random draw per request picks at most one fault.
_REQUEST_FAULTS = (
    "rate_limit",
    "rate_limit_http_date",
    "rate_limit_no_header",
    "server_error",
    "commit_then_timeout",
)


@dataclass(frozen=True)
class Fault:
    kind: str
    status: int
    headers: dict[str, str]
    hang_seconds: float = 0.0


class FaultInjector:
    """Decides, per system and request, whether to inject a fault. Thread-safe."""

    def __init__(self, profile: str | FaultProfile = "none", seed: int = 0) -> None:
        self._lock = threading.Lock()
        self.configure(profile, seed)

    def configure(
        self,
        profile: str | FaultProfile,
        seed: int | None = None,
        systems: list[str] | None = None,
        **overrides: float,
    ) -> None:
        if isinstance(profile, str):
            if profile not in PROFILES:
                raise ValueError(f"unknown fault profile {profile!r}; known: {', '.join(PROFILES)}")
            profile = PROFILES[profile]
        if overrides:
            profile = replace(profile, **overrides)
        with self._lock:
            self.profile = profile
            if seed is not None:
                self.seed = seed
            self.systems = set(systems) if systems else None
            self._rngs: dict[str, random.Random] = {}
            self.injected: dict[str, int] = {}

    def describe(self) -> dict:
        return {
            "profile": asdict(self.profile),
            "seed": self.seed,
            "systems": sorted(self.systems) if self.systems else None,
            "injected": dict(self.injected),
        }

    def _rng(self, system: str) -> random.Random:
        rng = self._rngs.get(system)
        if rng is None:
            rng = self._rngs[system] = random.Random(f"{self.seed}:{system}")
        return rng

    def _applies(self, system: str) -> bool:
        return self.systems is None or system in self.systems

    def _count(self, kind: str) -> None:
        self.injected[kind] = self.injected.get(kind, 0) + 1

    def request_fault(self, system: str) -> Fault | None:
        """Called by the host once per simulator request."""
        with self._lock:
            if not self._applies(system):
                return None
            rng = self._rng(system)
            draw = rng.random()
            threshold = 0.0
            for kind in _REQUEST_FAULTS:
                threshold += getattr(self.profile, kind)
                if draw < threshold:
                    self._count(kind)
                    return self._build(kind, rng)
            return None

    def revoke_token(self, system: str) -> bool:
        """Asked by a simulator when it validates a bearer token: True means treat it as revoked."""
        with self._lock:
            if not self._applies(system) or self.profile.token_revocation <= 0:
                return False
            hit = self._rng(system + ":token").random() < self.profile.token_revocation
            if hit:
                self._count("token_revocation")
            return hit

    def _build(self, kind: str, rng: random.Random) -> Fault:
        if kind == "rate_limit":
            return Fault(kind, 429, {"Retry-After": str(rng.choice((0, 1)))})
        if kind == "rate_limit_http_date":
            when = datetime.now(UTC) + timedelta(seconds=1)
            return Fault(kind, 429, {"Retry-After": format_datetime(when, usegmt=True)})
        if kind == "rate_limit_no_header":
            return Fault(kind, 429, {})
        if kind == "server_error":
            return Fault(kind, rng.choice((500, 502, 503)), {})
        return Fault(kind, 504, {}, hang_seconds=self.profile.timeout_hang_seconds)
