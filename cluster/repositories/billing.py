"""Billing ledger storage: usage minutes, daily invoices with their lines, FX rates. Decimal only.

Usage is one row per booked minute (unique per booking and minute, so metering again after a restart
adds nothing). An invoice's lines and total are sums of those rows computed by PostgreSQL's numeric
arithmetic, so the total equals the sum of its usage exactly.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from cluster.repositories import require_transaction
from domain import bookings as rules

INVOICE_COLS = ("id, tenant_id, period_start, period_end, currency, subtotal, tax, total, status, display_currency, "
                "display_total, fx_rate, fx_source, fx_as_of, usage_count, created_at")


async def meter(conn: Any, booking: Any, from_minute: int, to_minute: int) -> int:
    """Write usage minutes [from_minute, to_minute) of an Active booking; returns how many were new."""
    if to_minute <= from_minute:
        return 0
    minutes = list(range(from_minute, to_minute))
    amounts = [rules.minute_amount(booking["price_per_hour"], m) for m in minutes]
    status = await conn.execute(
        """INSERT INTO usage_events (booking_id, tenant_id, minute, ts, cost_amount, currency)
           SELECT $1, $2, u.m, $3::timestamptz + make_interval(mins => u.m), u.amount, $4
           FROM unnest($5::int[], $6::numeric[]) AS u(m, amount)
           ON CONFLICT (booking_id, minute) DO NOTHING""",
        booking["id"], booking["tenant_id"], booking["active_since"], booking["currency"], minutes, amounts)
    return int(status.split()[-1])


async def metered_minutes(conn: Any, booking_id: UUID) -> int:
    """Minutes already written for a booking (the meter resumes from here)."""
    return int(await conn.fetchval("SELECT coalesce(max(minute) + 1, 0) FROM usage_events WHERE booking_id = $1",
                                   booking_id))


async def usage_of(conn: Any, booking_id: UUID) -> tuple[int, Decimal]:
    """(minutes, amount) metered for one booking."""
    r = await conn.fetchrow("SELECT count(*) AS n, coalesce(sum(cost_amount), 0) AS amount FROM usage_events "
                            "WHERE booking_id = $1", booking_id)
    return int(r["n"]), r["amount"]


async def tenants_with_usage(conn: Any, start: datetime, end: datetime) -> list[UUID]:
    return [r[0] for r in await conn.fetch("SELECT DISTINCT tenant_id FROM usage_events WHERE ts >= $1 AND ts < $2 "
                                           "AND tenant_id IS NOT NULL", start, end)]


async def tenant_currency(conn: Any, tenant_id: UUID) -> str:
    return (await conn.fetchval("SELECT currency FROM tenants WHERE id = $1", tenant_id) or "USD").strip()


async def latest_rate(conn: Any, base: str, quote: str, at: datetime) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT rate, source, as_of FROM fx_rates WHERE base = $1 AND quote = $2 AND as_of <= $3 "
                               "ORDER BY as_of DESC LIMIT 1", base, quote, at)


async def record_rate(conn: Any, base: str, quote: str, rate: Decimal, source: str, as_of: datetime) -> None:
    await conn.execute("INSERT INTO fx_rates (base, quote, rate, source, as_of) VALUES ($1, $2, $3, $4, $5) "
                       "ON CONFLICT (base, quote, as_of) DO UPDATE SET rate = EXCLUDED.rate, source = EXCLUDED.source",
                       base, quote, rate, source, as_of)


async def write_daily_invoice(conn: asyncpg.Connection, tenant_id: UUID, day_start: datetime, *, final: bool,
                              display: tuple[str, Decimal, str, datetime] | None) -> list[asyncpg.Record]:
    """(Re)build a tenant's invoices of one UTC day, one per ledger currency, from its usage rows.

    A final invoice is never rebuilt. `display` is (currency, rate, source, as_of) for the tenant's
    display currency, or None to show the ledger currency only. Returns the invoices.
    """
    require_transaction(conn, "billing.write_daily_invoice")
    day_end = day_start + timedelta(days=1)
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"invoice:{tenant_id}:{day_start.date()}")
    lines = await conn.fetch(
        "SELECT booking_id, currency, count(*)::int AS minutes, sum(cost_amount) AS amount FROM usage_events "
        "WHERE tenant_id = $1 AND ts >= $2 AND ts < $3 GROUP BY booking_id, currency ORDER BY booking_id",
        tenant_id, day_start, day_end)
    out = []
    for currency in sorted({r["currency"] for r in lines}):
        mine = [r for r in lines if r["currency"] == currency]
        total = sum((r["amount"] for r in mine), Decimal(0))
        existing = await conn.fetchrow(f"SELECT {INVOICE_COLS} FROM invoices WHERE tenant_id = $1 AND period_start = $2 "
                                       "AND currency = $3", tenant_id, day_start, currency)
        if existing is not None and existing["status"] != "draft":
            out.append(existing)
            continue
        d_cur, d_total, d_rate, d_src, d_asof = currency, total.quantize(Decimal("0.01")), Decimal(1), "identity", None
        if display is not None and display[0] != currency:
            d_cur, d_rate, d_src, d_asof = display[0], display[1], display[2], display[3]
            d_total = (total * d_rate).quantize(Decimal("0.01"))
        row = await conn.fetchrow(
            f"""INSERT INTO invoices (tenant_id, period_start, period_end, currency, subtotal, tax, total, status,
                                      display_currency, display_total, fx_rate, fx_source, fx_as_of, usage_count)
                VALUES ($1, $2, $3, $4, $5, 0, $5, $6, $7, $8, $9, $10, $11, $12)
                ON CONFLICT (tenant_id, period_start, currency) DO UPDATE SET subtotal = EXCLUDED.subtotal,
                    total = EXCLUDED.total, status = EXCLUDED.status, display_currency = EXCLUDED.display_currency,
                    display_total = EXCLUDED.display_total, fx_rate = EXCLUDED.fx_rate, fx_source = EXCLUDED.fx_source,
                    fx_as_of = EXCLUDED.fx_as_of, usage_count = EXCLUDED.usage_count
                RETURNING {INVOICE_COLS}""",
            tenant_id, day_start, day_end, currency, total, "final" if final else "draft", d_cur, d_total, d_rate,
            d_src, d_asof, sum(r["minutes"] for r in mine))
        await conn.execute("DELETE FROM invoice_lines WHERE invoice_id = $1", row["id"])
        await conn.executemany("INSERT INTO invoice_lines (invoice_id, booking_id, minutes, amount) VALUES ($1, $2, $3, $4)",
                               [(row["id"], r["booking_id"], r["minutes"], r["amount"]) for r in mine])
        out.append(row)
    return out


async def invoices_page(conn: Any, tenant_id: UUID, limit: int, offset: int) -> tuple[list, int]:
    rows = await conn.fetch(f"SELECT {INVOICE_COLS} FROM invoices WHERE tenant_id = $1 ORDER BY period_start DESC, id "
                            "LIMIT $2 OFFSET $3", tenant_id, limit, offset)
    return list(rows), int(await conn.fetchval("SELECT count(*) FROM invoices WHERE tenant_id = $1", tenant_id))


async def invoice(conn: Any, invoice_id: UUID, tenant_id: UUID) -> tuple[asyncpg.Record | None, list]:
    row = await conn.fetchrow(f"SELECT {INVOICE_COLS} FROM invoices WHERE id = $1 AND tenant_id = $2", invoice_id, tenant_id)
    if row is None:
        return None, []
    lines = await conn.fetch("SELECT l.booking_id, l.minutes, l.amount, b.offer_id, b.provider_id, b.price_per_hour "
                             "FROM invoice_lines l JOIN bookings b ON b.id = l.booking_id WHERE l.invoice_id = $1 "
                             "ORDER BY l.booking_id", invoice_id)
    return row, list(lines)


async def usage_sum(conn: Any, tenant_id: UUID, start: datetime, end: datetime, currency: str) -> Decimal:
    """The sum an invoice of this tenant, period and currency must equal (reconciliation)."""
    return await conn.fetchval("SELECT coalesce(sum(cost_amount), 0) FROM usage_events WHERE tenant_id = $1 "
                               "AND ts >= $2 AND ts < $3 AND currency = $4", tenant_id, start, end, currency)
