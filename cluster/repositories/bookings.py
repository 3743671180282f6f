"""Bookings storage: create, read, page, and transition (row + transition + audit entry + outbox event).

A transition is one statement (the booking row, its transition row, its outbox row and its audit entry),
a transaction by itself or part of the caller's:

    async with pool.acquire() as conn:
        row, event = await transition(conn, settings, row, BookingState.active, source="webhook")

The UPDATE matches the version it read (optimistic concurrency): a concurrent writer makes it raise
VersionConflict, and the caller re-reads. The outbox row is the event relayed to JetStream on
`bookings.<tenant>.<booking>` with Nats-Msg-Id `<db>:bk:<booking>:<version>` (deduplicated).
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from cluster.messaging import subject
from cluster.repositories import require_transaction
from cluster.repositories.audit import append_ctes, ensure_chain
from domain import bookings as rules
from domain.audit import new_entry, now_utc
from domain.models import BookingState as S

COLS = ("id, tenant_id, user_id, offer_id, provider_id, start_time, end_time, status, version, "
        "external_booking_id, price_per_hour, currency, cost_estimate, cost_actual, idempotency_key, "
        "request_hash, pending_since, active_since, closed_at, last_error, created_at, updated_at")
LIVE_STATES = [s.value for s in rules.LIVE]


class VersionConflict(RuntimeError):
    """The booking changed since it was read (another writer won); re-read and decide again."""


def msg_prefix(settings: Any) -> str:
    return f"{settings.database_name}:bk:"


async def offer_for_booking(conn: asyncpg.Connection, offer_id: UUID) -> asyncpg.Record | None:
    """The offer as it is now (price, availability, freshness), for the re-check before accepting."""
    return await conn.fetchrow(
        "SELECT id, provider_id, price_per_hour, currency, availability, last_seen_at, now() - last_seen_at AS age "
        "FROM offers WHERE id = $1", offer_id)


async def offer_external_id(conn: Any, offer_id: UUID) -> str | None:
    return await conn.fetchval("SELECT external_id FROM offers WHERE id = $1", offer_id)


async def by_idempotency_key(conn: asyncpg.Connection, tenant_id: UUID, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {COLS} FROM bookings WHERE tenant_id = $1 AND idempotency_key = $2",
                               tenant_id, key)


async def get(conn: Any, booking_id: UUID, tenant_id: UUID | None = None) -> asyncpg.Record | None:
    """One booking; with `tenant_id`, only if it belongs to that tenant (others' ids read as absent)."""
    return await conn.fetchrow(f"SELECT {COLS} FROM bookings WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)",
                               booking_id, tenant_id)


async def transitions(conn: Any, booking_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT version, from_state, to_state, source, reason, ts FROM booking_transitions "
                            "WHERE booking_id = $1 ORDER BY version", booking_id)
    return [dict(r) for r in rows]


async def page(conn: Any, tenant_id: UUID, state: str | None, limit: int, offset: int) -> tuple[list, int]:
    """(rows newest first, total) of a tenant's bookings, optionally in one state."""
    rows = await conn.fetch(f"SELECT {COLS} FROM bookings WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2) "
                            "ORDER BY created_at DESC, id LIMIT $3 OFFSET $4", tenant_id, state, limit, offset)
    total = await conn.fetchval("SELECT count(*) FROM bookings WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2)",
                                tenant_id, state)
    return list(rows), int(total)


async def live(conn: Any) -> list[asyncpg.Record]:
    """Every booking not yet final (the Booking hosts rebuild theirs from this)."""
    return list(await conn.fetch(f"SELECT {COLS} FROM bookings WHERE status = ANY($1::text[]) ORDER BY created_at",
                                 LIVE_STATES))


async def active(conn: Any, ids: list[UUID]) -> list[asyncpg.Record]:
    """Those of `ids` that are Active now, as stored (the meter trusts the row, not a host's copy)."""
    return list(await conn.fetch(f"SELECT {COLS} FROM bookings WHERE id = ANY($1::uuid[]) AND status = 'Active'", ids))


def event_payload(row: Any, previous: str | None, source: str, reason: str | None) -> dict[str, Any]:
    """The booking event (NATS, WebSocket): the SRS's {state, ts, source} plus what a client needs."""
    return {"version": 1, "booking_id": str(row["id"]), "tenant_id": str(row["tenant_id"]), "state": row["status"],
            "from": previous, "booking_version": row["version"], "source": source, "reason": reason,
            "ts": row["updated_at"].isoformat()}


# A change is ONE statement, its own transaction when the caller has none: the booking row, its transition
# row, its outbox row and its audit entry, written only together (the change selects FROM the locked chain
# head, the others FROM the change). No client round trip happens while the tenant's chain is locked.
# `{change}` is an INSERT or UPDATE of bookings whose parameters start at $7; $1-$6 are the transition's from
# state, source and reason, and the event's subject, msg id and payload, known before the statement since
# the caller chose the id, version and time. The audit's parameters follow the change's.
_CHANGE = """
WITH {head},
b AS ({change} RETURNING {cols}),
t AS (INSERT INTO booking_transitions (booking_id, version, from_state, to_state, source, reason, ts)
      SELECT id, version, $1::text, status, $2::text, $3::text, updated_at FROM b),
o AS (INSERT INTO outbox (subject, msg_id, payload) SELECT $4::text, $5::text, $6::jsonb FROM b RETURNING id),
{append}
SELECT EXISTS (SELECT 1 FROM audit_head) AS has_head, b.*, (SELECT id FROM o) AS outbox_id
FROM (SELECT 1) AS one LEFT JOIN b ON true
"""
_CREATE = """
    INSERT INTO bookings (id, tenant_id, user_id, offer_id, provider_id, start_time, end_time, status, version,
                          price_per_hour, currency, cost_estimate, idempotency_key, request_hash, created_at, updated_at)
    SELECT $7::uuid, $8::uuid, $9::uuid, $10::uuid, $11::text, $12::timestamptz, $13::timestamptz, 'Draft', 0,
           $14::numeric, $15::text, $16::numeric, $17::text, $18::text, $19::timestamptz, $19::timestamptz
    FROM audit_head
    ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"""
_CREATE_PARAMS = 19
_TRANSITION = """
    UPDATE bookings SET status = $9, version = version + 1, updated_at = $10,
           pending_since = CASE WHEN $9 = 'PendingProvision' THEN $10 ELSE pending_since END,
           active_since = CASE WHEN $9 = 'Active' THEN $10 ELSE active_since END,
           closed_at = CASE WHEN $9 IN ('Completed', 'Failed', 'Cancelled') THEN $10 ELSE closed_at END,
           last_error = CASE WHEN $9 = 'Failed' THEN $3 ELSE last_error END,
           external_booking_id = coalesce($11, external_booking_id),
           cost_actual = coalesce($12, cost_actual)
    WHERE id = $7 AND version = $8 AND EXISTS (SELECT 1 FROM audit_head)"""
_TRANSITION_PARAMS = 12


def _event(settings: Any, after: dict[str, Any], previous: str | None, source: str,
           reason: str | None) -> tuple[str, str, dict[str, Any]]:
    """(subject, Nats-Msg-Id, payload) of the event of a change that leaves the booking as `after`."""
    subj = subject(settings, "bookings", str(after["tenant_id"]), str(after["id"]))
    return subj, f"{msg_prefix(settings)}{after['id']}:{after['version']}", event_payload(after, previous, source, reason)


async def _change(conn: asyncpg.Connection, change: str, n_params: int, params: list[Any], after: dict[str, Any],
                  previous: str | None, source: str, reason: str | None, actor: Any,
                  trace_id: str | None) -> asyncpg.Record | None:
    """Run a change with its audit entry; None when it changed nothing (version or idempotency key taken)."""
    entry = new_entry(after["tenant_id"], actor, "booking.created" if previous is None else "booking.transition",
                      "booking", after["id"], details={"from": previous, "to": after["status"],
                                                       "version": after["version"], "source": source,
                                                       "reason": reason, "trace_id": trace_id})
    head, append, audit_params = append_ctes(entry, n_params + 1, after="b")
    sql = _CHANGE.format(head=head, change=change, cols=COLS, append=append)
    row = await conn.fetchrow(sql, *params, *audit_params)
    if not row["has_head"]:  # the tenant's chain has no head yet: create it, then the same statement again
        async with conn.transaction():
            await ensure_chain(conn, after["tenant_id"])
            row = await conn.fetchrow(sql, *params, *audit_params)
    return row if row["id"] is not None else None


async def create(conn: asyncpg.Connection, settings: Any, *, tenant_id: UUID, user_id: UUID, offer: Any,
                 start: datetime, end: datetime, idempotency_key: str | None, request_hash: str,
                 trace_id: str | None) -> tuple[asyncpg.Record | None, tuple | None]:
    """Insert a Draft booking at the offer's current price (locked). Returns (row, outbox message) or
    (None, None) when the tenant's Idempotency-Key is already taken (the caller reads that booking).
    One statement: atomic by itself, or part of the caller's transaction."""
    price, now = offer["price_per_hour"], now_utc()
    draft = {"id": uuid4(), "tenant_id": tenant_id, "status": S.draft.value, "version": 0, "updated_at": now}
    subj, msg_id, payload = _event(settings, draft, None, "api", None)
    row = await _change(conn, _CREATE, _CREATE_PARAMS, [
        None, "api", None, subj, msg_id, payload, draft["id"], tenant_id, user_id, offer["id"], offer["provider_id"],
        start, end, price, offer["currency"], rules.cost_estimate(price, start, end), idempotency_key, request_hash,
        now], draft, None, "api", None, user_id, trace_id)
    if row is None:
        return None, None
    return row, (subj, msg_id, json.dumps(payload), row["outbox_id"])


async def transition(conn: asyncpg.Connection, settings: Any, row: Any, to: S, *, source: str,
                     reason: str | None = None, actor: Any = None, trace_id: str | None = None,
                     external_id: str | None = None, cost_actual: Any = None) -> tuple[asyncpg.Record, tuple]:
    """Move `row` (as read, with its version) to `to`. Raises IllegalTransition or VersionConflict.
    One statement: atomic by itself, or part of the caller's transaction."""
    previous = row["status"]
    rules.check(previous, to)
    now = now_utc()
    after = {"id": row["id"], "tenant_id": row["tenant_id"], "status": to.value, "version": row["version"] + 1,
             "updated_at": now}
    subj, msg_id, payload = _event(settings, after, previous, source, reason)
    new = await _change(conn, _TRANSITION, _TRANSITION_PARAMS, [
        previous, source, reason, subj, msg_id, payload, row["id"], row["version"], to.value, now, external_id,
        cost_actual], after, previous, source, reason, actor, trace_id)
    if new is None:
        raise VersionConflict(f"booking {row['id']} changed since version {row['version']}")
    return new, (subj, msg_id, json.dumps(payload), new["outbox_id"])


async def set_external_id(conn: Any, booking_id: UUID, external_id: str) -> None:
    """The provider's id for the booking (no state change, no event: provisioning was requested)."""
    await conn.execute("UPDATE bookings SET external_booking_id = $2 WHERE id = $1 AND external_booking_id IS NULL",
                       booking_id, external_id)


async def by_external_id(conn: Any, provider_id: str, external_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {COLS} FROM bookings WHERE provider_id = $1 AND external_booking_id = $2",
                               provider_id, external_id)


async def webhook_seen(conn: Any, provider_id: str, event_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT booking_id, event_type, outcome FROM webhook_events "
                               "WHERE provider_id = $1 AND event_id = $2", provider_id, event_id)


async def record_webhook(conn: asyncpg.Connection, provider_id: str, event_id: str, booking_id: UUID | None,
                         event_type: str, outcome: str) -> bool:
    """Claim the event id (in the transaction that applies it). False: it was applied before."""
    require_transaction(conn, "bookings.record_webhook")
    got = await conn.fetchval(
        "INSERT INTO webhook_events (provider_id, event_id, booking_id, event_type, outcome) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT DO NOTHING RETURNING true", provider_id, event_id, booking_id, event_type, outcome)
    return bool(got)


async def mark_published(conn: Any, outbox_ids: list[int]) -> None:
    await conn.execute("UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", outbox_ids)


async def has_unpublished(conn: Any, prefix: str) -> bool:
    """Whether booking events (message ids starting with `prefix`) still wait in the outbox."""
    return await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL AND msg_id LIKE $1)", prefix + "%")
