"""`PostgresLedger`: the billing port (domain.billing.BillingBackend) on PostgreSQL.

Usage: one row per booked minute at the price locked in the booking (domain.bookings.minute_amount).
Invoices: one per tenant, UTC day and ledger currency, final once the day is over; the total is the
numeric sum of the day's usage rows; the display amount uses the newest FX rate (rate, source and time
kept on the invoice) for the tenant's currency.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from cluster import compliance
from cluster.repositories import billing as repo
from domain import bookings as rules


class PostgresLedger:
    def __init__(self, pool: Any):
        self.pool = pool

    async def meter(self, conn: Any, booking: Any, now: datetime) -> int:
        if booking["active_since"] is None:
            return 0
        done = await repo.metered_minutes(conn, booking["id"])
        return await repo.meter(conn, booking, done, rules.minutes_completed(booking["active_since"], now))

    async def close(self, conn: Any, booking: Any, now: datetime) -> Decimal:
        if booking["active_since"] is None:
            return Decimal("0")
        done = await repo.metered_minutes(conn, booking["id"])
        await repo.meter(conn, booking, done, rules.minutes_started(booking["active_since"], now))
        return (await repo.usage_of(conn, booking["id"]))[1]

    async def daily_invoices(self, day: date, tenant_id: Any = None) -> list[dict[str, Any]]:
        start = datetime.combine(day, time(0), tzinfo=timezone.utc)
        end = start + timedelta(days=1)
        final = datetime.now(timezone.utc) >= end
        out: list[dict[str, Any]] = []
        async with self.pool.acquire() as conn:
            tenants = [tenant_id] if tenant_id is not None else await repo.tenants_with_usage(conn, start, end)
            for t in tenants:
                async with conn.transaction():
                    cur = await repo.tenant_currency(conn, t)
                    display = None
                    if cur != "USD":
                        fx = await repo.latest_rate(conn, "USD", cur, end)
                        if fx is not None:
                            display = (cur, fx["rate"], fx["source"], fx["as_of"])
                    rows = await repo.write_daily_invoice(conn, t, start, final=final, display=display)
                for r in rows:
                    compliance.record("invoice.issued", outcome="success", tenant_id=t, target=r["id"],
                                      source="billing", day=str(day), status=r["status"], usage_minutes=r["usage_count"])
                    out.append(dict(r))
        return out
