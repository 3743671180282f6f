"""`gpubroker billing invoices [--day YYYY-MM-DD]` and `gpubroker billing fx-rate BASE QUOTE RATE --source S`.

The booking hosts issue invoices hourly; `invoices` issues (or refreshes) one day's now. `fx-rate` records
a rate with where it came from (an FX feed writes the same rows).
"""
from __future__ import annotations

import argparse
import asyncio
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation

from cluster.settings import Settings


async def _invoices(settings: Settings, day: date) -> list[dict]:
    from cluster.billing import PostgresLedger
    from cluster.db import create_pool

    pool = await create_pool(settings, min_size=1, max_size=1)
    try:
        return await PostgresLedger(pool).daily_invoices(day)
    finally:
        await pool.close()


def cmd_invoices(settings: Settings, args) -> int:
    rows = asyncio.run(_invoices(settings, args.day))
    for r in rows:
        print(f"{r['tenant_id']}  {r['period_start']:%Y-%m-%d}  {r['status']:5s}  {r['total']} {r['currency'].strip()}"
              f"  ({r['usage_count']} minutes)")
    print(f"{len(rows)} invoices for {args.day}")
    return 0


async def _rate(settings: Settings, base: str, quote: str, rate: Decimal, source: str) -> None:
    from cluster.db import create_pool
    from cluster.repositories.billing import record_rate

    pool = await create_pool(settings, min_size=1, max_size=1)
    try:
        await record_rate(pool, base, quote, rate, source, datetime.now(timezone.utc))
    finally:
        await pool.close()


def cmd_fx_rate(settings: Settings, args) -> int:
    asyncio.run(_rate(settings, args.base, args.quote, args.rate, args.source))
    print(f"1 {args.base} = {args.rate} {args.quote} ({args.source})")
    return 0


def _currency(v: str) -> str:
    if len(v) != 3 or not v.isalpha():
        raise argparse.ArgumentTypeError("a 3-letter ISO 4217 code")
    return v.upper()


def _rate_arg(v: str) -> Decimal:
    try:
        d = Decimal(v)
    except InvalidOperation:
        raise argparse.ArgumentTypeError("a decimal number") from None
    if not d.is_finite() or d <= 0:
        raise argparse.ArgumentTypeError("a positive number")
    return d


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("billing", help="invoices and FX rates")
    bsub = p.add_subparsers(dest="billing_command", required=True)
    i = bsub.add_parser("invoices", help="issue (or refresh) the daily invoices of one UTC day")
    i.add_argument("--day", type=date.fromisoformat, default=datetime.now(timezone.utc).date(),
                   help="the UTC day, YYYY-MM-DD (default: today)")
    i.set_defaults(func=cmd_invoices)
    f = bsub.add_parser("fx-rate", help="record an FX rate and its source")
    f.add_argument("base", type=_currency, help="currency the ledger counts in (USD)")
    f.add_argument("quote", type=_currency, help="the tenant's display currency, e.g. EUR")
    f.add_argument("rate", type=_rate_arg, help="units of QUOTE per one BASE")
    f.add_argument("--source", required=True, help="where the rate comes from (logged on invoices)")
    f.set_defaults(func=cmd_fx_rate)
