"""Provider webhook signatures (domain.webhooks): HMAC-SHA256 over `<timestamp>.<body>` and the replay window."""
from __future__ import annotations

import hashlib
import hmac

import pytest

from domain import webhooks
from domain.webhooks import BadSignature, headers, sign, verify

BODY = b'{"event_id":"e1"}'
NOW = 1_800_000_000


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    expected = hmac.new(b"k", b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert sign("k", NOW, BODY) == "sha256=" + expected
    assert sign("k", str(NOW), BODY) == sign("k", NOW, BODY)


def test_headers_carry_timestamp_signature_and_json_type():
    assert headers("k", NOW, BODY) == {"X-Webhook-Timestamp": "1800000000", "X-Webhook-Signature": sign("k", NOW, BODY),
                                       "Content-Type": "application/json"}


def test_window_edges_are_inclusive():
    sig = sign("k", NOW, BODY)
    assert verify("k", str(NOW), sig, BODY, NOW + webhooks.WINDOW_S) == NOW
    assert verify("k", str(NOW), sig, BODY, NOW - webhooks.WINDOW_S) == NOW
    with pytest.raises(BadSignature, match="^timestamp outside the ±300 s window$"):
        verify("k", str(NOW), sig, BODY, NOW + webhooks.WINDOW_S + 1)


def test_a_narrower_window_is_honoured_and_named():
    sig = sign("k", NOW, BODY)
    assert verify("k", str(NOW), sig, BODY, NOW + 10, window_s=10) == NOW
    with pytest.raises(BadSignature, match="^timestamp outside the ±10 s window$"):
        verify("k", str(NOW), sig, BODY, NOW + 11, window_s=10)


def test_signature_with_surrounding_whitespace_verifies():
    assert verify("k", str(NOW), "  " + sign("k", NOW, BODY) + "\n", BODY, NOW) == NOW


@pytest.mark.parametrize("timestamp, signature, message", [
    (None, "sha256=x", "^missing X-Webhook-Timestamp or X-Webhook-Signature$"),
    ("", "sha256=x", "^missing X-Webhook-Timestamp or X-Webhook-Signature$"),
    (str(NOW), "", "^missing X-Webhook-Timestamp or X-Webhook-Signature$"),
    ("12.5", "sha256=x", r"^timestamp is not an integer \(Unix seconds\)$"),
    (str(NOW), "sha256=" + "0" * 64, "^signature does not match$"),
])
def test_bad_headers_are_refused_saying_why(timestamp, signature, message):
    with pytest.raises(BadSignature, match=message):
        verify("k", timestamp, signature, BODY, NOW)
