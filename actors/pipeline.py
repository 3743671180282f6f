"""The ingestion pipeline: validated offers -> PostgreSQL, price history, outbox, Redis, NATS.

A plain async class (no Ray): the ProviderAdapter actors, `gpubroker sync`, `gpubroker replay`, the tests
and the benchmark all use it. One `ingest()` call is one sync of one provider:

1. validate: records that cannot be stored are counted by reason (never silently dropped, never fatal);
2. one transaction, under the provider's advisory lock: COPY into a temp staging table, then one statement
   (`cluster.repositories.offers.upsert_staged`) that inserts the new offers, updates the changed ones
   (returning the old price), appends price_history rows only where price or availability changed; on a
   full sync the offers not seen marked availability 'down' (with their history row), and the deltas'
   events as outbox rows of up to OUTBOX_BATCH messages each (same transaction: an event is never lost);
3. after commit: INCR the Redis catalog generation (caches purge) when anything changed, publish one
   JetStream message per delta on prices.<provider>.<gpu> with Nats-Msg-Id dedup, mark the outbox rows
   published. If NATS is down the rows stay unpublished and `relay_outbox()` sends them later;
   `relay_forever()` does so by itself (the IngestWorker runs it) as soon as NATS is back.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterable

import orjson
from pydantic import TypeAdapter, ValidationError

from actors import metrics
from cluster.logs import get_logger
from cluster.messaging import jetstream_connection, subject
from cluster.repositories import offers as offers_repo
from cluster.repositories import outbox
from cluster.repositories import providers as providers_repo
from cluster.settings import Settings
from domain.models import Offer

log = get_logger("ingest")
_enc = json.encoder.encode_basestring  # the C escaper json.dumps uses for strings
_TS = TypeAdapter(datetime)
MAX_PRICE_PER_GPU_HOUR = Decimal("500")  # above this a price is a unit error (cents, per month), not a GPU
OUTBOX_BATCH = 10_000  # messages per outbox row (migration 0005)
PUBLISH_TIMEOUT_S = 30.0  # acks of one batch; past it the rows stay in the outbox for the relay
RELAY_INTERVAL_S = 1.0  # how often the relay looks for rows left unpublished
RELAY_MIN_AGE_S = 5.0  # rows younger than this belong to an ingest still publishing them


@dataclass
class SyncStats:
    provider: str
    received: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    marked_down: int = 0
    deltas: int = 0
    published: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per pipeline step

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def records_per_s(self) -> float:
        return (self.received + self.rejected_total) / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["records_per_s"] = round(self.records_per_s, 1)
        return d


def price_update_json(offer_id: str, external_id: str, provider: str, gpu_type: str, region: str, pricing: str,
                      old_price: Decimal | None, new_price: Decimal, availability: str, ts_json: str,
                      gpu_count: float | None = None) -> str:
    """`PriceUpdate(...).model_dump_json()`, byte for byte (a test holds it to that), ~10x faster."""
    old = "null" if old_price is None else f'"{old_price}"'
    count = "null" if gpu_count is None else repr(float(gpu_count))
    return (f'{{"version":1,"offer_id":"{offer_id}","external_id":{_enc(external_id)},"provider":{_enc(provider)},'
            f'"gpu_type":{_enc(gpu_type)},"region":{_enc(region)},"pricing":"{pricing}","old_price":{old},'
            f'"new_price":"{new_price}","availability":"{availability}","ts":{ts_json},"gpu_count":{count}}}')


def validate(provider: str, offers: Iterable[Offer | dict], rejected: dict[str, int]) -> list[Offer]:
    """Offers fit to store; the others counted in `rejected` by reason. Later duplicates win."""
    seen: dict[str, Offer] = {}
    for item in offers:
        try:
            o = item if isinstance(item, Offer) else Offer.model_validate(item)
        except ValidationError as exc:
            loc = ".".join(str(p) for p in exc.errors()[0].get("loc", ())) or "record"
            rejected[f"invalid_{loc}"] = rejected.get(f"invalid_{loc}", 0) + 1
            continue
        reason = None
        if o.provider != provider:
            reason = "wrong_provider"
        elif o.price_per_gpu_hour is None or o.price_per_gpu_hour > MAX_PRICE_PER_GPU_HOUR:
            reason = "implausible_price"
        elif o.external_id in seen:
            reason = "duplicate_in_batch"
        if reason:
            rejected[reason] = rejected.get(reason, 0) + 1
        if reason in (None, "duplicate_in_batch"):
            seen[o.external_id] = o
    return list(seen.values())


class _Lap:
    """Accumulates the seconds since the previous call under a step name."""

    def __init__(self, into: dict[str, float]):
        self.into, self.t = into, time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        self.into[step] = round(self.into.get(step, 0.0) + now - self.t, 4)
        self.t = now


def _json(d: dict) -> str:
    """Attributes as JSON text for jsonb: orjson writes NaN/Infinity as null (json.dumps writes NaN, which
    jsonb rejects, failing the whole batch) and anything else unknown via str()."""
    return orjson.dumps(d, default=str, option=orjson.OPT_NON_STR_KEYS).decode() if d else "{}"


def _row(o: Offer) -> tuple:
    """The offer as a staging row, in `offers_repo.STAGE_COLUMNS` order."""
    return (o.external_id, o.name, o.gpu_type, o.gpu_vendor, o.gpu_count, o.gpu_memory_gb, o.form_factor, o.vcpu,
            o.memory_gb, o.storage_gb, o.price_per_hour, o.price_per_gpu_hour, o.currency, o.pricing.value,
            o.region, o.country, o.continent, o.availability.value, o.tags, _json(o.attributes))


class Ingestor:
    """Stores a provider's offers and emits its deltas. `pool` is an asyncpg pool; `redis`, `js` optional."""

    def __init__(self, settings: Settings, pool: Any, redis: Any = None, js: Any = None,
                 touch_after_s: float = 600.0):
        self.settings = settings
        self.pool = pool
        self.redis = redis
        self.js = js
        self.touch_after = timedelta(seconds=touch_after_s)
        self.msg_prefix = f"{settings.database_name}:ph:"

    async def ensure_provider(self, provider: str, name: str, endpoint: str | None = None) -> None:
        await providers_repo.upsert(self.pool, provider, name, endpoint)

    async def has_offers(self, provider: str) -> bool:
        return await offers_repo.has_offers(self.pool, provider)

    async def ingest(self, provider: str, offers: Iterable[Offer | dict], *, full: bool = True,
                     rejected: dict[str, int] | None = None, ts: datetime | None = None,
                     display: str | None = None) -> SyncStats:
        """One sync of `provider`. `rejected` carries the parse-stage rejects (reason -> count)."""
        t0 = time.perf_counter()
        stats = SyncStats(provider, rejected=dict(rejected or {}))
        lap = _Lap(stats.timings)
        good = validate(provider, offers, stats.rejected)
        stats.received = len(good)
        ts = ts or datetime.now(timezone.utc)
        ts_json = _TS.dump_json(ts).decode()
        deltas: list[tuple[str, str, str]] = []  # (subject, msg_id, payload)
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                await providers_repo.upsert(conn, provider, display or provider, None)
                await offers_repo.begin_ingest(conn, provider)
                lap("validate")
                await offers_repo.stage(conn, map(_row, good), len(good))
                lap("stage")
                rows = await offers_repo.upsert_staged(conn, provider, ts, ts - self.touch_after)
                lap("upsert")
                if full:
                    rows += await offers_repo.mark_missing_down(conn, provider, ts)
                    lap("mark_down")
                subjects: dict[str, str] = {}  # gpu_type -> subject: a batch has few GPU types
                for r in rows:
                    kind = r["kind"]
                    if kind == "inserted":
                        stats.inserted += 1
                    elif kind == "updated":
                        stats.updated += 1
                    elif kind == "down":
                        stats.marked_down += 1
                    if r["hid"] is not None:
                        gpu = r["gpu_type"]
                        subj = subjects.get(gpu) or subjects.setdefault(gpu, subject(self.settings, "prices",
                                                                                      provider, gpu))
                        deltas.append((
                            subj,
                            f"{self.msg_prefix}{r['hid']}",
                            price_update_json(str(r["id"]), r["external_id"], provider, r["gpu_type"], r["region"],
                                              r["pricing"], r["old_price"], r["new_price"], r["availability"],
                                              ts_json, r["gpu_count"]),
                        ))
                stats.unchanged = stats.received - stats.inserted - stats.updated
                lap("events")
                if deltas:
                    await outbox.append_batches(
                        conn, outbox_rows(subject(self.settings, "prices", provider) + ".>", deltas, ts))
                lap("outbox")
            lap("commit")
        stats.deltas = len(deltas)
        if self.redis is not None and (stats.inserted or stats.updated or stats.marked_down):
            try:
                await self.redis.incr(self.settings.redis_prefix + "catalog:generation")
            except Exception as exc:  # caches then expire by TTL; never fail the sync for it
                log.warning("catalog generation not bumped", extra={"provider": provider, "error": str(exc)})
        if deltas:
            stats.published = await self._publish(deltas, ts, lap)
        stats.seconds = time.perf_counter() - t0
        metrics.observe(stats)
        return stats

    async def _publish(self, deltas: list[tuple[str, str, str]], ts: datetime, lap: Any = None) -> int:
        """Publish with acks pipelined; mark the batch's outbox rows published only if every ack came."""
        if self.js is None:
            return 0
        try:
            await publish_all(self.js, deltas)
        except Exception as exc:
            log.warning("price events left in the outbox", extra={"count": len(deltas), "error": str(exc)[:200]})
            return 0
        if lap:
            lap("publish")
        await outbox.mark_published_at(self.pool, ts, self.msg_prefix)
        if lap:
            lap("mark_published")
        return len(deltas)

    async def relay_outbox(self, older_than_s: float = 0.0, limit: int = 50_000) -> int:
        """Publish this pipeline's outbox rows still unpublished (NATS was down); returns how many."""
        return await relay_outbox(self.pool, self.js, self.msg_prefix, older_than_s, limit)

    async def relay_forever(self, wake: asyncio.Event, attach_js: Any = None) -> None:
        """Relay the outbox every RELAY_INTERVAL_S, and at once when `wake` is set (NATS reconnected: then
        young rows too; a message an ingest is still publishing is deduplicated by its Nats-Msg-Id)."""
        while True:
            woken = False
            try:
                await asyncio.wait_for(wake.wait(), RELAY_INTERVAL_S)
                woken = True
            except asyncio.TimeoutError:
                pass
            wake.clear()
            try:
                metrics.OUTBOX_AGE.set(await outbox.oldest_unpublished_age_s(self.pool))
            except Exception:  # PostgreSQL down: the gauge keeps its last value, the relay waits below
                pass
            try:
                if attach_js is not None:
                    await attach_js()
                if self.js is None or not jetstream_connection(self.js).is_connected:
                    continue
                while (n := await self.relay_outbox(older_than_s=0.0 if woken else RELAY_MIN_AGE_S)) > 0:
                    log.info("outbox relayed", extra={"messages": n})
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # PostgreSQL or NATS down: try again next round
                log.debug("outbox relay waiting", extra={"error": str(exc)[:200]})

    async def record_health(self, provider: str, status: str, *, last_error: str | None, latency_ms: float | None,
                            source: str | None, details: dict[str, Any], synced: bool) -> None:
        """Upsert provider_health; `synced` False keeps last_sync_ts (a failed fetch is not a sync)."""
        await providers_repo.record_health(self.pool, provider, status, last_error=last_error, latency_ms=latency_ms,
                                           source=source, details=details, synced=synced)


async def publish_all(js: Any, msgs: list[tuple[str, str, str]], fence_after: int = 256) -> None:
    """Publish (subject, msg_id, payload) to JetStream; return only when the server has stored all of them.

    Small batches: one acked publish each, pipelined. Large ones: core publishes on the JetStream
    connection, then the last message as an acked publish: NATS processes one connection's messages in
    order, so its ack (or error) comes after the stream has taken every earlier one. Nats-Msg-Id makes a
    re-publish (outbox relay) harmless. While NATS is disconnected nothing is buffered: it raises at once
    and the messages wait in the outbox.
    """
    nc = jetstream_connection(js)
    if not nc.is_connected:
        from cluster.dependencies import DependencyUnavailable

        raise DependencyUnavailable("nats", "not connected")
    if len(msgs) <= fence_after:
        futs = [await js.publish_async(s, p.encode(), headers={"Nats-Msg-Id": m}) for s, m, p in msgs]
        await asyncio.wait_for(asyncio.gather(*futs), PUBLISH_TIMEOUT_S)
        return
    for s, m, p in msgs[:-1]:
        await nc.publish(s, p.encode(), headers={"Nats-Msg-Id": m})
    s, m, p = msgs[-1]
    await js.publish(s, p.encode(), headers={"Nats-Msg-Id": m}, timeout=PUBLISH_TIMEOUT_S)


async def relay_outbox(pool: Any, js: Any, msg_prefix: str, older_than_s: float = 0.0, limit: int = 50_000) -> int:
    """Publish the outbox rows whose msg_id starts with `msg_prefix` still unpublished (NATS was down);
    returns how many messages went out. Shared by every outbox producer (price deltas, booking events)."""
    if js is None:
        return 0
    rows = await outbox.unpublished(pool, msg_prefix, older_than_s, limit)
    if not rows:
        return 0
    msgs: list[tuple[str, str, str]] = []
    ids: list[int] = []
    for r in rows:  # oldest first, whole rows only, stopping once `limit` messages are in hand
        if ids and len(msgs) + r["messages"] > limit:
            break
        ids.append(r["id"])
        msgs.extend(outbox_messages(r))
    try:
        await publish_all(js, msgs)
    except Exception as exc:
        log.warning("outbox relay failed", extra={"error": str(exc)[:200]})
        return 0
    await outbox.mark_published(pool, ids)
    return len(msgs)


def outbox_rows(batch_subject: str, deltas: list[tuple[str, str, str]], ts: datetime,
                size: int | None = None) -> Iterable[tuple]:
    """Outbox rows (subject, msg_id, body, messages, created_at) holding `deltas` `size` at a time.

    A row's subject is the wildcard its messages fall under and its msg_id the first message's id with
    '+<count>' (unique: message ids are history row ids). Subjects, ids and the JSON payloads (whose
    control characters are escaped) never hold a tab or a newline, so the lines split back exactly.
    """
    size = size or OUTBOX_BATCH
    for i in range(0, len(deltas), size):
        chunk = deltas[i:i + size]
        body = "".join(f"{s}\t{m}\t{p}\n" for s, m, p in chunk)
        yield batch_subject, f"{chunk[0][1]}+{len(chunk)}", body, len(chunk), ts


def outbox_messages(row: Any) -> list[tuple[str, str, str]]:
    """The (subject, msg_id, payload) messages of one outbox row, batch (`body`) or single (`payload`)."""
    if row["body"] is None:
        return [(row["subject"], row["msg_id"], row["payload"])]
    # split on "\n" only: str.splitlines() would also cut at U+2028 or U+0085, which JSON leaves unescaped
    return [tuple(line.split("\t", 2)) for line in row["body"].split("\n") if line]  # type: ignore[misc]
