"""The WebSocket price gateway, in-process, against the real PostgreSQL, Redis and NATS JetStream."""
from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.ws.server import PriceGateway
from gpubroker.stream import PriceStreamClient, StreamRefused, backoff_delay
from tests.ws_fixtures import (make_tenant, next_frame, next_update, price_update, publish, running_gateway,
                               token_for, wait_for)


@pytest.fixture(scope="module")
async def gw(settings, pg, redis_client, nats_client):
    g = await running_gateway(settings, ws_heartbeat_s=0.3, ws_batch_ms=5)
    yield g
    await g.stop()


@pytest.fixture(scope="module")
async def tenant(pg):
    return await make_tenant(pg, ws_limit=50)


@pytest.fixture
def js(nats_client):
    return nats_client.jetstream()


def url(g) -> str:
    return f"ws://127.0.0.1:{g.port}/v1"


async def started(client: PriceStreamClient) -> asyncio.Task:
    task = asyncio.get_running_loop().create_task(client.run())
    await asyncio.wait_for(client.ready.wait(), 10)
    return task


async def stop(client: PriceStreamClient, task: asyncio.Task) -> None:
    await client.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_delta_reaches_matching_client_only(gw, settings, tenant, js):
    tok = token_for(settings, tenant)
    h100 = PriceStreamClient(url(gw), tok, subscriptions={"s": {"gpu_type": "h100-sxm", "provider": "RunPod"}})
    a100 = PriceStreamClient(url(gw), tok, auth_in_header=False,
                             subscriptions={"s": {"gpu_type": ["A100"], "continent": "EU", "max_price": 2.0}})
    t1, t2 = await started(h100), await started(a100)
    try:
        seq = await publish(settings, js, price_update("runpod", "H100_80GB_SXM5", "us-east-1", "2.49", "2.59"))
        u = await next_update(h100)
        assert u["seq"] == seq and u["provider"] == "runpod" and u["gpu_type"] == "H100_80GB_SXM5"
        assert u["new_price"] == "2.49" and u["old_price"] == "2.59" and u["region"] == "us-east-1"
        assert set(u) >= {"version", "seq", "offer_id", "external_id", "provider", "gpu_type", "region",
                          "old_price", "new_price", "availability", "ts"} and u["version"] == 1
        # Not for the A100 client; and neither a PCIe H100, another provider, a US A100, or one over its cap.
        await publish(settings, js, price_update("runpod", "H100_80GB_PCIe"))
        await publish(settings, js, price_update("lambdalabs", "H100_80GB_SXM5"))
        await publish(settings, js, price_update("runpod", "A100_80GB_SXM4", "us-west-2", "1.10"))
        await publish(settings, js, price_update("runpod", "A100_80GB_SXM4", "eu-west-1", "2.10"))
        seq_eu = await publish(settings, js, price_update("nebius", "A100_80GB_SXM4", "eu-north1", "1.55"))
        u = await next_update(a100)
        assert u["seq"] == seq_eu and u["provider"] == "nebius"
        await asyncio.sleep(0.3)
        assert h100.updates.empty() and a100.updates.empty()
        # heartbeats arrive on their own (0.3 s here)
        await wait_for(lambda: any(e["type"] == "heartbeat" for e in h100.events), 3)
    finally:
        await stop(h100, t1)
        await stop(a100, t2)


async def test_unsubscribe_stops_updates(gw, settings, tenant, js):
    c = PriceStreamClient(url(gw), token_for(settings, tenant), subscriptions={"a": {"gpu_type": "B200"}})
    t = await started(c)
    try:
        await c.subscribe("b", {"gpu_type": "GH200"})
        await wait_for(lambda: sum(e["type"] == "subscribed" for e in c.events) == 2)
        await c.unsubscribe("a")
        await wait_for(lambda: any(e == {"type": "unsubscribed", "id": "a"} for e in c.events))
        await publish(settings, js, price_update("runpod", "B200_180GB"))
        seq = await publish(settings, js, price_update("runpod", "GH200_96GB"))
        assert (await next_update(c))["seq"] == seq
        await asyncio.sleep(0.2)
        assert c.updates.empty()
    finally:
        await stop(c, t)


async def test_region_filter_excludes_other_regions(gw, settings, tenant, js):
    c = PriceStreamClient(url(gw), token_for(settings, tenant),
                          subscriptions={"s": {"region": "us-east-1", "provider": "regionco"}})
    t = await started(c)
    try:
        await publish(settings, js, price_update("regionco", "H100_80GB_SXM5", "us-west-2"))
        await publish(settings, js, price_update("regionco", "H100_80GB_SXM5", "eu-west-1"))
        seq = await publish(settings, js, price_update("regionco", "H100_80GB_SXM5", "us-east-1"))
        u = await next_update(c)  # updates arrive in stream order: the first one delivered is the us-east-1 one
        assert (u["seq"], u["region"]) == (seq, "us-east-1")
    finally:
        await stop(c, t)


async def test_client_drops_a_seq_delivered_twice(gw, settings, tenant, js):
    """Re-subscribing with an older resume_from_seq makes the gateway replay updates the client already has: the
    client counts them as duplicates and hands each seq to the application once."""
    c = PriceStreamClient(url(gw), token_for(settings, tenant), subscriptions={"s": {"provider": "dupco"}})
    t = await started(c)
    try:
        seqs = [await publish(settings, js, price_update("dupco", "L4", price=f"0.{i + 5}")) for i in range(3)]
        assert [(await next_update(c))["seq"] for _ in seqs] == seqs
        assert c.duplicates == 0
        await c.subscribe("s", {"provider": "dupco"}, resume_from_seq=seqs[0] - 1)
        await wait_for(lambda: any(e["type"] == "replayed" and e["count"] == 3 for e in c.events))
        assert c.duplicates == 3 and c.updates.empty()
        new = await publish(settings, js, price_update("dupco", "L4", price="0.9"))
        assert (await next_update(c))["seq"] == new
        assert c.last_seq == new
    finally:
        await stop(c, t)


async def test_invalid_token_is_refused(gw, settings, tenant):
    with pytest.raises(InvalidStatus) as exc:
        async with connect(url(gw), additional_headers={"Authorization": "Bearer not-a-jwt"}):
            pass
    assert exc.value.response.status_code == 401
    expired = token_for(settings, tenant, ttl_s=-10)
    async with connect(url(gw)) as ws:
        await ws.send(json.dumps({"type": "auth", "token": expired}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd.code == 4401
    # the client treats it as final instead of retrying forever
    c = PriceStreamClient(url(gw), "x.y.z", auth_in_header=False)
    with pytest.raises(StreamRefused) as refused:
        await asyncio.wait_for(c.run(), 5)
    assert refused.value.code == 4401


async def test_malformed_messages_get_error_frames_and_connection_survives(gw, settings, tenant, js):
    async with connect(url(gw), additional_headers={"Authorization": f"Bearer {token_for(settings, tenant)}"}) as ws:
        assert (await next_frame(ws))["type"] == "welcome"
        cases = [
            ("not json", "bad_json", None),
            ("[1, 2]", "bad_message", None),
            ('{"type": "bogus"}', "unknown_type", None),
            ('{"type": "subscribe", "filter": {"max_price": -1}}', "invalid", "filter.max_price"),
            ('{"type": "subscribe", "filter": {"colour": "red"}}', "invalid", "filter.colour"),
            ('{"type": "unsubscribe", "id": "never"}', "unknown_subscription", None),
            (json.dumps({"type": "auth", "token": "again"}), "invalid_token", None),
        ]
        for raw, code, field in cases:
            await ws.send(raw)
            err = await next_frame(ws)  # heartbeats come every 0.3 s here, between any two answers
            assert err["type"] == "error" and err["code"] == code, (raw, err)
            if field:
                assert err["details"][0]["field"] == field
        await ws.send(json.dumps({"type": "subscribe", "id": "x", "filter": {"gpu_type": "H200"}}))
        ack = await next_frame(ws)
        assert ack["type"] == "subscribed" and ack["filter"] == {"gpu_type": ["H200"]}
        seq = await publish(settings, js, price_update("vultr", "H200_141GB"))
        msg = await next_frame(ws)
        assert msg["type"] == "prices"
        assert [u["seq"] for u in msg["updates"]] == [seq]


async def test_tenant_over_limit_is_refused_and_slot_freed_on_disconnect(gw, settings, pg, redis_client):
    tid = await make_tenant(pg, ws_limit=1)
    hdr = {"Authorization": f"Bearer {token_for(settings, tid)}"}
    async with connect(url(gw), additional_headers=hdr) as first:
        assert (await next_frame(first))["type"] == "welcome"
        assert await gw.limiter.count(tid) == 1
        # a lost release (Redis blip) is healed: each process re-writes its own count
        await redis_client.hset(f"{settings.redis_prefix}ws:conns:{tid}", gw.limiter.instance, 7)
        await gw.limiter.sync()
        assert await gw.limiter.count(tid) == 1
        async with connect(url(gw), additional_headers=hdr) as second:
            with pytest.raises(ConnectionClosed) as closed:
                await second.recv()
        assert closed.value.rcvd.code == 4429
    await wait_for(lambda: not any(c.tenant_id == tid for c in gw.fanout.clients))
    for _ in range(250):  # the slot is released right after, in the same handler: wait for it, not a fixed time
        if await gw.limiter.count(tid) == 0:
            break
        await asyncio.sleep(0.02)
    assert await gw.limiter.count(tid) == 0
    async with connect(url(gw), additional_headers=hdr) as third:
        assert (await next_frame(third))["type"] == "welcome"


async def test_reconnecting_client_resumes_from_last_seq(gw, settings, tenant, js):
    from tests.conftest import free_port

    c = PriceStreamClient(url(gw), token_for(settings, tenant), subscriptions={"s": {"provider": "crusoecloud"}},
                          backoff_base=0.05, backoff_cap=0.2)
    t = await started(c)
    try:
        first = await publish(settings, js, price_update("crusoecloud", "H100_80GB_SXM5"))
        assert (await next_update(c))["seq"] == first
        # The link drops, and the client's retries find nothing listening until all five updates are in the
        # gateway: otherwise a quick reconnect takes some of them live instead of from the replay.
        c.url = f"ws://127.0.0.1:{free_port()}/v1"
        c.ws.transport.abort()
        missed = [await publish(settings, js, price_update("crusoecloud", "H200_141GB", price=f"3.{i}"))
                  for i in range(5)]
        await wait_for(lambda: gw.feed.last_seq >= missed[-1])
        c.url = url(gw)
        got = [(await next_update(c))["seq"] for _ in range(5)]
        assert got == missed and c.connects == 2
        assert any(e["type"] == "replayed" and e["count"] == 5 for e in c.events)
    finally:
        await stop(c, t)


async def test_resume_beyond_memory_reads_jetstream(settings, tenant, js, pg):
    s = settings.with_overrides(ws_ring_size=0, ws_replay_max=3)
    g = await PriceGateway(s, port=0).start()
    try:
        await asyncio.wait_for(g.feed.connected.wait(), 10)
        # one update first: on a fresh stream the five would be seqs 1..5, and resuming "after 0" means "new"
        await publish(settings, js, price_update("oblivus", "A100_80GB_PCIe", price="1.99"))
        seqs = [await publish(settings, js, price_update("oblivus", "A100_80GB_PCIe", price=f"1.{i}"))
                for i in range(5)]
        await wait_for(lambda: g.feed.last_seq >= seqs[-1])
        c = PriceStreamClient(url(g), token_for(settings, tenant), subscriptions={"s": {"provider": "oblivus"}})
        c.last_seq = seqs[0] - 1  # as if it had seen everything before these five
        t = await started(c)
        try:
            got = [(await next_update(c))["seq"] for _ in range(3)]
            assert got == seqs[-3:]  # bounded to ws_replay_max, the newest ones
            done = next(e for e in c.events if e["type"] == "replayed")
            assert done["truncated"] is True and done["count"] == 3
        finally:
            await stop(c, t)
    finally:
        await g.stop()


async def test_slow_client_is_told_lagged_and_does_not_delay_others(settings, tenant, js):
    g = await running_gateway(settings, ws_queue_max=4, ws_batch_ms=2)
    try:
        tok = token_for(settings, tenant)
        fast = PriceStreamClient(url(g), tok, subscriptions={"s": {"provider": "latitude"}})
        tf = await started(fast)
        # A slow client: subscribes, then stops reading (small receive buffer, websockets' read queue of 1).
        slow = await connect(url(g), additional_headers={"Authorization": f"Bearer {tok}"}, max_queue=1,
                             compression=None)
        await slow.send(json.dumps({"type": "subscribe", "filter": {"provider": "latitude"}}))
        await wait_for(lambda: len(g.fanout.clients) == 2 and all(c.group for c in g.fanout.clients))
        slow.transport.pause_reading()
        pad = "x" * 4000
        n = 800  # ~3 MB, published one after another: far more than the slow client's buffers hold
        sent = [await publish(settings, js, price_update("latitude", "H100_80GB_PCIe", external_id=f"{i}-{pad}"))
                for i in range(n)]
        got = 0
        while got < n:
            await next_update(fast, 10)
            got += 1
        assert fast.last_seq == max(sent)
        await wait_for(lambda: g.stats_counts["dropped"] > 0, 10)
        slow_state = next(c for c in g.fanout.clients if c.conn.remote_address != fast.ws.local_address)
        assert len(slow_state.queue) <= g.settings.ws_queue_max  # bounded, not growing
        slow.transport.resume_reading()
        lagged = None
        while lagged is None:
            msg = json.loads(await asyncio.wait_for(slow.recv(), 10))
            if msg["type"] == "lagged":
                lagged = msg
        assert lagged["dropped"] > 0 and lagged["from_seq"] <= lagged["to_seq"]
        last = None
        while last != max(sent):  # then it skips to the newest
            msg = json.loads(await asyncio.wait_for(slow.recv(), 10))
            if msg["type"] == "prices":
                last = msg["updates"][-1]["seq"]
        await slow.close()
        await stop(fast, tf)
    finally:
        await g.stop()


def test_backoff_is_exponential_capped_and_jittered():
    import random

    rng = random.Random(7)
    delays = [backoff_delay(a, base=0.5, cap=30, rng=rng) for a in range(12)]
    assert 0.25 <= delays[0] <= 0.5 and 4 <= delays[4] <= 8
    assert all(15 <= d <= 30 for d in delays[7:])  # capped at 30 s
    assert len({round(d, 6) for d in delays[7:]}) > 1  # jittered


def test_shared_frame_bytes_equal_websockets_serialization():
    from gateway.ws.protocol import frame_bytes, reference_frame_bytes

    for n in (0, 1, 125, 126, 127, 65535, 65536, 200_000):
        payload = b"x" * n
        assert frame_bytes(payload) == reference_frame_bytes(payload)


def test_filters_aliases_and_geography():
    from domain.geo import place as region_geo
    from gateway.ws.filters import PriceFilter, UpdateView

    def m(flt: dict, **u) -> bool:
        base = {"gpu_type": "H100_80GB_SXM5", "provider": "runpod", "region": "us-east-1", "new_price": "2.49"}
        return PriceFilter.model_validate(flt).compiled().matches(UpdateView({**base, **u}))

    assert m({"gpu_type": "h100"}) and m({"gpu_type": "H100 SXM"}) and not m({"gpu_type": "H100 PCIe"})
    assert not m({"gpu_type": "A10"}, gpu_type="A100_80GB_PCIe") and m({"gpu_type": "a100"}, gpu_type="A100-80G")
    assert m({"continent": "NA", "country": "us"}) and not m({"continent": "EU"})
    assert m({"max_price": 2.49}) and not m({"max_price": "2.48"})
    assert m({"pricing": "on_demand"}) and not m({"pricing": ["spot"]})
    assert m({"region": "US-EAST-1", "provider": ["RunPod", "vast"]}) and not m({"provider": "vast"})
    assert not m({"region": "us-east-1"}, region="us-west-2") and m({"region": ["eu-west-1", "us-east-1"]})
    assert region_geo("europe-west4") == ("NL", "EU") and region_geo("ap-northeast-1") == ("JP", "AS")
    assert region_geo("somewhere") == (None, None) and not m({"continent": "NA"}, region="somewhere")


def test_filter_gpu_answers_over_many_spellings():
    """Hundreds of provider spellings of H100/A100 variants: each update's name is resolved to its model once,
    and the filter's answer is the model's, with the price cap applied on top."""
    from gateway.ws.fanout import Group
    from gateway.ws.filters import PriceFilter, UpdateView

    f = PriceFilter.model_validate({"gpu_type": ["H100 SXM", "a100"], "max_price": 3}).compiled()
    names = [f"{m}_{gb}GB_{form}" for gb in range(80, 180) for m, form in (("H100", "SXM5"), ("H100", "PCIe"),
                                                                          ("A100", "PCIe"))]
    views = [UpdateView({"gpu_type": n, "region": "us-east-1", "new_price": "2.5"}) for n in names]
    want = ["PCIe" not in n or n.startswith("A100") for n in names]
    for _ in range(2):
        assert [f.matches(v) for v in views] == want
        assert [f.gpu_matches(v) for v in views] == want
    cheap = UpdateView({"gpu_type": "H100_80GB_SXM5", "new_price": "3.5"})
    assert not f.matches(cheap)  # the price cap applies whatever the GPU

    g1 = PriceFilter.model_validate({"gpu_type": "H200"}).compiled()
    g2 = PriceFilter.model_validate({"gpu_type": "B200"}).compiled()
    group = Group(("x",), [g1, g2])
    assert group.matches(UpdateView({"gpu_type": "B200_180GB", "new_price": "5"}))
    assert not group.matches(UpdateView({"gpu_type": "GH200_96GB", "new_price": "5"}))
    assert Group(("y",), [g1]).matches(UpdateView({"gpu_type": "H200_141GB", "new_price": "5"}))


async def test_connection_events_are_logged_without_pii(gw, settings, tenant):
    """SEC-LOG-REQ-1: connect (refused and accepted) and disconnect each leave a line with who, outcome, source."""
    import logging

    records: list[logging.LogRecord] = []

    class _Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("gpubroker.ws")
    handler, level = _Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with pytest.raises(InvalidStatus):
            async with connect(url(gw), additional_headers={"Authorization": "Bearer not-a-jwt"}):
                pass
        tok = token_for(settings, tenant)
        async with connect(url(gw), additional_headers={"Authorization": f"Bearer {tok}"}) as ws:
            assert (await next_frame(ws))["type"] == "welcome"
        await wait_for(lambda: any(r.msg == "ws.disconnect" for r in records), 5)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    events = [(r.msg, r.outcome, getattr(r, "reason", None)) for r in records if r.msg.startswith("ws.")]
    assert ("ws.connect", "fail", "token") in events
    assert ("ws.connect", "success", None) in events and ("ws.disconnect", "success", None) in events
    ok = next(r for r in records if r.msg == "ws.connect" and r.outcome == "success")
    assert ok.tenant_id == str(tenant) and ok.source_ip == "127.0.0.1" and ok.target == "ws:prices"
    assert tok not in " ".join(str(vars(r)) for r in records)


class _SocketStub:
    """Just the surface of a websockets connection that Client.push reads, recording written frames."""

    def __init__(self):
        from websockets.protocol import OPEN

        self.protocol = type("P", (), {"state": OPEN})()
        self.paused = False
        self.send_in_progress = None
        self.frames: list[dict] = []
        self.transport = self

    def write(self, frame: bytes) -> None:
        self.frames.append(json.loads(frame[4:] if frame[1] == 0x7E else frame[2:]))


async def test_long_flush_is_sliced_and_later_groups_take_updates_that_arrive_meanwhile(monkeypatch):
    """With thousands of clients one flush takes tens of ms: it yields to the loop every FLUSH_SLICE_S, and a
    group not yet visited sends the updates that arrived meanwhile in the same pass (no extra window)."""
    from gateway.ws import fanout as ws_fanout
    from gateway.ws.fanout import Client, Fanout
    from gateway.ws.filters import PriceFilter, UpdateView
    from gateway.ws.protocol import update_json

    monkeypatch.setattr(ws_fanout, "FLUSH_SLICE_S", 0.0)  # every slice ends after its first 64 frames
    fan = Fanout(batch_s=0.001)
    providers = [f"p{i}" for i in range(100)]
    conns = {}
    for p in providers:  # 100 groups (one provider each), one client each
        conns[p] = _SocketStub()
        c = Client(conns[p], "t", "u", 8, fan)
        fan.add(c)
        fan.set_subscriptions(c, {"s": PriceFilter.model_validate({"provider": p}).compiled()})

    def send(seq: int) -> None:
        for p in providers:
            d = {"provider": p, "gpu_type": "H100_80GB_SXM5", "region": "us-east-1", "new_price": "2.0"}
            fan.publish(UpdateView(d), seq, update_json(d, seq), 0.0)

    send(1)
    fan._flush_handle.cancel()  # run the flush now instead of after the batch window
    fan.flush()
    visited = [p for p in providers if conns[p].frames]
    assert len(visited) == 64  # the first slice stopped after 64 frames and scheduled the rest
    send(2)  # arrives between slices (before the loop runs the next one)
    await asyncio.sleep(0.05)
    late = [p for p in providers if p not in visited]
    # groups not yet visited: ONE frame with both updates; visited ones: a second frame with the new update
    assert all([[u["seq"] for u in f["updates"]] for f in conns[p].frames] == [[1, 2]] for p in late)
    assert all([[u["seq"] for u in f["updates"]] for f in conns[p].frames] == [[1], [2]] for p in visited)


async def test_routes_cached_per_update_shape_match_the_filters_through_group_churn():
    """Fanout remembers, per update shape, which groups match apart from price, and compares prices after: the
    groups an update reaches must be exactly those whose filters match it, also after groups come and go."""
    import random

    from gateway.ws import fanout as ws_fanout
    from gateway.ws.fanout import Client, Fanout
    from gateway.ws.filters import PriceFilter, UpdateView

    rng = random.Random(3)
    gpus = ["H100_80GB_SXM5", "H100_80GB_PCIe", "A100_80GB_SXM4", "A100_40GB_PCIe", "H200_141GB", "RTX_4090",
            "NVIDIA A10G", "GH200_96GB", "Mystery_X1"]
    regions = ["us-east-1", "europe-west4", "eu-central-1", "asia-northeast1", "", "moon-base-1"]
    names = ["H100", "h100 sxm", "A100", "a10", "H200", "RTX 4090", "GH200"]

    def rand_filter() -> dict:
        f: dict = {}
        if rng.random() < 0.85:
            f["gpu_type"] = rng.sample(names, rng.choice([1, 1, 2]))
        x = rng.random()
        if x < 0.2:
            f["continent"] = rng.choice(["NA", "EU", "AS"])
        elif x < 0.35:
            f["region"] = rng.choice(regions[:4])
        elif x < 0.45:
            f["country"] = rng.choice(["US", "NL", "DE"])
        if rng.random() < 0.2:
            f["provider"] = rng.choice(["aws", "runpod"])
        if rng.random() < 0.2:
            f["pricing"] = rng.choice(["spot", "on_demand"])
        if rng.random() < 0.4:
            f["max_price"] = rng.choice([1, 2, 2.5, 3])
        return f

    def rand_update() -> dict:
        return {"gpu_type": rng.choice(gpus), "provider": rng.choice(["aws", "RunPod", "vast"]),
                "region": rng.choice(regions), "pricing": rng.choice(["on_demand", "spot"]),
                "new_price": rng.choice(["0.9", "2", "2.4", "2.5", "2.51", "3", "7", None, "n/a"])}

    fan = Fanout(batch_s=60)
    clients = []

    def connect_one() -> None:
        c = Client(None, "t", "u", 8, fan)
        fan.add(c)
        subs = {f"s{i}": PriceFilter.model_validate(rand_filter()).compiled() for i in range(rng.choice([1, 1, 2]))}
        fan.set_subscriptions(c, subs)
        clients.append(c)

    for _ in range(60):
        connect_one()
    seq = 0

    def publish_and_check(n: int) -> None:
        nonlocal seq
        for _ in range(n):
            seq += 1
            view = UpdateView(rand_update())
            want = {id(g) for g in fan.groups.values() if g.matches(view)}
            fan.publish(view, seq, b"{}", 0.0)
            got = {id(g) for g in fan._dirty}
            assert got == want, (view.shape, view.price)
            for g in fan._dirty:
                g.pending = []
            fan._dirty = []

    for _ in range(5):
        publish_and_check(150)
        assert 0 < len(fan._routes) <= ws_fanout.ROUTES_MAX
        # churn, each half followed by updates: the cache must not serve a route that misses a new group
        # or names one that is gone
        for _ in range(15):
            connect_one()
        publish_and_check(150)
        for c in rng.sample(clients, 15):
            clients.remove(c)
            fan.remove(c)
    fan._flush_handle.cancel()


async def test_keepalive_pings_every_client_and_closes_one_that_never_answers(settings, tenant, js):
    """One sweep pings every client per ws_ping_interval_s; a client that sends nothing back (not even the pong)
    for a whole interval is closed with 1011 and counted, while one that answers keeps its stream."""
    from gateway.ws import metrics as m

    g = await running_gateway(settings, ws_ping_interval_s=0.3, ws_batch_ms=2)
    try:
        tok = token_for(settings, tenant)
        alive = PriceStreamClient(url(g), tok, subscriptions={"s": {"provider": "keepalive-co"}})
        ta = await started(alive)
        before = m.WS_KEEPALIVE_TIMEOUTS._value.get()
        # A silent client: upgrades, then never writes a byte (so never answers a ping).
        reader, writer = await asyncio.open_connection("127.0.0.1", g.port)
        writer.write(f"GET /v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                     f"Authorization: Bearer {tok}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101")
        opcodes, close_code = [], None
        t0 = asyncio.get_running_loop().time()
        while close_code is None:
            b0, b1 = await asyncio.wait_for(reader.readexactly(2), 5)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(await reader.readexactly(2), "big")
            payload = await reader.readexactly(n)
            opcodes.append(b0 & 0x0F)
            if b0 & 0x0F == 8:
                close_code = int.from_bytes(payload[:2], "big")
        waited = asyncio.get_running_loop().time() - t0
        writer.close()
        assert opcodes[0] == 1  # welcome
        assert 9 in opcodes  # pinged
        assert close_code == 1011
        assert 0.3 <= waited < 3
        assert m.WS_KEEPALIVE_TIMEOUTS._value.get() - before == 1
        # the answering client was pinged as often and is still served
        seq = await publish(settings, js, price_update("keepalive-co", "H100_80GB_SXM5"))
        assert (await next_update(alive))["seq"] == seq
        assert len(g.fanout.clients) == 1
        await stop(alive, ta)
    finally:
        await g.stop()
