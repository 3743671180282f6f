"""Token-bucket grants (domain.ratelimit) when only part of a request can be served."""
from __future__ import annotations

import pytest

from domain.ratelimit import TokenBucket


def test_a_partial_grant_has_no_wait():
    b = TokenBucket.full(rate=10, burst=3, now=0.0)
    lease = b.lease(0.0, 10)
    assert (lease.granted, lease.before, lease.wait_s) == (3, 3.0, 0.0)


def test_nothing_granted_waits_for_the_missing_fraction_only():
    b = TokenBucket.full(rate=10, burst=5, now=0.0)
    assert b.grant(0.0, 5) == 5
    lease = b.lease(0.05, 4)              # half a token earned since
    assert lease.granted == 0 and lease.before == pytest.approx(0.5)
    assert lease.wait_s == pytest.approx(0.35)
