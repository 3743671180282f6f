"""Failed-login throttling (passwords and second factors alike), by real client address.

Three counters per window (`login_window_s`), each answering 429 with Retry-After once over its budget:
- per account AND client address (`login_max_failures_account`, 10): one address guessing one account;
- per client address (`login_max_failures_ip`, 50; IPv6 per /64): one address trying many accounts;
- per account from everywhere (`login_max_failures_account_total`, 100): many addresses on one account.
The last is above what one address can add (10 per account), so one address can neither lock another
address out of its own account nor out of anyone else's; only a spread attack meets that backstop.
A wrong TOTP or recovery code counts like a wrong password, and a correct password does not reset the
count while the second factor is still owed: only a completed login clears its account-and-address count.
"""
from __future__ import annotations

import hashlib

from cluster.settings import Settings
from gateway.http.client_address import throttle_key


def _keys(settings: Settings, email: str, ip: str | None) -> tuple[str, str, str]:
    p = f"{settings.redis_prefix}auth:fail:"
    acct = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    addr = throttle_key(ip)
    return f"{p}acct-ip:{acct}:{addr}", f"{p}ip:{addr}", f"{p}acct:{acct}"


def _budgets(settings: Settings) -> tuple[int, int, int]:
    return (settings.login_max_failures_account, settings.login_max_failures_ip,
            settings.login_max_failures_account_total)


async def throttled_for(redis, settings: Settings, email: str, ip: str | None) -> int:
    """Seconds the caller must wait (0 when not throttled)."""
    keys = _keys(settings, email, ip)
    async with redis.pipeline(transaction=False) as pipe:
        for k in keys:
            pipe.get(k).ttl(k)
        got = await pipe.execute()
    wait = 0
    for n, (count, ttl) in enumerate(zip(got[::2], got[1::2])):
        if count is not None and int(count) >= _budgets(settings)[n]:
            wait = max(wait, ttl)
    return max(0, wait)


async def record_failure(redis, settings: Settings, email: str, ip: str | None) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        for k in _keys(settings, email, ip):
            pipe.incr(k).expire(k, settings.login_window_s, nx=True)
        await pipe.execute()


async def clear_failures(redis, settings: Settings, email: str, ip: str | None) -> None:
    """After a completed login: this address's count on the account starts again (the others expire)."""
    await redis.delete(_keys(settings, email, ip)[0])
