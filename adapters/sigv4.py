"""AWS Signature Version 4 for one request (botocore is not a dependency; the AWS adapter needs only this).

Follows AWS's "Create a signed AWS API request" (IAM user guide, SigV4): canonical request (method, URI
path, sorted query, lower-cased sorted headers, signed-header list, SHA-256 of the payload) -> string to
sign (AWS4-HMAC-SHA256, timestamp, scope, hash of the canonical request) -> signing key derived by HMAC
chain date/region/service/"aws4_request" -> hex signature in the Authorization header. Checked in
tests/test_adapters_live.py against the published SigV4 test-suite vectors (get-vanilla,
get-vanilla-query-order-key-case, post-vanilla).
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit, parse_qsl

ALGORITHM = "AWS4-HMAC-SHA256"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    k = _hmac(("AWS4" + secret_key).encode(), date)
    for part in (region, service, "aws4_request"):
        k = _hmac(k, part)
    return k


def _canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    enc = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in enc)


def canonical_request(method: str, url: str, headers: dict[str, str], payload: bytes) -> tuple[str, str]:
    """(canonical request, signed-header list) of a request whose headers already include host and x-amz-date."""
    parts = urlsplit(url)
    path = quote(parts.path or "/", safe="/-_.~")
    canon = {k.lower().strip(): " ".join(str(v).split()) for k, v in headers.items()}
    signed = ";".join(sorted(canon))
    lines = "".join(f"{k}:{canon[k]}\n" for k in sorted(canon))
    body_hash = hashlib.sha256(payload).hexdigest()
    return "\n".join([method.upper(), path, _canonical_query(parts.query), lines, signed, body_hash]), signed


def sign(method: str, url: str, headers: dict[str, str], payload: bytes, *, access_key: str, secret_key: str,
         region: str, service: str, session_token: str | None = None, now: datetime | None = None) -> dict[str, str]:
    """The headers to send: the given ones plus Host, X-Amz-Date, (X-Amz-Security-Token) and Authorization."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    amz_date, date = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    out = dict(headers)
    out["Host"] = urlsplit(url).netloc
    out["X-Amz-Date"] = amz_date
    if session_token:
        out["X-Amz-Security-Token"] = session_token
    creq, signed = canonical_request(method, url, out, payload)
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    sig = hmac.new(signing_key(secret_key, date, region, service), to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={sig}"
    return out
