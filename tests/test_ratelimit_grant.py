"""The one token-bucket grant: what the limiter actor leases (`domain.ratelimit.TokenBucket.lease`) is what an
ingress replica spends, each token no earlier than the moment the shared bucket earns it."""
from __future__ import annotations

import pytest

from actors.limiter import TenantLimiter
from domain.ratelimit import TokenBucket, earned_after_s
from gateway.http.ratelimit import _Lease


def test_earned_after_s_reserves_ahead_at_the_rate():
    assert [earned_after_s(j, before=2.0, rate=4.0) for j in range(5)] == [0.0, 0.0, 0.25, 0.5, 0.75]
    assert earned_after_s(0, before=-1.5, rate=2.0) == 1.25  # the level was already 1.5 tokens in debt


async def test_actor_lease_is_the_domain_grant_and_the_replica_spends_it_on_time():
    limiter = TenantLimiter("t")
    grant = await limiter.lease("tenant", want=6, rate=10.0, burst=3, debt_cap=4)
    bucket = TokenBucket.full(10.0, 3, 0.0)
    expected = bucket.lease(0.0, 6, 4)
    assert (grant["granted"], grant["before"], grant["wait_s"]) == (expected.granted, expected.before, expected.wait_s)
    assert grant["granted"] == 6 and grant["before"] == pytest.approx(3.0, abs=1e-3)

    lease = _Lease(rate=10.0, burst=3, want=6)
    lease.add({"granted": 6, "before": 3.0, "rate": 10.0, "wait_s": 0.0}, t0=100.0)
    spent_at = []
    now = 100.0
    while lease.in_hand:
        wait = lease.spend(now)
        if wait == 0.0:
            spent_at.append(round(now - 100.0, 6))
        else:
            now += wait
    assert spent_at == [round(earned_after_s(j, 3.0, 10.0), 6) for j in range(6)] == [0, 0, 0, 0.1, 0.2, 0.3]
