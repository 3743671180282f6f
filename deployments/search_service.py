"""The per-process search service: the offer index, kept fresh, behind the two-tier page cache.

Lives in every process that answers searches (each ingress replica by default, and the `Search`
deployment). Freshness:
- at start, a full load from PostgreSQL (the NATS subscription is opened first, so no delta is missed);
- NATS price deltas (`prices.>`) are applied in place in batches every `search_delta_flush_ms`;
  offers the index does not know are fetched from PostgreSQL;
- when ingestion bumps the catalog generation in Redis, rows changed since the last load are merged
  (new offers rebuild the index, a changed offer count triggers a full reload); plus a periodic full reload.
The index version (generation + JetStream sequence of the last applied delta + stale providers) is part of
every cache key, so a bump or a delta purges cached pages logically.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator

from cluster.logs import get_logger
from cluster.messaging import ensure_streams, subject
from cluster.repositories import providers as providers_repo
from cluster.repositories import search_offers as store
from cluster.runtime import Runtime
from cluster.settings import Settings
from deployments.search_cache import PageCache
from deployments.search_metrics import DELTAS, INDEX_OFFERS, INDEX_RELOADS, QUERY_SECONDS, HitRatio
from domain.models import PriceUpdate
from domain.offer_index import C, OfferIndex, QueryResult, iso_us
from domain.search import EXPORT_MAX_ROWS, ExportQuery, QueryError, parse_query

log = get_logger("search")
_EPOCH, _US = datetime(1970, 1, 1, tzinfo=timezone.utc), timedelta(microseconds=1)
_SLACK_US = 60 * 1_000_000  # re-read rows touched up to a minute before the watermark (long transactions)


@dataclass
class Reply:
    """A transport-neutral answer (crosses Serve handles): JSON bytes on 200, else an error description."""

    status: int
    body: bytes | None = None
    error: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _err(status: int, code: str, message: str, details: Any = None) -> Reply:
    return Reply(status, error={"code": code, "message": message, "details": details})


def _ts_us(dt) -> int:
    return int(dt.timestamp() * 1_000_000)


class SearchService:
    def __init__(self, settings: Settings, runtime: Runtime):
        self.settings = settings
        self.runtime = runtime
        self.cache = PageCache(settings)
        self.ratio = HitRatio()
        self.index = OfferIndex([])
        self.loaded = False
        self.generation = "0"
        self.seq = 0
        self._stale_tag = ""
        self._watermark_us = 0
        self._last_full = 0.0
        self._last_stale = 0.0
        self._pending: list[tuple[PriceUpdate, int]] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._replay: list[tuple[PriceUpdate, int]] | None = None  # deltas seen while a rebuild runs
        self._sub = None
        self._deltas_down = False
        self._tasks: list[asyncio.Task] = []
        self._lock = asyncio.Lock()

    # ---- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> "SearchService":
        await self.cache.start()
        if self.runtime.nats is not None:  # a restarted server lost our consumer: subscribe again
            self.runtime.nats.on_reconnect.append(self._drop_subscription)
        await self._subscribe()
        try:
            await self._full_reload()
        except Exception as exc:  # PostgreSQL down: keep starting, the refresher retries
            log.warning("search index not loaded yet", extra={"error": str(exc)[:300]})
        self._tasks.append(asyncio.get_running_loop().create_task(self._refresher()))
        return self

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:
                pass
        await self.cache.close()

    @property
    def version(self) -> str:
        return f"{self.generation}.{self.seq}.{self._stale_tag}"

    # ---- freshness ---------------------------------------------------------------------------------
    async def _drop_subscription(self) -> None:
        """Forget the consumer; the refresher subscribes again (changes made meanwhile arrive through the
        catalog generation, which ingestion bumps in Redis)."""
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception:
                pass

    async def _subscribe(self) -> None:
        subj = subject(self.settings, "prices") + ".>"
        try:
            nc = await self.runtime.get_nats()
            js = nc.jetstream()
            from nats.js.api import DeliverPolicy

            try:
                self._sub = await js.subscribe(subj, cb=self._on_delta, ordered_consumer=True,
                                               deliver_policy=DeliverPolicy.NEW)
            except Exception:  # no PRICES stream yet: create it (idempotent) and try once more
                await ensure_streams(self.settings, js)
                self._sub = await js.subscribe(subj, cb=self._on_delta, ordered_consumer=True,
                                               deliver_policy=DeliverPolicy.NEW)
        except Exception as exc:
            self._sub = None
            if not self._deltas_down:  # once per outage, not every refresh
                log.warning("price deltas unavailable; relying on reloads", extra={"error": str(exc)[:300]})
            self._deltas_down = True
            return
        self._deltas_down = False

    async def _on_delta(self, msg) -> None:
        try:
            upd = PriceUpdate.model_validate_json(msg.data)
        except ValueError:
            DELTAS.labels("invalid").inc()
            return
        try:
            seq = int(msg.metadata.sequence.stream)
        except Exception:
            seq = self.seq
        self._pending.append((upd, seq))
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(self.settings.search_delta_flush_ms / 1000,
                                                 lambda: self._tasks.append(loop.create_task(self._flush())))

    async def _flush(self) -> None:
        self._tasks = [t for t in self._tasks if not t.done()]
        self._flush_handle = None
        batch, self._pending = self._pending, []
        if not batch:
            return
        if self._replay is not None:
            self._replay.extend(batch)
        unknown = self._apply(self.index, batch)
        DELTAS.labels("applied").inc(len(batch) - len(unknown))
        if unknown:
            DELTAS.labels("fetched").inc(len(unknown))
            try:
                rows = await store.load_ids(await self.runtime.get_pg(), unknown)
                await self._merge(rows, self.generation)
            except Exception as exc:
                log.warning("could not fetch offers of price deltas", extra={"error": str(exc)[:300]})
        self.seq = max(self.seq, max(s for _, s in batch))

    def _apply(self, index: OfferIndex, batch: list[tuple[PriceUpdate, int]]) -> list[str]:
        unknown = []
        for upd, _ in batch:
            oid = str(upd.offer_id)
            if not index.apply_price(oid, float(upd.new_price), upd.availability.value, _ts_us(upd.ts)):
                unknown.append(oid)
        index.resort()
        return list(dict.fromkeys(unknown))

    async def _rebuild(self, rows: list, generation: str, kind: str) -> None:
        """Build a new index off the event loop, then swap it in and replay deltas that arrived meanwhile."""
        self._replay = []
        try:
            index = await asyncio.to_thread(OfferIndex, rows)
        finally:
            replay, self._replay = self._replay, None
        if replay:
            self._apply(index, replay)
        index.stale = self.index.stale
        self.index = index
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.get_running_loop().create_task(self._prerender(index)))
        self.generation = generation
        self._watermark_us = max(self._watermark_us, int(index.updated.max(initial=0)), int(index.last_seen.max(initial=0)))
        INDEX_OFFERS.set(index.n)
        INDEX_RELOADS.labels(kind).inc()

    async def _prerender(self, index: OfferIndex, chunk: int = 500) -> None:
        """Render every item's JSON in small slices between requests, so first queries need not."""
        for start in range(0, index.n, chunk):
            if index is not self.index:
                return
            index.prerender(start, start + chunk)
            await asyncio.sleep(0.002)

    async def _full_reload(self) -> None:
        async with self._lock:
            generation = await self.cache.generation() or self.generation
            rows = await store.load_all(await self.runtime.get_pg())
            self._watermark_us = 0
            await self._rebuild(rows, generation, "full")
            self._last_full = time.monotonic()
            self.loaded = True
        await self._refresh_stale()

    async def _merge(self, rows: list, generation: str) -> None:
        async with self._lock:
            merged = self.index.update_rows(rows)
            if merged is None:
                self.index.resort()
                self.generation = generation
                INDEX_RELOADS.labels("in_place").inc()
            else:
                await self._rebuild(merged, generation, "merge")

    async def _incremental(self, generation: str) -> None:
        rows, total = await store.load_changed_since(await self.runtime.get_pg(), self._watermark_us - _SLACK_US)
        await self._merge(rows, generation)
        for r in rows:
            self._watermark_us = max(self._watermark_us, r[C["updated_us"]], r[C["last_seen_us"]])
        if self.index.n != total:  # offers were removed: only a full load notices
            await self._full_reload()
        else:
            await self._refresh_stale()

    async def _refresh_stale(self) -> None:
        health = await providers_repo.health(await self.runtime.get_pg())
        now_us = time.time() * 1_000_000
        limit_us = self.settings.search_stale_after_s * 1_000_000
        stale: dict[str, str] = {}
        for provider, seen_us in self.index.provider_last_seen().items():
            h = health.get(provider)
            if h is not None and h["status"] == "down":
                stale[provider] = "provider is down"
                continue
            synced = h["last_sync_ts"] if h is not None else None
            last = (synced - _EPOCH) // _US if synced is not None else seen_us
            if now_us - last > limit_us:
                stale[provider] = f"last synced {iso_us(last)}"
        self.index.stale = stale
        blob = json.dumps(sorted(stale.items())).encode()
        self._stale_tag = hashlib.blake2b(blob, digest_size=4).hexdigest() if stale else ""
        self._last_stale = time.monotonic()

    async def _refresher(self) -> None:
        while True:
            await asyncio.sleep(self.settings.search_refresh_interval_s)
            try:
                if self._sub is None:
                    await self._subscribe()
                if not self.loaded or time.monotonic() - self._last_full > self.settings.search_full_reload_s:
                    await self._full_reload()
                    continue
                generation = await self.cache.generation()
                if generation is not None and generation != self.generation:
                    await self._incremental(generation)
                if time.monotonic() - self._last_stale > 5:
                    await self._refresh_stale()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("search index refresh failed", extra={"error": str(exc)[:300]})

    # ---- queries -----------------------------------------------------------------------------------
    async def search(self, raw: bytes) -> Reply:
        """One page of GET /providers for the raw query string."""
        if not self.loaded:
            return _err(503, "unavailable", "search index is loading")
        version = self.version
        body = self.cache.local_get(version, raw)
        if body is not None:
            self.ratio.hit("local")
            return Reply(200, body)
        try:
            q = parse_query(raw)
            key = q.cache_key()  # decodes the cursor
        except QueryError as exc:
            return _err(422, "validation_error", str(exc), exc.details)
        body = await self.cache.get(version, key)
        if body is not None:
            self.ratio.hit("redis")
            self.cache.local_put(version, raw, body)
            return Reply(200, body)
        version = self.version  # the index may have moved while Redis answered
        t0 = time.perf_counter()
        try:
            result = self.index.query(q, q.sort, q.offset, q.size)
        except QueryError as exc:
            return _err(422, "validation_error", str(exc), exc.details)
        body = self.index.page_json(result, q.next_cursor(result.total))
        QUERY_SECONDS.observe(time.perf_counter() - t0)
        self.ratio.miss()
        self.cache.local_put(version, raw, body)
        self.cache.put(version, key, body)
        return Reply(200, body)

    def export_plan(self, raw: bytes) -> Reply | tuple[OfferIndex, QueryResult, str]:
        """Validate an export query and select its rows (at most EXPORT_MAX_ROWS) from the current index."""
        if not self.loaded:
            return _err(503, "unavailable", "search index is loading")
        try:
            q = parse_query(raw, ExportQuery)
            index = self.index
            return index, index.query(q, q.sort, 0, EXPORT_MAX_ROWS), q.format
        except QueryError as exc:
            return _err(422, "validation_error", str(exc), exc.details)

    @staticmethod
    async def export_chunks(index: OfferIndex, result: QueryResult, fmt: str, chunk: int = 1000) -> AsyncIterator[bytes]:
        rows = result.rows
        if fmt == "json":
            yield b"["
        for start in range(0, max(len(rows), 1), chunk):
            part = rows[start:start + chunk]
            if fmt == "csv":
                yield index.csv_rows(part, header=start == 0).encode()
            elif len(part):
                yield (b"," if start else b"") + b",".join(index.item_json(int(i)) for i in part)
            await asyncio.sleep(0)  # let other requests run between chunks
        if fmt == "json":
            yield b"]"

    @staticmethod
    def export_headers(result: QueryResult, fmt: str) -> dict[str, str]:
        return {"X-Total-Count": str(result.total), "X-Export-Rows": str(len(result.rows)),
                "X-Export-Truncated": "true" if result.total > len(result.rows) else "false",
                "Content-Disposition": f'attachment; filename="offers.{fmt}"'}

    async def detail(self, offer_id: str) -> Reply:
        """GET /providers/{id}: the offer as in search, plus its identity details and recent price history."""
        try:
            oid = str(uuid.UUID(offer_id))
        except ValueError:
            return _err(422, "validation_error", "invalid request: id",
                        [{"field": "id", "message": "must be a UUID"}])
        pool = await self.runtime.get_pg()
        extras = await store.offer_extras(pool, oid)
        if extras is None:
            return _err(404, "not_found", f"no offer with id {oid}")
        i = self.index.pos.get(oid)
        item = self.index.item(i) if i is not None else OfferIndex(await store.load_ids(pool, [oid])).item(0)
        item.update(extras)
        item["price_history"] = await store.price_history(pool, oid, self.settings.search_history_limit)
        return Reply(200, json.dumps(item, separators=(",", ":"), ensure_ascii=False, default=str).encode())
