"""Token bucket (FR-SEC-2): `rate` tokens per second up to `burst`; time is passed in, never read here."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Lease:
    """What `TokenBucket.lease` granted: `granted` tokens, the level `before` it (negative: reserved
    ahead), and when nothing was granted, `wait_s` until `want` tokens could be."""

    granted: int
    before: float
    wait_s: float


@dataclass
class TokenBucket:
    rate: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> "TokenBucket":
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        return cls(rate, float(burst), float(burst), now)

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, now: float, n: float = 1.0) -> bool:
        """Take `n` tokens if available."""
        self.refill(now)
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def lease(self, now: float, want: int, debt_cap: float = 0.0) -> "Lease":
        """Take up to `want` whole tokens at once, the one grant every limiter uses. With `debt_cap` > 0
        the level may go down to -debt_cap: those tokens are reserved ahead, token j (0-based) of the
        batch being earned `earned_after_s(j, before, rate)` seconds from `now`."""
        self.refill(now)
        before = self.tokens
        got = max(0, min(int(want), math.floor(before + debt_cap)))
        self.tokens -= got
        wait = 0.0 if got else max(0.0, (want - (before + debt_cap)) / self.rate)
        return Lease(got, before, wait)

    def grant(self, now: float, want: int) -> int:
        """Take up to `want` whole tokens that are there now; returns how many."""
        return self.lease(now, want).granted

    def wait_s(self, now: float, n: float = 1.0) -> float:
        """Seconds until `n` tokens are available (0 when they are)."""
        self.refill(now)
        return max(0.0, (n - self.tokens) / self.rate)

    def reconfigure(self, rate: float, burst: float, now: float) -> None:
        self.refill(now)
        self.rate, self.burst = rate, float(burst)
        self.tokens = min(self.tokens, self.burst)


def earned_after_s(j: int, before: float, rate: float) -> float:
    """Seconds after a lease until token j (0-based) of its batch is earned, `before` being the bucket level
    the lease saw: tokens beyond that level were reserved ahead and are earned at `rate`."""
    return max(0.0, (j + 1 - before) / rate)


def retry_after_header(wait_s: float) -> str:
    """HTTP Retry-After is whole seconds; round up so a client that waits that long finds a token."""
    return str(max(1, math.ceil(wait_s)))
