"""The ingestion pipeline on the real PostgreSQL, Redis and NATS (JetStream)."""
from __future__ import annotations

import json
import uuid
from decimal import Decimal

from actors.pipeline import outbox_messages, outbox_rows, price_update_json
from adapters import registry
from cluster.messaging import subject
from domain.models import PriceUpdate
from tests.ingest_fixtures import collect, ingestor  # noqa: F401  (fixtures)


def _offers(provider: str, n: int | None = None):
    """RunPod's recorded offers relabelled to a provider of the test's own."""
    a = registry.build("runpod")
    offers = a.parse(a.load_snapshot()).offers[:n]
    return [o.model_copy(update={"provider": provider}) for o in offers]


def _pid() -> str:
    return "t_" + uuid.uuid4().hex[:10]


async def test_payload_matches_the_price_update_contract():
    args = (str(uuid.uuid4()), 'x"y é', "runpod", "H100-SXM", "global", "spot", Decimal("2.500000"),
            Decimal("2.410000"), "up")
    from datetime import datetime, timezone

    ts = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    model = PriceUpdate(offer_id=args[0], external_id=args[1], provider=args[2], gpu_type=args[3], region=args[4],
                        pricing=args[5], old_price=args[6], new_price=args[7], availability=args[8], ts=ts)
    from pydantic import TypeAdapter

    assert price_update_json(*args, TypeAdapter(datetime).dump_json(ts).decode()) == model.model_dump_json()


async def test_first_sync_inserts_then_unchanged_resync_emits_nothing(ingestor, pg, redis_client, settings, collect):
    pid = _pid()
    c = await collect(subject(settings, "prices", pid) + ".>")
    offers = _offers(pid)
    gen_key = settings.redis_prefix + "catalog:generation"
    gen0 = int(await redis_client.get(gen_key) or 0)
    s1 = await ingestor.ingest(pid, offers)
    assert (s1.inserted, s1.updated, s1.unchanged, s1.deltas) == (len(offers), 0, 0, len(offers))
    assert s1.published == len(offers)
    assert await pg.fetchval("SELECT count(*) FROM offers WHERE provider_id=$1", pid) == len(offers)
    assert await pg.fetchval("SELECT count(*) FROM price_history h JOIN offers o ON o.id=h.offer_id "
                             "WHERE o.provider_id=$1", pid) == len(offers)
    assert await pg.fetchval("SELECT coalesce(sum(messages), 0) FROM outbox WHERE subject LIKE $1 AND published_at IS NOT NULL",
                             subject(settings, "prices", pid) + ".%") == len(offers)
    assert len(await c.settle(len(offers))) == len(offers)
    assert all(p["old_price"] is None for p in c.payloads())
    gen1 = int(await redis_client.get(gen_key))
    assert gen1 == gen0 + 1

    c.msgs.clear()
    s2 = await ingestor.ingest(pid, _offers(pid))
    assert (s2.inserted, s2.updated, s2.unchanged, s2.deltas, s2.marked_down) == (0, 0, len(offers), 0, 0)
    assert await pg.fetchval("SELECT count(*) FROM price_history h JOIN offers o ON o.id=h.offer_id "
                             "WHERE o.provider_id=$1", pid) == len(offers)
    assert await c.settle(None, timeout=0.7) == []
    assert int(await redis_client.get(gen_key)) == gen1  # nothing changed, caches kept


async def test_duplicate_upserts_leave_one_row(ingestor, pg):
    pid = _pid()
    offers = _offers(pid, 5)
    s = await ingestor.ingest(pid, offers + [offers[0], offers[1]])
    assert s.rejected == {"duplicate_in_batch": 2} and s.inserted == 5
    await ingestor.ingest(pid, offers)
    await ingestor.ingest(pid, offers, full=False)
    rows = await pg.fetch("SELECT external_id, count(*) AS n FROM offers WHERE provider_id=$1 GROUP BY 1", pid)
    assert len(rows) == 5 and all(r["n"] == 1 for r in rows)


async def test_changed_price_yields_one_history_row_and_one_message(ingestor, pg, settings, collect):
    pid = _pid()
    offers = _offers(pid, 10)
    await ingestor.ingest(pid, offers)
    target = offers[3]
    c = await collect(subject(settings, "prices", pid) + ".>")
    changed = [o.model_copy(update={"price_per_hour": Decimal("9.990000"), "price_per_gpu_hour": None})
               if o.external_id == target.external_id else o for o in offers]
    changed = [type(o).model_validate(o.model_dump()) for o in changed]  # re-derive price_per_gpu_hour
    s = await ingestor.ingest(pid, changed)
    assert (s.inserted, s.updated, s.deltas, s.published) == (0, 1, 1, 1)
    hist = await pg.fetch("SELECT h.price_per_hour FROM price_history h JOIN offers o ON o.id=h.offer_id "
                          "WHERE o.provider_id=$1 AND o.external_id=$2 ORDER BY h.id", pid, target.external_id)
    assert [r["price_per_hour"] for r in hist] == [target.price_per_hour, Decimal("9.990000")]
    msgs = await c.settle(1)
    assert len(msgs) == 1
    assert msgs[0].subject == subject(settings, "prices", pid, target.gpu_type)
    upd = PriceUpdate.model_validate_json(msgs[0].data)
    assert upd.external_id == target.external_id and upd.provider == pid
    assert upd.old_price == target.price_per_hour and upd.new_price == Decimal("9.990000")
    assert msgs[0].headers["Nats-Msg-Id"].startswith(settings.database_name + ":ph:")


async def test_resync_changing_only_name_and_tags_updates_the_offer_without_history_or_message(ingestor, pg, settings,
                                                                                                collect):
    """Only a price or availability change is a price event: a renamed, re-tagged offer is updated in place."""
    pid = _pid()
    offers = _offers(pid, 5)
    await ingestor.ingest(pid, offers)
    target, other = offers[2], offers[4]
    c = await collect(subject(settings, "prices", pid) + ".>")
    renamed = [o.model_copy(update={"name": o.name + " (new name)", "tags": [*o.tags, "retagged"]})
               if o.external_id == target.external_id else o for o in offers]
    s = await ingestor.ingest(pid, renamed)
    assert (s.inserted, s.updated, s.unchanged, s.deltas, s.published) == (0, 1, 4, 0, 0)
    row = await pg.fetchrow("SELECT id, name, tags FROM offers WHERE provider_id=$1 AND external_id=$2",
                            pid, target.external_id)
    assert row["name"] == target.name + " (new name)" and "retagged" in row["tags"]
    assert await pg.fetchval("SELECT count(*) FROM price_history WHERE offer_id=$1", row["id"]) == 1
    # a price change afterwards: its message is the first one on the subject, so the rename sent none
    repriced = [o.model_copy(update={"price_per_hour": o.price_per_hour + 1, "price_per_gpu_hour": None})
                if o.external_id == other.external_id else o for o in renamed]
    s = await ingestor.ingest(pid, [type(o).model_validate(o.model_dump()) for o in repriced])
    assert (s.updated, s.deltas) == (1, 1)
    first = (await c.settle(1))[0]
    assert PriceUpdate.model_validate_json(first.data).external_id == other.external_id


async def test_offers_missing_from_a_full_sync_go_down_once(ingestor, pg, settings, collect):
    pid = _pid()
    offers = _offers(pid, 6)
    await ingestor.ingest(pid, offers)
    c = await collect(subject(settings, "prices", pid) + ".>")
    s = await ingestor.ingest(pid, offers[:4])
    assert s.marked_down == 2 and s.deltas == 2
    payloads = [p for p in (await c.settle(2)) and c.payloads()]
    assert {p["external_id"] for p in payloads} == {offers[4].external_id, offers[5].external_id}
    assert {p["availability"] for p in payloads} == {"down"}
    s = await ingestor.ingest(pid, offers[:4])
    assert s.marked_down == 0 and s.deltas == 0
    s = await ingestor.ingest(pid, offers)  # back up: availability changed -> delta, one history row each
    assert s.updated == 2 and s.deltas == 2
    assert await pg.fetchval("SELECT count(*) FROM offers WHERE provider_id=$1 AND availability='up'", pid) == 6


async def test_malformed_records_are_rejected_with_a_reason_and_the_batch_survives(ingestor, pg):
    pid = _pid()
    good = _offers(pid, 3)
    bad_price = {**good[0].model_dump(), "external_id": "bad-1", "price_per_hour": "-3"}
    no_gpu = {k: v for k, v in good[1].model_dump().items() if k != "gpu_type"} | {"external_id": "bad-2"}
    cents = {**good[2].model_dump(), "external_id": "bad-3", "price_per_hour": "99000", "price_per_gpu_hour": None}
    other = good[0].model_copy(update={"provider": "someone-else", "external_id": "bad-4"})
    s = await ingestor.ingest(pid, [*good, bad_price, no_gpu, cents, other])
    assert s.rejected == {"invalid_price_per_hour": 1, "invalid_gpu_type": 1, "implausible_price": 1,
                          "wrong_provider": 1}
    assert s.inserted == 3
    assert await pg.fetchval("SELECT count(*) FROM offers WHERE provider_id=$1", pid) == 3


async def test_non_finite_and_odd_attribute_values_do_not_fail_the_batch(ingestor, pg):
    from datetime import date

    pid = _pid()
    offers = _offers(pid, 3)
    odd = offers[0].model_copy(update={"attributes": {"reliability": float("nan"), "bw": float("inf"), 7: "int key",
                                                      "since": date(2026, 1, 2), "rate": Decimal("0.5")}})
    s = await ingestor.ingest(pid, [odd, *offers[1:]])
    assert s.inserted == 3 and s.rejected == {}
    attrs = await pg.fetchval("SELECT attributes::text FROM offers WHERE provider_id=$1 AND external_id=$2",
                              pid, odd.external_id)
    assert json.loads(attrs) == {"reliability": None, "bw": None, "7": "int key", "since": "2026-01-02",
                                 "rate": "0.5"}


async def test_outbox_relay_publishes_what_nats_missed(settings, pg, redis_client, nats_client, collect):
    from actors.pipeline import Ingestor

    pid = _pid()
    offline = Ingestor(settings, pg, redis=redis_client, js=None)  # NATS "down": rows stay in the outbox
    s = await offline.ingest(pid, _offers(pid, 4))
    assert s.deltas == 4 and s.published == 0
    c = await collect(subject(settings, "prices", pid) + ".>")
    online = Ingestor(settings, pg, redis=redis_client, js=nats_client.jetstream())
    assert await online.relay_outbox() >= 4
    assert len(await c.settle(4)) == 4
    assert await pg.fetchval("SELECT coalesce(sum(messages), 0) FROM outbox WHERE subject LIKE $1 AND published_at IS NULL",
                             subject(settings, "prices", pid) + ".%") == 0


def test_outbox_batch_rows_split_back_into_the_exact_messages():
    from datetime import datetime, timezone

    ts = datetime(2026, 1, 2, tzinfo=timezone.utc)
    # payloads as the pipeline writes them: the escaper leaves U+2028 / U+0085 raw, turns tabs into \\t
    msgs = [(f"p.prices.x.h100", f"db:ph:{i}",
             price_update_json(str(uuid.uuid4()), f"id\t{i}\u2028\x85\n\"q\"", "x", "H100-SXM", "r", "spot", None,
                               Decimal("1.5"), "up", '"2026-01-02T00:00:00Z"')) for i in range(7)]
    rows = list(outbox_rows("p.prices.x.>", msgs, ts, size=3))
    assert [(r[0], r[1], r[3]) for r in rows] == [("p.prices.x.>", "db:ph:0+3", 3), ("p.prices.x.>", "db:ph:3+3", 3),
                                                  ("p.prices.x.>", "db:ph:6+1", 1)]
    back = [m for r in rows for m in outbox_messages({"body": r[2], "subject": r[0], "msg_id": r[1], "payload": None})]
    assert back == msgs
    assert PriceUpdate.model_validate_json(back[4][2]).external_id == "id\t4\u2028\x85\n\"q\""


async def test_outbox_relay_sends_every_message_of_split_batch_rows(settings, pg, redis_client, nats_client, collect,
                                                                    monkeypatch):
    from actors import pipeline
    from actors.pipeline import Ingestor

    monkeypatch.setattr(pipeline, "OUTBOX_BATCH", 4)  # 10 deltas -> rows of 4, 4 and 2 messages
    pid = _pid()
    offline = Ingestor(settings, pg, redis=redis_client, js=None)
    s = await offline.ingest(pid, _offers(pid, 10))
    assert s.deltas == 10 and s.published == 0
    rows = await pg.fetch("SELECT messages FROM outbox WHERE subject = $1 AND published_at IS NULL ORDER BY id",
                          subject(settings, "prices", pid) + ".>")
    assert [r["messages"] for r in rows] == [4, 4, 2]
    c = await collect(subject(settings, "prices", pid) + ".>")
    online = Ingestor(settings, pg, redis=redis_client, js=nats_client.jetstream())
    sent = 0
    while n := await online.relay_outbox(limit=5):  # whole rows only: 4, then 4, then 2
        sent += n
    assert sent >= 10
    got = await c.settle(10)
    assert len(got) == 10
    assert len({m.headers["Nats-Msg-Id"] for m in got}) == 10
    assert {p["external_id"] for p in c.payloads()} == {o.external_id for o in _offers(pid, 10)}
    assert await pg.fetchval("SELECT count(*) FROM outbox WHERE subject = $1 AND published_at IS NULL",
                             subject(settings, "prices", pid) + ".>") == 0


async def test_large_batch_events_are_all_stored_in_jetstream(ingestor, settings, nats_client, pg):
    from cluster.messaging import stream_name

    pid = _pid()
    a = registry.build("gcp")
    offers = [o.model_copy(update={"provider": pid}) for o in a.parse(a.load_snapshot()).offers]
    s = await ingestor.ingest(pid, offers)
    assert s.deltas == s.published == len(offers) > 1000
    info = await nats_client.jetstream().stream_info(stream_name(settings, "PRICES"),
                                                     subjects_filter=subject(settings, "prices", pid) + ".>")
    assert sum(info.state.subjects.values()) == len(offers)
    assert await pg.fetchval("SELECT coalesce(sum(messages), 0) FROM outbox WHERE subject LIKE $1 AND published_at IS NULL",
                             subject(settings, "prices", pid) + ".%") == 0
