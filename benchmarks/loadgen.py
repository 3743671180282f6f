"""HTTP load generator, run as its own process; prints one JSON line of figures.

closed loop: N connections each sending the next request as soon as the previous answered (wrk when
installed, else aiohttp); open loop: requests started at a fixed rate whatever the server does, latency
counted from the scheduled start (no coordinated omission).

    python -m benchmarks.loadgen --base http://127.0.0.1:8000 --paths paths.txt --mode open --rate 500 --duration 10
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
import time

_WRK_LUA = r"""
local paths = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  i = math.random(#paths)
end
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,' ..
    '"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d}\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max))
end
"""


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def _summary(mode: str, lat: list[float], errors: int, duration: float, **extra) -> dict:
    return {"mode": mode, **extra, "duration_s": round(duration, 2), "requests": len(lat) + errors, "errors": errors,
            "rps": round(len(lat) / duration, 1), "p50_ms": round(_pct(lat, 50) * 1000, 2),
            "p95_ms": round(_pct(lat, 95) * 1000, 2), "p99_ms": round(_pct(lat, 99) * 1000, 2),
            "max_ms": round(max(lat, default=float("nan")) * 1000, 2)}


def closed_wrk(base: str, paths_file: str, conns: int, duration: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_WRK_LUA)
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{int(duration)}s", "--timeout", "5s", "-s", f.name, base, "--", paths_file]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRKJSON "))
    w = json.loads(line[len("WRKJSON "):])
    secs = w["duration_us"] / 1e6
    return {"mode": "closed", "tool": "wrk", "connections": conns, "duration_s": round(secs, 2),
            "requests": w["requests"], "errors": w["errors"] + w["non2xx"], "rps": round(w["requests"] / secs, 1),
            "p50_ms": w["p50_us"] / 1000, "p95_ms": w["p95_us"] / 1000, "p99_ms": w["p99_us"] / 1000,
            "max_ms": w["max_us"] / 1000}


async def closed_aiohttp(base: str, paths: list[str], conns: int, duration: float) -> dict:
    import aiohttp

    lat: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def worker(k: int, session) -> None:
        nonlocal errors
        i = k * 7919
        while time.perf_counter() < deadline:
            i += 1
            t = time.perf_counter()
            try:
                async with session.get(base + paths[i % len(paths)]) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                        continue
                lat.append(time.perf_counter() - t)
            except Exception:
                errors += 1

    t0 = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conns), timeout=timeout) as s:
        await asyncio.gather(*(worker(k, s) for k in range(conns)))
    return _summary("closed", lat, errors, time.perf_counter() - t0, tool="aiohttp", connections=conns)


async def open_loop(base: str, paths: list[str], rate: float, duration: float) -> dict:
    import aiohttp

    lat: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task] = set()

    async def one(session, path: str, scheduled: float) -> None:
        nonlocal errors
        try:
            async with session.get(base + path) as r:
                await r.read()
                if r.status != 200:
                    errors += 1
                    return
            lat.append(loop.time() - scheduled)
        except Exception:
            errors += 1

    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2000), timeout=timeout) as s:
        t0 = loop.time()
        for i in range(int(rate * duration)):
            scheduled = t0 + i / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = loop.create_task(one(s, paths[i % len(paths)], scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(list(tasks), timeout=10)
        elapsed = loop.time() - t0
    out = _summary("open", lat, errors, elapsed, tool="aiohttp", offered_rps=rate)
    out["achieved_rps"] = out.pop("rps")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--paths", required=True, help="file with one path?query per line")
    ap.add_argument("--mode", choices=["closed", "open"], required=True)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--duration", type=float, default=8)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.mode == "closed" and shutil.which("wrk"):
        result = closed_wrk(args.base, args.paths, args.conns, args.duration)
    else:
        paths = open(args.paths).read().split()
        if args.mode == "closed":
            result = asyncio.run(closed_aiohttp(args.base, paths, args.conns, args.duration))
        else:
            result = asyncio.run(open_loop(args.base, paths, args.rate, args.duration))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
