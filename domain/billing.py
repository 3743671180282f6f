"""The billing port: what bookings need from a billing system (FR-BILL-1/2).

`cluster.billing.PostgresLedger` is the working implementation (usage rows, daily invoices and FX in
PostgreSQL). A Kill Bill client can implement the same protocol later (usage -> Kill Bill usage records,
daily invoices -> its invoice run) without any caller changing.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol


class BillingBackend(Protocol):
    async def meter(self, conn: Any, booking: Any, now: datetime) -> int:
        """Record the whole minutes an Active booking has run by `now` (idempotent); returns minutes added."""

    async def close(self, conn: Any, booking: Any, now: datetime) -> Decimal:
        """Stop the meter at `now` (the started minute is billed) inside the closing transition's
        transaction; returns the booking's final cost."""

    async def daily_invoices(self, day: date, tenant_id: Any = None) -> list[dict[str, Any]]:
        """Issue (or refresh, while the day is open) the day's invoices of one tenant or every tenant."""
