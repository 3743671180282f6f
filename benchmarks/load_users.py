"""The HTTP users of `benchmarks/load.py`, run as load processes of their own: each process holds many users,
each user a logged-in account that repeats "pick an action, send it, think" until the end time.

The mix is what a marketplace front end and API clients send: mostly searches and offer details, some
session checks, forecasts and bookings, rare logins and 10,000-row exports. A user waits for each answer
before thinking (exponential think time), so the offered rate follows from users / (think + latency).
"""
from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from array import array
from typing import Any

# action -> weight (share of a user's requests)
MIX = {"search": 50, "detail": 18, "auth_me": 12, "forecast": 8, "booking_create": 3, "booking_get": 4,
       "auth_login": 1, "export": 0.5}
CLIENT_TIMEOUT_S = 15.0


def user_worker(base: str, users: int, cfg: dict[str, Any], start_at: float, end_at: float, result_q, idx: int) -> None:
    """Process entry point: run `users` users from `start_at` to `end_at` (time.time()), then report
    {route: (latencies in ms as float32 bytes, {status: count})}."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result_q.put((idx, asyncio.run(_run(base, users, cfg, start_at, end_at, idx))))


async def _run(base: str, users: int, cfg: dict[str, Any], start_at: float, end_at: float, idx: int) -> dict:
    import aiohttp

    from benchmarks.search_data import query_mix

    rnd = random.Random(1000 + idx)
    lat: dict[str, array] = {k: array("f") for k in MIX}
    status: dict[str, dict[str, int]] = {k: {} for k in MIX}
    actions, weights = list(MIX), list(MIX.values())
    accounts, offers, predicts, sandbox = cfg["accounts"], cfg["offer_ids"], cfg["predict_paths"], cfg["sandbox_offers"]
    bookings: list[tuple[str, str]] = []  # (account email, booking id) this process made
    tokens: dict[str, dict] = {}  # email -> this process's own session: access token, refresh token, renew at
    locks: dict[str, asyncio.Lock] = {a["email"]: asyncio.Lock() for a in accounts}

    async def token(session, acc: dict) -> str:
        """This process's access token of the account, refreshed like a client does before it expires (a
        refresh token is spent on use, so each process holds a session of its own)."""
        async with locks[acc["email"]]:
            t = tokens.get(acc["email"])
            if t is None or time.time() > t["renew_at"]:
                if t is None:
                    req = session.post(base + "/auth/login", json={"email": acc["email"], "password": acc["password"]})
                else:
                    req = session.post(base + "/auth/refresh", json={"refresh_token": t["refresh"]})
                async with req as r:
                    body = await r.json()
                    if r.status != 200:
                        raise RuntimeError(f"session for the load: {r.status} {body}")
                t = tokens[acc["email"]] = {"access": body["access_token"], "refresh": body["refresh_token"],
                                            "renew_at": time.time() + body["expires_in"] * 0.8}
            return t["access"]

    async def one(session, name: str, acc: dict) -> None:
        try:
            h = {"Authorization": f"Bearer {await token(session, acc)}"}
        except Exception as exc:  # the session itself could not be had: an error of the system too
            status[name][f"session:{type(exc).__name__}"] = status[name].get(f"session:{type(exc).__name__}", 0) + 1
            return
        method, url, kw = "GET", "", {"headers": h}
        if name == "search":
            url = query_mix(rnd)
        elif name == "detail":
            url = f"/providers/{rnd.choice(offers)}"
        elif name == "auth_me":
            url = "/auth/me"
        elif name == "forecast":
            url = rnd.choice(predicts)
        elif name == "export":
            url = "/providers/export?format=csv&gpu_type=" + rnd.choice(["H100", "A100-80GB", "L4"])
        elif name == "auth_login":
            method, url, kw = "POST", "/auth/login", {"json": {"email": acc["email"], "password": acc["password"]}}
        elif name == "booking_create":
            method, url = "POST", "/bookings"
            kw = {"headers": {**h, "Idempotency-Key": uuid.uuid4().hex},
                  "json": {"offer_id": rnd.choice(sandbox), "hours": 1}}
        elif name == "booking_get":
            mine = [b for e, b in bookings if e == acc["email"]]
            url = f"/bookings/{rnd.choice(mine)}" if mine else "/bookings"
        t0 = time.perf_counter()
        try:
            async with session.request(method, base + url, **kw) as r:
                body = await r.read()
                code = str(r.status)
                if name == "booking_create" and r.status == 201:
                    bookings.append((acc["email"], json.loads(body)["id"]))
                elif r.status >= 300:  # which error: the API's error format names it
                    try:
                        code += ":" + json.loads(body)["error"]["code"]
                    except (ValueError, KeyError, TypeError):
                        pass
        except Exception as exc:  # timeouts and refused connections are errors of the system under load
            code = type(exc).__name__
        took = time.perf_counter() - t0
        status[name][code] = status[name].get(code, 0) + 1
        if code[0] == "2":
            lat[name].append(took * 1000)

    async def user(session, k: int) -> None:
        acc = accounts[(idx * users + k) % len(accounts)]
        await asyncio.sleep(max(0.0, start_at - time.time()) + rnd.uniform(0, cfg["think_s"]))  # ramp-up
        while time.time() < end_at:
            await one(session, rnd.choices(actions, weights)[0], acc)
            await asyncio.sleep(rnd.expovariate(1 / cfg["think_s"]))

    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        for acc in accounts:  # log in before the start, not during the measured part
            await token(session, acc)
        await asyncio.gather(*(user(session, k) for k in range(users)))
    return {k: (lat[k].tobytes(), status[k]) for k in MIX}
