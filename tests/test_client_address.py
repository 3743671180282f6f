"""Real client addresses through Serve's HAProxy (X-Forwarded-For from trusted proxies only), and login
throttles that one address cannot turn against another."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.http.client_address import real_client, throttle_key
from tests.auth_fixtures import PASSWORD, new_email, signup

LOOPBACK = ["127.0.0.1/32", "::1/128"]


@pytest.mark.parametrize("peer,xff,expected", [
    ("127.0.0.1", ["203.0.113.7"], "203.0.113.7"),                 # our HAProxy appended the client
    ("127.0.0.1", ["6.6.6.6, 203.0.113.7"], "203.0.113.7"),        # a forged entry stands to the left
    ("127.0.0.1", ["6.6.6.6", "203.0.113.7, 127.0.0.1"], "203.0.113.7"),  # a local proxy in front
    ("198.51.100.1", ["6.6.6.6"], "198.51.100.1"),                 # an untrusted peer's header is ignored
    ("127.0.0.1", [], "127.0.0.1"),
    ("127.0.0.1", ["not-an-ip"], "127.0.0.1"),
    ("127.0.0.1", ["[2001:db8::5]:443"], "2001:db8::5"),
])
def test_real_client(peer, xff, expected):
    assert real_client(peer, xff, LOOPBACK) == expected


def test_throttle_key_groups_ipv6_by_64():
    assert throttle_key("2001:db8:1:2::9") == throttle_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert throttle_key("203.0.113.7") == "203.0.113.7" and throttle_key(None) == "-"


async def test_client_address_reaches_the_replica_through_haproxy(http, pg):
    email = new_email("addr")
    r = await http.post("/auth/register", json={"email": email, "password": PASSWORD, "tenant_name": "addr"},
                        headers={"X-Forwarded-For": "203.0.113.77"})
    assert r.status_code == 201, r.text
    ip = await pg.fetchval("SELECT ip FROM audit_log WHERE tenant_id = $1 AND action = 'tenant.created'",
                           uuid.UUID(r.json()["tenant_id"]))
    assert ip == "203.0.113.0"  # the audit keeps the /24 of the address the client came from


def from_address(base: str, address: str):
    """A client connecting from another loopback address: an untrusted peer, like a remote client (only
    127.0.0.1/32 and ::1 are trusted proxies)."""
    import httpx

    return httpx.AsyncClient(base_url=base, timeout=15, transport=httpx.AsyncHTTPTransport(local_address=address))


async def test_failed_logins_from_one_address_do_not_lock_out_another(serve_app, settings):
    async with from_address(serve_app, "127.0.0.2") as attacker, from_address(serve_app, "127.0.0.3") as mine:
        victim = await signup(mine, "victim")
        statuses = []
        for i in range(settings.login_max_failures_ip):
            # the victim's account first, until this address may not try it any more; then others
            email = victim.email if i < settings.login_max_failures_account else new_email("spray")
            r = await attacker.post("/auth/login", json={"email": email, "password": "wrong password!!"})
            statuses.append(r.status_code)
        assert statuses == [401] * settings.login_max_failures_ip, statuses
        # the attacker's address is throttled now, for every account
        for email in (victim.email, new_email("other")):
            r = await attacker.post("/auth/login", json={"email": email, "password": PASSWORD})
            assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
        # the victim, from its own address, logs in
        r = await mine.post("/auth/login", json={"email": victim.email, "password": PASSWORD})
        assert r.status_code == 200, r.text


async def test_forged_forwarded_for_buys_no_fresh_budget(serve_app, settings):
    """An untrusted client writing X-Forwarded-For itself is still counted under its own address."""
    async with from_address(serve_app, "127.0.0.4") as forger:
        codes = []
        for i in range(settings.login_max_failures_ip + 1):
            r = await forger.post("/auth/login", json={"email": new_email("forge"), "password": "wrong password!!"},
                                  headers={"X-Forwarded-For": f"198.51.100.{i + 1}"})
            codes.append(r.status_code)
    assert codes[:-1] == [401] * settings.login_max_failures_ip and codes[-1] == 429, codes


async def test_anonymous_rate_limit_is_per_real_address(serve_app, settings):
    """Two remote addresses have two anonymous buckets: a burst from one leaves the other's full."""
    async with from_address(serve_app, "127.0.0.5") as busy, from_address(serve_app, "127.0.0.6") as other:
        for _ in range(5):  # bounded: a loaded machine may serve one round slower than the bucket refills
            burst = [busy.post("/auth/refresh", json={}) for _ in range(80)]
            rs = await asyncio.gather(*burst, other.post("/auth/refresh", json={}))
            assert {r.status_code for r in rs} <= {422, 429}, {r.status_code for r in rs}
            busy_left = min(int(r.headers["X-RateLimit-Remaining"]) for r in rs[:-1])
            if busy_left <= settings.anon_rate_limit_burst - 5:
                break
    assert busy_left <= settings.anon_rate_limit_burst - 5  # the burst drew on its bucket
    assert rs[-1].status_code == 422
    assert int(rs[-1].headers["X-RateLimit-Remaining"]) >= settings.anon_rate_limit_burst - 2
