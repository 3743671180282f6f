"""Load pieces of the WebSocket benchmark: the replayed marketplace feed, user-like subscriptions, and the
client worker process (many `PriceStreamClient` connections per process)."""
from __future__ import annotations

import asyncio
import base64
import csv
import json
import os
import random
import re
import resource
import time
import uuid
from array import array
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

FEED_CSV = Path("/work/shared/data/primeintellect_marketplace_tugot17/by_provider.csv")
# The marketplace feed has no regions: each offer gets one, stable per (provider, gpu).
REGIONS = ["us-east-1", "us-west-2", "us-central1", "eu-west-1", "eu-central-1", "europe-west4", "ca-central-1",
           "asia-northeast1", "australia-southeast1", "eu-north1"]
# Light clients read only these two things of a `prices` frame (either JSON spacing: gateway or bare baseline).
_PRICES = re.compile(rb'^\{"type": ?"prices"')
_FIRST_TS = re.compile(rb'"ts": ?"([^"]+)"')
FAMILIES = {"A100": ["A100", "A100 PCIe", "A100 SXM"], "H100": ["H100", "H100 SXM", "H100 PCIe"],
            "H200": ["H200"], "B200": ["B200"], "GH200": ["GH200"]}


def load_feed(limit: int) -> list[dict[str, Any]]:
    """Price updates replayed from the recorded marketplace (snapshot order); old_price is the offer's last price."""
    with open(FEED_CSV, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["timestamp"])
    last: dict[tuple[str, str, str], Decimal] = {}
    ids: dict[tuple[str, str, str], str] = {}
    out: list[dict[str, Any]] = []
    rng = random.Random(11)
    while len(out) < limit:
        for r in rows:
            gpu = r["gpu_type"] + (f"_{r['socket_type']}" if r["socket_type"] else "")
            region = REGIONS[sum(map(ord, r["provider"] + gpu)) % len(REGIONS)]
            key = (r["provider"], gpu, region)
            price = Decimal(r["min"]) * (Decimal(1) + Decimal(rng.randint(-30, 30)) / 1000)
            price = price.quantize(Decimal("0.0001"))
            ids.setdefault(key, str(uuid.uuid4()))
            out.append({"offer_id": ids[key], "external_id": f"{r['provider']}:{gpu}:{region}", "provider": r["provider"],
                        "gpu_type": gpu, "region": region, "old_price": last.get(key), "new_price": price,
                        "availability": "up" if int(r["count"]) > 0 else "down"})
            last[key] = price
            if len(out) >= limit:
                break
    return out


def user_filters(n: int, seed: int = 5) -> list[dict[str, Any]]:
    """Subscriptions like real users': one or two GPU types (the popular ones more often), sometimes a region
    or continent, sometimes a round price cap."""
    rng = random.Random(seed)
    fams, weights = list(FAMILIES), [30, 35, 15, 12, 8]
    caps = {"A100": [1.25, 1.5, 2.0], "H100": [2.0, 2.5, 3.0], "H200": [3.0, 3.5, 4.0], "B200": [4.0, 5.0, 6.0],
            "GH200": [1.5, 2.0, 2.5]}
    out = []
    for _ in range(n):
        first = rng.choices(fams, weights)[0]
        chosen = [first]
        if rng.random() < 0.3:
            chosen.append(rng.choice([f for f in fams if f != first]))
        f: dict[str, Any] = {"gpu_type": [rng.choice(FAMILIES[c]) if rng.random() < 0.4 else c for c in chosen]}
        x = rng.random()
        if x < 0.15:
            f["continent"] = rng.choice(["NA", "EU"])
        elif x < 0.25:
            f["region"] = rng.choice(REGIONS)
        if rng.random() < 0.3:
            f["max_price"] = rng.choice(caps[first])
        out.append(f)
    return out


def _ts(v: str) -> float:
    return datetime.fromisoformat(v).timestamp()


class LeanClient(asyncio.Protocol):
    """A minimal RFC 6455 client for load generation (the gateway is what is measured, not this client):
    upgrade with the token in the Authorization header, one subscribe, parse unmasked server frames.

    `light`: a `prices` frame is not parsed as JSON: its updates are counted (one `"seq":` each) and each is
    given the latency of the frame's first, oldest update (an upper bound). About ten times cheaper per
    update, so a few cores of clients can keep up with a gateway sending a million updates/s; the probe
    clients (`gpubroker.stream.PriceStreamClient`) still parse everything and check sequence numbers.
    """

    def __init__(self, host: str, port: int, token: str, flt: dict, sink: "Sink", light: bool = False):
        self.req = (f"GET /v1 HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                    f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n").encode()
        self.sub = json.dumps({"type": "subscribe", "id": "s", "filter": flt}).encode()
        self.sink = sink
        self.buf = bytearray()
        self.upgraded = False
        self.ready = asyncio.get_running_loop().create_future()
        self.last_seq = 0
        self.transport: asyncio.Transport | None = None
        self.refusal: str | None = None
        self.light = light

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.req)

    def connection_lost(self, exc) -> None:
        if not self.ready.done():
            self.ready.set_result(False)
        else:
            self.sink.counts["disconnects"] += 1

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
        m = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big") if n else b""
        self.transport.write(head + mask + masked)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.refusal = bytes(buf[:40]).decode(errors="replace")
                self.transport.close()
                return
            del buf[:end + 4]
            self.upgraded = True
            self._send(1, self.sub)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b1, b2 = buf[pos], buf[pos + 1]
            n, hl = b2 & 0x7F, 2
            if n == 126:
                if size - pos < 4:
                    break
                n, hl = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif n == 127:
                if size - pos < 10:
                    break
                n, hl = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if size - pos < hl + n:
                break
            payload = bytes(buf[pos + hl:pos + hl + n])
            pos += hl + n
            op = b1 & 0x0F
            if op == 1:
                self._text(payload)
            elif op == 9:
                self._send(10, payload)
            elif op == 8:
                self.refusal = self.refusal or f"close {int.from_bytes(payload[:2], 'big') if payload else 1005}"
                self.transport.close()
        del buf[:pos]

    def _text(self, payload: bytes) -> None:
        if self.light and self.ready.done() and _PRICES.match(payload):
            self.sink.light_frame(payload)
            return
        msg = json.loads(payload)
        if msg["type"] == "prices":
            fresh = [u for u in msg["updates"] if u["seq"] > self.last_seq]
            self.sink.counts["duplicates"] += len(msg["updates"]) - len(fresh)
            if fresh:
                self.last_seq = fresh[-1]["seq"]
                self.sink.frame(fresh, self.sink.lat)
        elif msg["type"] == "subscribed" and not self.ready.done():
            self.ready.set_result(True)
        else:
            self.sink.event(msg)


class Sink:
    """Counts and latencies of one worker process."""

    def __init__(self):
        self.lat = array("f")  # lean clients
        self.lat_probe = array("f")  # gpubroker.stream.PriceStreamClient
        self.counts = {"delivered": 0, "frames": 0, "lagged": 0, "dropped": 0, "errors": 0, "duplicates": 0,
                       "disconnects": 0, "probe_delivered": 0}

    def frame(self, updates: list[dict], lat: array) -> None:
        now = time.time()
        self.counts["frames"] += 1
        self.counts["delivered"] += len(updates)
        for u in updates:
            lat.append((now - _ts(u["ts"])) * 1000)

    def light_frame(self, payload: bytes) -> None:
        n = payload.count(b'"seq":')
        m = _FIRST_TS.search(payload)
        self.counts["frames"] += 1
        self.counts["delivered"] += n
        if m:
            self.lat.extend(array("f", [(time.time() - _ts(m.group(1).decode())) * 1000]) * n)

    def event(self, ev: dict) -> None:
        t = ev.get("type")
        if t == "lagged":
            self.counts["lagged"] += 1
            self.counts["dropped"] += ev.get("dropped", 0)
        elif t == "error":
            self.counts["errors"] += 1


def client_worker(url: str, token: str, filters: list[dict], n_probe: int, ready_q, stop_evt, result_q,
                  idx: int, light: bool = False, cbin: str | None = None) -> None:
    """One process holding len(filters) connections (the first n_probe through `PriceStreamClient`, the rest
    `LeanClient`s, light ones if `light`, or connections of the C client `cbin` (benchmarks/ws_cload.c))."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_worker(url, token, filters, n_probe, ready_q, stop_evt, result_q, idx, light, cbin))


class CClients:
    """The lean connections of one worker run by the C client (benchmarks/ws_cload.c) in its own process."""

    def __init__(self, cbin: str, url: str, token: str, filters: list[dict]):
        import tempfile
        from urllib.parse import urlparse

        self.dir = tempfile.mkdtemp(prefix="ws-cload-")
        self.subs, self.lat = os.path.join(self.dir, "subs.txt"), os.path.join(self.dir, "lat.f32")
        with open(self.subs, "w") as f:
            for flt in filters:
                f.write(json.dumps({"type": "subscribe", "id": "s", "filter": flt}) + "\n")
        u = urlparse(url)
        self.args = [cbin, u.hostname, str(u.port), token, self.subs, self.lat]
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> tuple[int, int]:
        """Connect every connection; (subscribed, failed)."""
        self.proc = await asyncio.create_subprocess_exec(*self.args, stdin=asyncio.subprocess.PIPE,
                                                         stdout=asyncio.subprocess.PIPE)
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 360)).decode().split()
        if not line or line[0] != "READY":
            raise RuntimeError(f"C client did not start: {line}")
        return int(line[1]), int(line[2])

    async def stop(self, sink: "Sink") -> None:
        """Stop, add its counts to `sink` and its latencies (ms per update) to sink.lat."""
        import shutil

        self.proc.stdin.write(b"STOP\n")
        await self.proc.stdin.drain()
        counts = json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 60))
        await self.proc.wait()
        for k in ("delivered", "frames", "lagged", "dropped", "errors", "disconnects"):
            sink.counts[k] += counts[k]
        with open(self.lat, "rb") as f:
            sink.lat.frombytes(f.read())
        shutil.rmtree(self.dir, ignore_errors=True)


async def _worker(url, token, filters, n_probe, ready_q, stop_evt, result_q, idx, light=False, cbin=None) -> None:
    from urllib.parse import urlparse

    from gpubroker.stream import PriceStreamClient

    sink = Sink()
    host, port = urlparse(url).hostname, urlparse(url).port
    loop = asyncio.get_running_loop()
    probes: list[PriceStreamClient] = []
    sem = asyncio.Semaphore(32)
    ok = 0

    def probe_updates(updates: list[dict]) -> None:
        sink.counts["probe_delivered"] += len(updates)
        sink.frame(updates, sink.lat_probe)

    async def probe_run(c: PriceStreamClient) -> None:
        try:
            await c.run()
        except Exception:
            sink.counts["errors"] += 1

    async def start_one(i: int, f: dict) -> None:
        nonlocal ok
        async with sem:
            try:
                if i < n_probe:
                    c = PriceStreamClient(url, token, subscriptions={"s": f}, on_updates=probe_updates,
                                          on_event=sink.event, dedup_window=256, backoff_base=1.0)
                    probes.append(c)
                    loop.create_task(probe_run(c))
                    await asyncio.wait_for(c.ready.wait(), 90)
                else:
                    _t, proto = await loop.create_connection(lambda: LeanClient(host, port, token, f, sink, light), host, port)
                    if not await asyncio.wait_for(proto.ready, 90):
                        raise ConnectionAbortedError(proto.refusal or "closed before subscribed")
                ok += 1
            except Exception as exc:
                sink.counts["errors"] += 1
                key = f"connect_error:{type(exc).__name__}:{str(exc)[:40]}"
                sink.counts[key] = sink.counts.get(key, 0) + 1

    cclients = CClients(cbin, url, token, filters[n_probe:]) if cbin else None
    if cclients is not None:
        filters = filters[:n_probe]
    await asyncio.gather(*(start_one(i, f) for i, f in enumerate(filters)))
    if cclients is not None:
        c_ok, c_failed = await cclients.start()
        ok += c_ok
        sink.counts["errors"] += c_failed
    ready_q.put((idx, ok, sink.counts["errors"]))
    while not stop_evt.is_set():
        await asyncio.sleep(0.1)
    if cclients is not None:
        await cclients.stop(sink)
    sink.counts["duplicates"] += sum(c.duplicates for c in probes)
    sink.counts["reconnects"] = sum(max(0, c.connects - 1) for c in probes)
    result_q.put((idx, sink.counts, sink.lat.tobytes(), sink.lat_probe.tobytes()))
