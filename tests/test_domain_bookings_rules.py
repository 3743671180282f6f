"""Booking rules (domain.bookings) at their edges: span limits, minute counting, messages and fingerprints."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from domain import bookings as rules
from domain.models import BookingState as S

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def test_illegal_transition_message_names_both_states():
    with pytest.raises(rules.IllegalTransition, match=r"^illegal transition Completed -> Active$") as exc:
        rules.check("Completed", "Active")
    assert (exc.value.current, exc.value.to) == (S.completed, S.active)


def test_live_states_are_exactly_the_non_final_ones():
    assert rules.LIVE == {S.draft, S.pending_provision, S.active}
    assert [rules.is_live(s.value) for s in (S.completed, S.failed, S.cancelled)] == [False, False, False]


def test_every_provider_event_asks_for_its_state_and_unknown_ones_list_the_known():
    assert {k: rules.event_state(k) for k in rules.EVENT_STATES} == {
        "provisioning": S.pending_provision, "provisioned": S.active, "failed": S.failed,
        "completed": S.completed, "terminated": S.cancelled}
    with pytest.raises(ValueError, match=r"^unknown event type 'boom'; known: provisioning, provisioned, failed, "
                                         r"completed, terminated$"):
        rules.event_state("boom")


def test_money_rounds_half_even_to_six_decimals():
    assert rules.money(Decimal("0.0000005")) == Decimal("0.000000")
    assert rules.money(Decimal("0.0000015")) == Decimal("0.000002")
    assert rules.money(Decimal("1.23456789")) == Decimal("1.234568")


def test_cumulative_cost_is_price_times_minutes_over_sixty():
    assert rules.cumulative_cost(Decimal("3.00"), 20) == Decimal("1.000000")
    assert rules.cumulative_cost(Decimal("2.49"), 0) == Decimal("0")
    assert rules.cumulative_cost("0.60", 1) == Decimal("0.010000")   # text prices from JSON work too
    assert rules.minute_amount(Decimal("3.00"), 0) == Decimal("0.050000")


def test_minute_counts_round_started_up_and_completed_down_and_never_negative():
    assert rules.minutes_started(T0, T0 + timedelta(seconds=60)) == 1
    assert rules.minutes_started(T0, T0 + timedelta(seconds=1)) == 1
    assert rules.minutes_started(T0, T0 - timedelta(minutes=5)) == 0
    assert rules.minutes_completed(T0, T0 + timedelta(seconds=119)) == 1
    assert rules.minutes_completed(T0, T0 + timedelta(seconds=120)) == 2
    assert rules.minutes_completed(T0, T0 - timedelta(minutes=5)) == 0
    assert rules.cost_estimate(Decimal("6.00"), T0, T0 + timedelta(seconds=61)) == Decimal("0.200000")


def test_span_limits_from_hours():
    assert rules.end_time(T0, Decimal(720), None) == T0 + timedelta(hours=720)   # the longest booking
    assert rules.end_time(T0, Decimal("0.02"), None) == T0 + timedelta(seconds=72)
    for hours in (Decimal(0), Decimal(-1), Decimal("720.01")):
        with pytest.raises(ValueError, match=r"^hours must be > 0 and <= 720$"):
            rules.end_time(T0, hours, None)
    with pytest.raises(ValueError, match="^a booking lasts at least one minute$"):
        rules.end_time(T0, Decimal(1) / 60, None)   # exactly one minute is not more than one


def test_span_limits_from_end():
    assert rules.end_time(T0, None, T0 + timedelta(minutes=1, seconds=1)) == T0 + timedelta(minutes=1, seconds=1)
    assert rules.end_time(T0, None, T0 + timedelta(hours=720)) == T0 + timedelta(hours=720)
    with pytest.raises(ValueError, match="^a booking lasts at least one minute$"):
        rules.end_time(T0, None, T0 + timedelta(minutes=1))
    with pytest.raises(ValueError, match="^a booking lasts at most 720 hours$"):
        rules.end_time(T0, None, T0 + timedelta(hours=720, seconds=1))
    with pytest.raises(ValueError, match="^end must carry a timezone$"):
        rules.end_time(T0, None, datetime(2026, 3, 2))
    with pytest.raises(ValueError, match="^give exactly one of hours or end$"):
        rules.end_time(T0, None, None)


def test_request_fingerprint_is_sha256_of_compact_sorted_json():
    body = {"offer_id": "o1", "hours": Decimal("1.5"), "note": None}
    expected = hashlib.sha256(b'{"hours":"1.5","note":null,"offer_id":"o1"}').hexdigest()
    assert rules.request_fingerprint(body) == expected
