"""How many cores the gateway needs for scenario (a) of benchmarks/ws.py, from its parts, without clients.

Scenario (a) (10,000 user-like subscriptions, 500 updates/s) cannot be measured end to end on a 2-core machine:
the client processes need more CPU than the gateway. This measures what the gateway's cost is made of, on
this machine, so the question "do 2 cores carry it?" has an answer anyway:

- frames/s: one frame per (client, batch window) in which its subscription matched anything; computed from
  the replayed feed and `user_filters()` for several batch windows (`ws_batch_ms`);
- ingest: JSON decode, `UpdateView`, `update_json`, and `Fanout.publish` against the groups of all
  subscriptions, per update (each gateway process does this for every update);
- flush: `Fanout.flush` in Python per frame (the batch payload of each group, `Client.push` per member), with
  a transport whose `write` does nothing: everything but the socket write;
- send: one `send()` of a frame-sized message on loopback TCP, the sender's user and system CPU (on loopback
  the kernel runs the receiver's TCP path in the sender's context too, so this is more than a NIC costs).

The Python parts are timed in CPU time (`process_time`), so a busy machine does not inflate them.

    PYTHONPATH=. .venv/bin/python -m benchmarks.ws_capacity [--clients 10000]

Writes benchmarks/results/ws_capacity.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import selectors
import socket
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from websockets.protocol import OPEN  # noqa: E402

from benchmarks.ws import machine  # noqa: E402
from benchmarks.ws_load import load_feed, user_filters  # noqa: E402
from gateway.ws.fanout import Client, Fanout  # noqa: E402
from gateway.ws.filters import PriceFilter, UpdateView  # noqa: E402
from gateway.ws.protocol import update_json  # noqa: E402


def feed_docs(n: int) -> list[dict]:
    """The feed as published (benchmarks/ws.py `publish`), decoded."""
    ts = datetime.now(timezone.utc).isoformat()
    return [dict(u, version=1, pricing="on_demand", ts=ts, new_price=str(u["new_price"]),
                 old_price=str(u["old_price"]) if u["old_price"] is not None else None) for u in load_feed(n)]


def frames_per_s(filters: list[dict], docs: list[dict], rate: float, windows_ms: list[float]) -> dict:
    """Deliveries/s and, per batch window, frames/s: a client gets one frame per window its filter matched in."""
    views = [UpdateView(d) for d in docs]
    counts = Counter(json.dumps(f, sort_keys=True) for f in filters)
    hits = {}
    for key in counts:
        cf = PriceFilter.model_validate(json.loads(key)).compiled()
        hits[key] = [i for i, v in enumerate(views) if cf.matches(v)]
    secs = len(docs) / rate
    out = {"deliveries_per_s": round(sum(counts[k] * len(h) for k, h in hits.items()) / secs),
           "distinct_subscriptions": len(counts), "frames_per_s": {}}
    for ms in windows_ms:
        per_window = ms / 1000 * rate
        out["frames_per_s"][str(ms)] = round(sum(counts[k] * len({int(i // per_window) for i in h})
                                                 for k, h in hits.items()) / secs)
    return out


class _State:
    """websockets' `Protocol.state` is a property: keep that lookup in the measured path."""

    @property
    def state(self):
        return OPEN


def _conn() -> SimpleNamespace:
    return SimpleNamespace(protocol=_State(), paused=False, send_in_progress=None,
                           transport=SimpleNamespace(write=len))


async def python_costs(filters: list[dict], docs: list[dict], batch_updates: int) -> dict:
    """Ingest per update and flush per frame, both in Python only (the socket write is `len`)."""
    fo = Fanout(3600.0)
    compiled: dict[str, object] = {}
    for f in filters:
        key = json.dumps(f, sort_keys=True)
        cf = compiled.setdefault(key, PriceFilter.model_validate(f).compiled())
        c = Client(_conn(), "t", "u", 64, fo)
        fo.add(c)
        fo.set_subscriptions(c, {"s": cf})
    raw = [json.dumps(d).encode() for d in docs]
    ingest_s = flush_s = 0.0
    counted = {"n": 0}
    fo.on_flush = lambda fr, _d, _x, _o: counted.__setitem__("n", counted["n"] + fr)
    for start in range(0, len(raw), batch_updates):
        t0 = time.process_time()
        for seq, data in enumerate(raw[start:start + batch_updates], start + 1):
            d = json.loads(data)
            fo.publish(UpdateView(d), seq, update_json(d, seq), time.monotonic())
        t1 = time.process_time()
        fo._flush_handle.cancel()
        fo.flush()
        flush_s += time.process_time() - t1
        ingest_s += t1 - t0
    frames = counted["n"]
    return {"groups": len(fo.groups), "ingest_us_per_update": round(ingest_s / len(raw) * 1e6, 1),
            "flush_us_per_frame_python": round(flush_s / frames * 1e6, 2), "frames_measured": frames}


def loopback_send_cost(size: int, conns: int = 1000, rounds: int = 40) -> dict:
    """The sender's CPU per `send()` of `size` bytes to `conns` loopback TCP peers (TCP_NODELAY, as the gateway)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(conns)
    port = srv.getsockname()[1]
    cpus = sorted(os.sched_getaffinity(0))
    pid = os.fork()
    if pid == 0:  # the receiver: drain everything, on another CPU when there is one
        try:
            if len(cpus) > 1:
                os.sched_setaffinity(0, {cpus[-1]})
            sel = selectors.DefaultSelector()
            for _ in range(conns):
                c = socket.create_connection(("127.0.0.1", port))
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
            got, want = 0, conns * rounds * size
            while got < want:
                for key, _ in sel.select(10):
                    got += len(key.fileobj.recv(1 << 16))
        finally:
            os._exit(0)
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[0]})
    peers = [srv.accept()[0] for _ in range(conns)]
    for p in peers:
        p.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = b"x" * size
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(rounds):
        for p in peers:
            p.send(msg)
        time.sleep(0.02)  # let the receiver drain: no send ever blocks or queues
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    os.waitpid(pid, 0)
    os.sched_setaffinity(0, cpus)
    for p in peers:
        p.close()
    srv.close()
    n = conns * rounds
    return {"bytes": size, "user_us": round((r1.ru_utime - r0.ru_utime) / n * 1e6, 2),
            "sys_us": round((r1.ru_stime - r0.ru_stime) / n * 1e6, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=10000)
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--seconds", type=float, default=8.0, help="feed replayed for the model")
    ap.add_argument("--gateways", type=int, default=2, help="processes: each ingests every update")
    ap.add_argument("--batch-ms", type=float, default=20.0, help="the window of the Python flush measurement")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/ws_capacity.json"))
    args = ap.parse_args()
    windows = [10.0, 20.0, 30.0, 50.0, 75.0, 100.0]
    docs = feed_docs(int(args.rate * args.seconds))
    filters = user_filters(args.clients)
    model = frames_per_s(filters, docs, args.rate, windows)
    py = asyncio.run(python_costs(filters, docs, max(1, int(args.batch_ms / 1000 * args.rate))))
    deliveries_per_frame = model["deliveries_per_s"] / model["frames_per_s"][str(args.batch_ms)]
    update_bytes = sum(len(update_json(d, i)) + 1 for i, d in enumerate(docs)) / len(docs)
    size = 32 + int(deliveries_per_frame * update_bytes)  # a frame of the average batch
    send = loopback_send_cost(size)
    per_frame = send["user_us"] + send["sys_us"] + py["flush_us_per_frame_python"]
    ingest_cores = args.gateways * args.rate * py["ingest_us_per_update"] / 1e6
    report = {"benchmark": "ws_capacity", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(), "config": vars(args), "model": model, "python": py, "loopback_send": send,
              "gateway_us_per_frame_estimate": round(per_frame, 2),
              "gateway_cores_needed": {ms: round(f * per_frame / 1e6 + ingest_cores, 2)
                                       for ms, f in model["frames_per_s"].items()},
              "note": "cores = frames/s x (send user+sys + Python flush per frame) + gateways x rate x ingest; "
                      "leaves out the event loop's own work and NATS reads, so it is a lower bound"}
    print(json.dumps(report, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
