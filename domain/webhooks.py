"""Provider webhook signatures: HMAC-SHA256 over `<timestamp>.<raw body>` with the provider's secret.

Headers: `X-Webhook-Timestamp` (Unix seconds) and `X-Webhook-Signature` (`sha256=<hex>`). A timestamp more
than `WINDOW_S` from our clock is refused, so a captured request cannot be replayed later; within the
window a replay is caught by the event id (each event is applied once).
"""
from __future__ import annotations

import hashlib
import hmac

WINDOW_S = 300
TIMESTAMP_HEADER = "X-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Webhook-Signature"


class BadSignature(ValueError):
    """Missing, malformed, stale or wrong signature; the message says which (never the expected value)."""


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body),
            "Content-Type": "application/json"}


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float,
           window_s: int = WINDOW_S) -> int:
    """Return the timestamp when the signature is valid and fresh, else raise BadSignature."""
    if not timestamp or not signature:
        raise BadSignature(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
    try:
        ts = int(timestamp)
    except ValueError:
        raise BadSignature("timestamp is not an integer (Unix seconds)") from None
    if abs(now - ts) > window_s:
        raise BadSignature(f"timestamp outside the ±{window_s} s window")
    if not hmac.compare_digest(sign(secret, timestamp, body), signature.strip()):
        raise BadSignature("signature does not match")
    return ts
