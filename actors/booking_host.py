"""`BookingHost`: the Ray actor that owns live bookings and drives their state machine (FR-BOOK-1/2).

Bookings are hashed onto `booking_shards` hosts (default 4), each owning every live booking of its shard,
as `actors/limiter.py` shards tenants. Why not one actor per booking: every actor is a process, measured
at 147 MB RSS / 71 MB PSS each holding one booking (benchmarks/results/bookings.json), so the benchmark's
1,050 live bookings would have needed 1,050 processes and ~73 GB PSS; the 4 hosts held them in 391 MB PSS
in all (~98 MB each, the bookings a few MB of it). A finished booking leaves its host's memory at once.

Each transition is one PostgreSQL transaction (repositories.bookings.transition, one statement: row +
version check, transition row, audit entry, outbox row; with the webhook's claim or the meter's close when
there is one); events are then published in order by the host's publisher,
and whatever NATS did not take is relayed from the outbox later (shard 0 relays). On start (and after
Ray restarts the actor, or the whole runtime) a host reloads its shard's live bookings from PostgreSQL:
Drafts are submitted, pending provisionings asked again (provision is idempotent by booking id) and their
status polled, Active bookings metered and ended on time. Timers are deadlines in the rows
(pending_since + timeout, end_time), checked by one loop per host, so resuming them needs no state.
"""
from __future__ import annotations

import asyncio
import os
import time
import zlib
from contextlib import nullcontext
from datetime import timedelta
from typing import Any
from uuid import UUID

from actors import metrics
from adapters.base import AdapterError, ProvisionRequest
from cluster import compliance
from cluster.billing import PostgresLedger
from cluster.logs import get_logger
from cluster.repositories import bookings as repo
from domain import bookings as rules
from domain.audit import now_utc
from domain.models import BookingState as S

log = get_logger("bookings")
NAMESPACE = "gpubroker-bookings"
TICK_S = 1.0      # deadline resolution of timeouts and end times
SWEEP_S = 30.0    # how often a host looks for live bookings of its shard it does not hold (a lost submit)
RELAY_AFTER_S = 5.0
INVOICE_EVERY_S = 3600.0  # shard 0 issues yesterday's final and refreshes today's draft invoices hourly


def shard_of(booking_id: Any, shards: int) -> int:
    return zlib.crc32(str(booking_id).encode()) % shards


def memory_bytes() -> dict[str, int]:
    """This process's resident and proportional set sizes (PSS splits shared pages among their users)."""
    out = {"rss_bytes": 0, "pss_bytes": 0}
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                if line.startswith(("Rss:", "Pss:")):
                    out[line[:3].lower() + "_bytes"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out


def host_name(settings: Any, shard: int) -> str:
    return f"{settings.redis_prefix}booking-host:{shard}"


class BookingHost:
    """The live bookings of one shard. Every public method returns a plain dict (errors included)."""

    def __init__(self, settings: Any, shard: int = 0, shards: int | None = None, adopt: bool = True):
        from cluster.runtime import Runtime

        self.settings, self.shard, self.adopt = settings, shard, adopt
        self.shards = shards or settings.booking_shards
        self.live: dict[str, dict[str, Any]] = {}
        self.next_poll: dict[str, float] = {}
        self.provisioning: set[str] = set()
        self.locks: dict[str, asyncio.Lock] = {}
        self.adapters: dict[str, Any] = {}
        self.rt = Runtime(settings)
        self.pool: Any = None
        self.ledger: PostgresLedger | None = None
        self.outq: asyncio.Queue = asyncio.Queue()
        # True while events of ours wait in the outbox: later ones then go out through the relay too, in
        # outbox order, so a subscriber never sees a booking's events out of order
        self._backlog = False
        self.counters = {"transitions": 0, "published": 0, "relayed": 0, "conflicts": 0, "rebuilt": 0}
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()  # provisioning requests in flight
        self._tasks.append(asyncio.get_running_loop().create_task(self._start()))

    # ---- lifecycle ------------------------------------------------------------------------------------
    async def _start(self) -> None:
        from cluster.db import create_pool

        while self.pool is None:
            try:
                self.pool = await create_pool(self.settings, min_size=1, max_size=4)
            except Exception as exc:  # PostgreSQL down: keep trying, nothing can move meanwhile
                log.warning("booking host waits for postgres", extra={"error": str(exc)[:200]})
                await asyncio.sleep(2)
        self.ledger = PostgresLedger(self.pool)
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._publisher()))
        if self.adopt:
            # events a previous process committed but did not publish go out before any new one
            await self._relay(0.0)
            await self._rebuild()
            self._tasks.append(loop.create_task(self._loop()))
        self._ready.set()

    async def ready(self) -> dict[str, Any]:
        """Wait until the host has rebuilt its shard; returns what it holds."""
        await self._ready.wait()
        return await self.stats()

    async def _rebuild(self) -> int:
        """Adopt the live bookings of this shard that the host does not hold yet."""
        async with self.pool.acquire() as conn:
            rows = [dict(r) for r in await repo.live(conn)
                    if shard_of(r["id"], self.shards) == self.shard and str(r["id"]) not in self.live]
        for r in rows:
            self.live[str(r["id"])] = r
            self.counters["rebuilt"] += 1
        for r in rows:
            if r["status"] == S.draft.value:
                await self._submit(str(r["id"]), None, None)
        return len(rows)

    async def close(self) -> None:
        for t in [*self._tasks, *self._background]:
            t.cancel()
        for a in self.adapters.values():
            if hasattr(a, "close"):
                await a.close()
        if self.pool is not None:
            await self.pool.close()
        await self.rt.close()

    # ---- commands -------------------------------------------------------------------------------------
    async def submit(self, booking_id: str, created_event: tuple | None = None, trace_id: str | None = None) -> dict:
        """Draft -> PendingProvision, then provisioning in the background. `created_event` is the Draft's
        outbox message, published before this transition's."""
        await self._ready_or_pool()
        return await self._submit(booking_id, created_event, trace_id)

    async def submit_many(self, items: list[tuple[str, tuple | None, str | None]]) -> int:
        """`submit` for a batch of (booking id, created event, trace id) handed off by an ingress; nobody waits
        for the answer. Returns how many moved to PendingProvision."""
        await self._ready_or_pool()
        outs = await asyncio.gather(*(self._submit(b, ev, t) for b, ev, t in items), return_exceptions=True)
        for (b, *_), out in zip(items, outs):
            if isinstance(out, BaseException):  # left a Draft: the sweep submits it again
                log.warning("submit failed", extra={"booking_id": b, "error": str(out)[:200]})
        return sum(1 for o in outs if isinstance(o, dict) and o.get("status") == "applied")

    async def _submit(self, booking_id: str, created_event: tuple | None, trace_id: str | None) -> dict:
        if created_event is not None:
            self.outq.put_nowait(tuple(created_event))
        out = await self._move(booking_id, S.pending_provision, source="api", trace_id=trace_id)
        if out["status"] == "applied":
            self._spawn_provision(booking_id)
        return out

    async def cancel(self, booking_id: str, user_id: str | None = None, trace_id: str | None = None) -> dict:
        """The user ends the booking: the machine is released and the meter closed."""
        await self._ready_or_pool()
        return await self._move(booking_id, S.cancelled, source="api", actor=user_id, trace_id=trace_id,
                                terminate=True)

    async def apply_event(self, provider: str, event_id: str, booking_id: str, kind: str,
                          trace_id: str | None = None) -> dict:
        """A verified provider webhook, applied once per event id; a stale or out-of-order event is
        recorded and ignored."""
        await self._ready_or_pool()
        to = rules.event_state(kind)
        return await self._move(booking_id, to, source=f"webhook:{provider}", trace_id=trace_id,
                                webhook=(provider, event_id, kind), reason=f"provider event {kind}")

    async def tick(self) -> dict:
        """Run one pass of the deadline loop now (also what the loop runs every TICK_S)."""
        await self._ready_or_pool()
        await self._tick(time.monotonic())
        return await self.stats()

    async def stats(self) -> dict[str, Any]:
        by_state: dict[str, int] = {}
        for r in self.live.values():
            by_state[r["status"]] = by_state.get(r["status"], 0) + 1
        return {"shard": self.shard, "pid": os.getpid(), "live": len(self.live), "by_state": by_state,
                **memory_bytes(), "queued_events": self.outq.qsize(), **self.counters}

    # ---- the state machine ------------------------------------------------------------------------------
    async def _ready_or_pool(self) -> None:
        if not self._ready.is_set():
            await self._ready.wait()

    def _lock(self, booking_id: str) -> asyncio.Lock:
        lock = self.locks.get(booking_id)
        if lock is None:
            lock = self.locks[booking_id] = asyncio.Lock()
        return lock

    async def _move(self, booking_id: str, to: S, *, source: str, reason: str | None = None, actor: Any = None,
                    trace_id: str | None = None, webhook: tuple[str, str, str] | None = None,
                    terminate: bool = False) -> dict[str, Any]:
        """One transition in one transaction, re-reading on a version conflict."""
        try:
            bid = UUID(booking_id)
        except ValueError:
            return {"status": "not_found"}
        async with self._lock(booking_id):
            for _ in range(5):
                try:
                    async with self.pool.acquire() as conn:
                        row = await repo.get(conn, bid)
                        if row is None:
                            return {"status": "not_found"}
                        previous = row["status"]
                        legal = to in rules.TRANSITIONS[S(previous)]
                        # the transition is one statement (its own transaction); a webhook's claim and the
                        # meter's closing usage must commit with it, so only they open a transaction around it
                        closes_meter = legal and previous == S.active.value
                        tx = conn.transaction() if webhook is not None or closes_meter else nullcontext()
                        async with tx:
                            if webhook is not None:
                                outcome = "applied" if legal else f"ignored: {row['status']} -> {to.value}"
                                if not await repo.record_webhook(conn, webhook[0], webhook[1], bid, webhook[2],
                                                                 outcome):
                                    return {"status": "duplicate", "state": row["status"]}
                            if not legal:
                                self._refresh(dict(row))
                                compliance.record("booking.transition", outcome="refused",
                                                  tenant_id=row["tenant_id"], actor=actor, target=bid, source=source,
                                                  trace_id=trace_id, from_state=row["status"], to_state=to.value)
                                return {"status": "ignored" if webhook else "illegal", "state": row["status"],
                                        "from": row["status"], "to": to.value}
                            cost = await self.ledger.close(conn, row, now_utc()) if closes_meter else None
                            new, msg = await repo.transition(conn, self.settings, row, to, source=source,
                                                             reason=reason, actor=actor, trace_id=trace_id,
                                                             cost_actual=cost)
                    break
                except repo.VersionConflict:
                    self.counters["conflicts"] += 1
            else:
                return {"status": "conflict"}
        self.counters["transitions"] += 1
        metrics.BOOKING_TRANSITIONS.labels(to.value).inc()
        self.outq.put_nowait(msg)
        row = dict(new)
        compliance.record("booking.transition", outcome="success", tenant_id=row["tenant_id"], actor=actor,
                          target=bid, source=source, trace_id=trace_id, from_state=previous,
                          to_state=to.value, version=row["version"])
        if rules.is_live(to):
            self.live[booking_id] = row
        else:
            self._forget_if_final(row)
            self.locks.pop(booking_id, None)
            if terminate and row.get("external_booking_id"):
                await self._terminate(row)
        return {"status": "applied", "state": row["status"], "version": row["version"]}

    def _refresh(self, row: dict) -> None:
        """Take the stored row as the truth (another writer may have moved the booking)."""
        bid = str(row["id"])
        if rules.is_live(row["status"]):
            if bid in self.live:
                self.live[bid] = row
        else:
            self._forget_if_final(row)

    def _forget_if_final(self, row: dict) -> None:
        if not rules.is_live(row["status"]):
            bid = str(row["id"])
            self.live.pop(bid, None)
            self.next_poll.pop(bid, None)

    # ---- provider ---------------------------------------------------------------------------------------
    def _adapter(self, provider: str) -> Any:
        a = self.adapters.get(provider)
        if a is None:
            from adapters import registry
            from cluster.secrets import secret_store

            a = self.adapters[provider] = registry.build(provider, self.settings, secret_store(self.settings))
        return a

    def _callback_url(self, provider: str) -> str:
        base = self.settings.booking_webhook_url or f"http://127.0.0.1:{self.settings.http_port}"
        return f"{base.rstrip('/')}/webhooks/provider/{provider}"

    def _spawn_provision(self, booking_id: str) -> None:
        if booking_id not in self.provisioning:
            self.provisioning.add(booking_id)
            task = asyncio.get_running_loop().create_task(self._provision(booking_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _provision(self, booking_id: str) -> None:
        try:
            row = self.live.get(booking_id)
            if row is None:
                return
            async with self.pool.acquire() as conn:
                offer_ext = await repo.offer_external_id(conn, row["offer_id"])
            try:
                ext = await self._adapter(row["provider_id"]).provision(ProvisionRequest(
                    booking_id, offer_ext or "", row["end_time"], self._callback_url(row["provider_id"])))
            except (AdapterError, KeyError) as exc:
                await self._move(booking_id, S.failed, source="provider", reason=str(exc)[:300])
                return
            async with self.pool.acquire() as conn:
                await repo.set_external_id(conn, row["id"], ext)
            if booking_id in self.live:
                self.live[booking_id]["external_booking_id"] = ext
            else:  # cancelled or failed while the provider was being asked: release the machine
                await self._terminate({**row, "external_booking_id": ext})
            self.next_poll[booking_id] = time.monotonic() + self.settings.booking_status_poll_s
        except Exception:
            log.exception("provisioning request failed; retried by the next status poll",
                          extra={"booking_id": booking_id})
        finally:
            self.provisioning.discard(booking_id)

    async def _terminate(self, row: dict) -> None:
        try:
            await self._adapter(row["provider_id"]).terminate(row["external_booking_id"])
        except Exception as exc:  # the booking is closed on our side either way; the failed release is logged
            log.warning("terminate failed", extra={"booking_id": str(row["id"]), "error": str(exc)[:200]})

    async def _poll(self, booking_id: str, row: dict) -> None:
        """Ask the provider (a webhook may have been lost)."""
        try:
            state = await self._adapter(row["provider_id"]).status(row["external_booking_id"])
        except Exception as exc:
            log.warning("status poll failed", extra={"booking_id": booking_id, "error": str(exc)[:200]})
            return
        if state in ("provisioned", "failed"):
            await self._move(booking_id, rules.event_state(state), source="status",
                             reason=f"provider status {state}")

    # ---- deadlines, polls, meter, relay -------------------------------------------------------------------
    async def _loop(self) -> None:
        last_sweep = last_meter = last_relay = time.monotonic()
        last_invoice = last_meter - INVOICE_EVERY_S
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            try:
                await self._tick(now)
                if now - last_meter >= self.settings.booking_meter_interval_s:
                    last_meter = now
                    await self._meter()
                if now - last_sweep >= SWEEP_S:
                    last_sweep = now
                    await self._rebuild()
                if self.shard == 0 and now - last_relay >= RELAY_AFTER_S:
                    last_relay = now
                    await self._relay()
                if self.shard == 0 and now - last_invoice >= INVOICE_EVERY_S:
                    last_invoice = now
                    today = now_utc().date()
                    for day in (today - timedelta(days=1), today):
                        await self.ledger.daily_invoices(day)
            except Exception:  # the loop outlives any one failure (PostgreSQL blips included)
                log.exception("booking host loop")

    async def _tick(self, now: float) -> None:
        wall = now_utc()
        timeout = self.settings.booking_provision_timeout_s
        work = []
        by_state = {st.value: 0 for st in S if rules.is_live(st)}
        for row in self.live.values():
            by_state[row["status"]] = by_state.get(row["status"], 0) + 1
        for st, n in by_state.items():
            metrics.BOOKINGS_LIVE.labels(st).set(n)
        for bid, row in list(self.live.items()):
            st = row["status"]
            if st == S.pending_provision.value:
                if row["pending_since"] and (wall - row["pending_since"]).total_seconds() >= timeout:
                    work.append(self._move(bid, S.failed, source="timeout", terminate=True,
                                           reason=f"provisioning timed out after {timeout:g} s"))
                elif not row.get("external_booking_id"):
                    self._spawn_provision(bid)  # resumed before its provider request was recorded
                elif now >= self.next_poll.get(bid, 0.0):
                    self.next_poll[bid] = now + self.settings.booking_status_poll_s
                    work.append(self._poll(bid, row))
            elif st == S.active.value and row["end_time"] <= wall:
                work.append(self._move(bid, S.completed, source="schedule", reason="end time reached",
                                       terminate=True))
        if work:
            await asyncio.gather(*work)

    async def meter(self) -> int:
        """Meter the Active bookings now (what the loop does every `booking_meter_interval_s`)."""
        await self._ready_or_pool()
        return await self._meter()

    async def _meter(self) -> int:
        ids = [r["id"] for r in self.live.values() if r["status"] == S.active.value]
        if not ids:
            return 0
        now, added = now_utc(), 0
        async with self.pool.acquire() as conn:
            for r in await repo.active(conn, ids):
                added += await self.ledger.meter(conn, r, now)
        return added

    async def _relay(self, older_than_s: float = RELAY_AFTER_S) -> None:
        from actors.pipeline import relay_outbox

        try:
            js = (await self.rt.get_nats()).jetstream()
        except Exception:
            return
        n = await relay_outbox(self.pool, js, repo.msg_prefix(self.settings), older_than_s)
        self.counters["relayed"] += n

    async def _publisher(self) -> None:
        """Publish booking events in order, batched; unpublished ones stay in the outbox for the relay."""
        from actors.pipeline import publish_all

        while True:
            batch = [await self.outq.get()]
            while not self.outq.empty():
                batch.append(self.outq.get_nowait())
            try:
                js = (await self.rt.get_nats()).jetstream()
                if self._backlog:
                    # this batch is in the outbox too (same transactions): publish everything waiting, oldest first
                    self._backlog = not await self._drain(js)
                    continue
                await publish_all(js, [(s, m, p) for s, m, p, _ in batch])
                async with self.pool.acquire() as conn:
                    await repo.mark_published(conn, [i for *_, i in batch])
                self.counters["published"] += len(batch)
            except Exception as exc:
                self._backlog = True
                log.warning("booking events left in the outbox", extra={"count": len(batch), "error": str(exc)[:200]})
                await asyncio.sleep(0.2)  # NATS not (yet) connected: let the reconnect happen

    async def _drain(self, js: Any) -> bool:
        """Relay our unpublished outbox rows in order until none is left; False if some still wait."""
        from actors.pipeline import relay_outbox

        prefix = repo.msg_prefix(self.settings)
        while (n := await relay_outbox(self.pool, js, prefix, 0.0)) > 0:
            self.counters["relayed"] += n
        return not await repo.has_unpublished(self.pool, prefix)
