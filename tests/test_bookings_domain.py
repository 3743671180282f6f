"""The booking state machine, money rules and webhook signatures (pure; no services)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from domain import bookings as rules
from domain import webhooks
from domain.models import BookingState as S

LEGAL = {
    (S.draft, S.pending_provision), (S.draft, S.cancelled), (S.draft, S.failed),
    (S.pending_provision, S.active), (S.pending_provision, S.cancelled), (S.pending_provision, S.failed),
    (S.active, S.completed), (S.active, S.cancelled), (S.active, S.failed),
}


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("to", list(S))
def test_every_transition_is_legal_or_refused_naming_both_states(current, to):
    if (current, to) in LEGAL:
        assert rules.check(current, to) is to
    else:
        with pytest.raises(rules.IllegalTransition) as exc:
            rules.check(current.value, to.value)
        assert exc.value.details() == {"from": current.value, "to": to.value}
        assert current.value in str(exc.value) and to.value in str(exc.value)


def test_final_and_live_states():
    assert rules.FINAL == {S.completed, S.failed, S.cancelled}
    assert all(rules.is_live(s) for s in (S.draft, S.pending_provision, S.active))
    assert rules.event_state("provisioned") is S.active and rules.event_state("failed") is S.failed
    with pytest.raises(ValueError, match="unknown event type"):
        rules.event_state("exploded")


def test_minute_amounts_sum_to_the_exact_cumulative_cost():
    for price in (Decimal("2.49"), Decimal("0.44"), Decimal("0.71"), Decimal("19.92"), Decimal("0.000001")):
        amounts = [rules.minute_amount(price, m) for m in range(130)]
        for n in (1, 7, 60, 61, 130):
            assert sum(amounts[:n]) == rules.cumulative_cost(price, n)
        assert sum(amounts[:60]) == price.quantize(rules.MONEY)  # an hour costs the hourly price
        assert max(amounts) - min(amounts) <= Decimal("0.000001")
    assert [rules.minute_amount(Decimal("0.44"), m) for m in range(4)] == [
        Decimal("0.007333"), Decimal("0.007334"), Decimal("0.007333"), Decimal("0.007333")]
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert rules.minutes_started(t0, t0 + timedelta(seconds=61)) == 2
    assert rules.minutes_completed(t0, t0 + timedelta(seconds=61)) == 1
    assert rules.minutes_started(t0, t0) == 0
    assert rules.cost_estimate(Decimal("2.49"), t0, t0 + timedelta(hours=1)) == Decimal("2.490000")


def test_end_time_from_hours_or_end():
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert rules.end_time(t0, Decimal("1.5"), None) == t0 + timedelta(minutes=90)
    assert rules.end_time(t0, None, t0 + timedelta(hours=2)) == t0 + timedelta(hours=2)
    for hours, end, msg in ((None, None, "exactly one"), (Decimal(1), t0, "exactly one"),
                            (Decimal("0.01"), None, "at least one minute"), (Decimal(721), None, "hours must be"),
                            (None, t0 - timedelta(hours=1), "at least one minute"),
                            (None, datetime(2026, 1, 2), "timezone")):
        with pytest.raises(ValueError, match=msg):
            rules.end_time(t0, hours, end)


def test_request_fingerprint_ignores_key_order_only():
    a = rules.request_fingerprint({"offer_id": "x", "hours": "1"})
    assert a == rules.request_fingerprint({"hours": "1", "offer_id": "x"})
    assert a != rules.request_fingerprint({"offer_id": "x", "hours": "2"})


def test_webhook_signature_window_and_tampering():
    body = b'{"event_id":"e1","type":"provisioned"}'
    now = 1_800_000_000
    sig = webhooks.sign("s3cret", now, body)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert webhooks.verify("s3cret", str(now), sig, body, now + 299) == now
    for ts, signature, payload, secret, msg in (
            (str(now), sig, body, "s3cret", None),
            (str(now), sig, body + b" ", "s3cret", "does not match"),
            (str(now), sig, body, "other", "does not match"),
            (str(now - 301), webhooks.sign("s3cret", now - 301, body), body, "s3cret", "window"),
            (str(now + 301), webhooks.sign("s3cret", now + 301, body), body, "s3cret", "window"),
            ("abc", sig, body, "s3cret", "not an integer"),
            (None, sig, body, "s3cret", "missing"),
            (str(now), None, body, "s3cret", "missing")):
        if msg is None:
            continue
        with pytest.raises(webhooks.BadSignature, match=msg):
            webhooks.verify(secret, ts, signature, payload, now)


async def test_real_adapters_refuse_provisioning_clearly_and_only_the_sandbox_books():
    from adapters import registry
    from adapters.base import ProvisionRequest, ProvisionUnsupported

    req = ProvisionRequest("b1", "x", datetime(2030, 1, 1, tzinfo=timezone.utc), "http://127.0.0.1:9/webhooks/provider/x")
    bookable = []
    for name in registry.names():
        a = registry.build(name)
        if a.SUPPORTS_PROVISIONING:
            bookable.append(name)
            continue
        for call in (a.provision(req), a.terminate("e1"), a.status("e1")):
            with pytest.raises(ProvisionUnsupported, match=f"booking through .* is not supported yet"):
                await call
    assert bookable == ["sandbox"]
