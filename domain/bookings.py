"""The booking lifecycle (FR-BOOK-2) as pure rules: legal transitions, live states, provider events, money.

    Draft -> PendingProvision -> Active -> Completed | Cancelled
    Draft | PendingProvision -> Cancelled          (the user cancels before the machine runs)
    any live state -> Failed                        (irrecoverable provider error; provisioning timeout)

Completed, Failed and Cancelled are final. Everything that changes a booking's state asks `check()`.
Money is Decimal throughout; minute m of usage costs the growth of the rounded cumulative cost
(price x minutes / 60, half even, the ledger's 6 decimals), so N minutes sum to exactly price x N / 60
and an invoice is the exact sum of its usage rows.
"""
from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from domain.models import BookingState as S

TRANSITIONS: dict[S, frozenset[S]] = {
    S.draft: frozenset({S.pending_provision, S.cancelled, S.failed}),
    S.pending_provision: frozenset({S.active, S.cancelled, S.failed}),
    S.active: frozenset({S.completed, S.cancelled, S.failed}),
    S.completed: frozenset(),
    S.failed: frozenset(),
    S.cancelled: frozenset(),
}
FINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
LIVE = frozenset(S) - FINAL
MONEY = Decimal("0.000001")  # numeric(14, 6) in the ledger
MAX_HOURS = Decimal(24 * 30)


class IllegalTransition(Exception):
    """`to` cannot follow `current`; the API answers 409 `illegal_transition` naming both."""

    def __init__(self, current: S, to: S):
        super().__init__(f"illegal transition {current.value} -> {to.value}")
        self.current, self.to = current, to

    def details(self) -> dict[str, str]:
        return {"from": self.current.value, "to": self.to.value}


def check(current: S | str, to: S | str) -> S:
    """Return `to` as a state when the transition is legal, else raise IllegalTransition."""
    cur, nxt = S(current), S(to)
    if nxt not in TRANSITIONS[cur]:
        raise IllegalTransition(cur, nxt)
    return nxt


def is_live(state: S | str) -> bool:
    return S(state) in LIVE


# Provider events (webhooks and status polls) in our vocabulary, and the state each one asks for.
EVENT_STATES: dict[str, S] = {
    "provisioning": S.pending_provision,  # progress report; arriving after "provisioned" it is stale
    "provisioned": S.active,    # the machine runs
    "failed": S.failed,         # irrecoverable: any live state -> Failed
    "completed": S.completed,   # the provider ended a running machine at its end time
    "terminated": S.cancelled,  # the machine was stopped on request
}


def event_state(kind: str) -> S:
    try:
        return EVENT_STATES[kind]
    except KeyError:
        raise ValueError(f"unknown event type {kind!r}; known: {', '.join(EVENT_STATES)}") from None


def money(value: Decimal) -> Decimal:
    return value.quantize(MONEY, rounding=ROUND_HALF_EVEN)


def cumulative_cost(price_per_hour: Decimal, minutes: int) -> Decimal:
    """The cost of a booking's first `minutes` minutes at its locked hourly price, rounded once."""
    return money(Decimal(price_per_hour) * minutes / 60)


def minute_amount(price_per_hour: Decimal, minute: int) -> Decimal:
    """The usage row of minute `minute` (0-based): the growth of the rounded cumulative cost, so any run of
    minutes sums to exactly `cumulative_cost` (an hour at 0.44/h bills 0.440000, never 0.439980)."""
    return cumulative_cost(price_per_hour, minute + 1) - cumulative_cost(price_per_hour, minute)


def cost_estimate(price_per_hour: Decimal, start: datetime, end: datetime) -> Decimal:
    """Whole minutes of the booked span (each started minute counts), priced like the meter prices them."""
    return cumulative_cost(price_per_hour, minutes_started(start, end))


def minutes_started(start: datetime, end: datetime) -> int:
    """Minutes begun between start and end: what closing the meter charges (a started minute is billed)."""
    return max(0, math.ceil((end - start).total_seconds() / 60))


def minutes_completed(start: datetime, now: datetime) -> int:
    """Whole minutes elapsed: what the running meter has charged by `now`."""
    return max(0, int((now - start).total_seconds() // 60))


def end_time(start: datetime, hours: Decimal | None, end: datetime | None) -> datetime:
    """The booking's end from `hours` or `end` (exactly one); ValueError says why a span is refused."""
    if (hours is None) == (end is None):
        raise ValueError("give exactly one of hours or end")
    if hours is not None:
        if not (Decimal(0) < hours <= MAX_HOURS):
            raise ValueError(f"hours must be > 0 and <= {MAX_HOURS}")
        out = start + timedelta(seconds=float(hours * 3600))
    else:
        assert end is not None
        if end.tzinfo is None:
            raise ValueError("end must carry a timezone")
        out = end
    if out <= start + timedelta(minutes=1):
        raise ValueError("a booking lasts at least one minute")
    if out - start > timedelta(hours=float(MAX_HOURS)):
        raise ValueError(f"a booking lasts at most {MAX_HOURS} hours")
    return out


def request_fingerprint(body: dict[str, Any]) -> str:
    """What makes two requests with one Idempotency-Key 'the same': their canonical JSON body."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()
