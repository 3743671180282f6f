"""The audit hash chain (SEC-AUDIT-1): one canonical serialization and the chain rule, defined once.

    hash_curr = sha256(hash_prev || canonical_json(entry))

`hash_prev` of a tenant's first entry is GENESIS. The canonical form is JSON with sorted keys, no spaces,
UTF-8, timestamps in UTC ISO-8601 with microseconds, ids as strings. Entries never hold emails or other
direct personal data (ips are truncated to their network), so erasing a user never touches the chain.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

GENESIS = "0" * 64
HASHED_FIELDS = ("tenant_id", "user_id", "action", "target_type", "target_id", "ts", "ip", "user_agent", "details")


def _norm(value: Any) -> Any:
    """JSON-stable values: floats become strings (jsonb may re-render them), other scalars kept."""
    if isinstance(value, Mapping):
        return {str(k): _norm(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, datetime):
        return ts_text(value)
    return str(value)


def normalize_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    return _norm(dict(details or {}))


def ts_text(ts: datetime) -> str:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).isoformat(timespec="microseconds")


def now_utc() -> datetime:
    """A timestamp PostgreSQL stores exactly (microsecond precision)."""
    return datetime.now(timezone.utc)


def anonymize_ip(ip: str | None) -> str | None:
    """Truncate to the network (/24 for IPv4, /48 for IPv6): useful for security, not a personal identifier."""
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False).network_address)



def new_entry(tenant_id: Any, user_id: Any, action: str, target_type: str | None = None, target_id: Any = None,
              *, ip: str | None = None, user_agent: str | None = None,
              details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An entry as it is hashed and stored, before it is linked to its chain: ids as text, the address
    anonymized, the user agent cut to 200 characters, details normalized."""
    def text(v: Any) -> str | None:
        return None if v is None else str(v)

    return {"tenant_id": text(tenant_id), "user_id": text(user_id), "action": action, "target_type": target_type,
            "target_id": text(target_id), "ts": now_utc(), "ip": anonymize_ip(ip),
            "user_agent": (user_agent or None) and user_agent[:200], "details": normalize_details(details)}

def canonical(entry: Mapping[str, Any]) -> bytes:
    """The bytes hashed for an entry: only HASHED_FIELDS, in one fixed JSON form."""
    body = {}
    for f in HASHED_FIELDS:
        v = entry.get(f)
        if f == "ts":
            v = ts_text(v) if isinstance(v, datetime) else v
        elif f == "details":
            v = normalize_details(v)
        elif v is not None:
            v = str(v)
        body[f] = v
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def chain_hash(hash_prev: str | None, entry: Mapping[str, Any]) -> str:
    return hashlib.sha256((hash_prev or GENESIS).encode("ascii") + canonical(entry)).hexdigest()


@dataclass(frozen=True)
class BrokenLink:
    """The first entry of a chain that does not verify, and why."""

    tenant_id: str | None
    entry_id: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "entry_id": self.entry_id, "reason": self.reason}


def verify_chain(entries: Iterable[Mapping[str, Any]], prev: str = GENESIS) -> tuple[int, BrokenLink | None]:
    """Walk one tenant's entries in id order, starting after `prev` (GENESIS for the first entry).

    Returns (entries checked, first broken link or None).
    """
    n = 0
    for e in entries:
        n += 1
        tenant = str(e["tenant_id"]) if e.get("tenant_id") is not None else None
        if (e.get("hash_prev") or GENESIS) != prev:
            return n, BrokenLink(tenant, e["id"], "hash_prev does not match the previous entry's hash_curr")
        if chain_hash(prev, e) != e.get("hash_curr"):
            return n, BrokenLink(tenant, e["id"], "hash_curr does not match the entry's content")
        prev = e["hash_curr"]
    return n, None
