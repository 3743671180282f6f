"""Audit trail storage: append in the caller's transaction (hash chain per tenant), read, and verify.

    async with pool.acquire() as conn, conn.transaction():
        ...the change...
        await append_audit(conn, tenant_id, user_id, "booking.created", "booking", booking_id, details={...})

Appends to one chain are serialized by a row lock on the chain's head (`audit_chain_heads`), held until
commit or rollback, so two transactions never link to the same predecessor under any isolation level:
READ COMMITTED waits for the head; REPEATABLE READ and SERIALIZABLE transactions whose snapshot predates
the head raise `asyncpg.SerializationError` instead of linking to a stale one. Run such transactions
through `cluster.db.run_transaction`, which retries them. Never put emails, passwords, tokens or secrets
in `details`.
"""
from __future__ import annotations

import uuid
from typing import Any, Mapping

import asyncpg

from domain.audit import (GENESIS, BrokenLink, anonymize_ip, canonical, chain_hash, normalize_details, now_utc,
                          verify_chain)

_COLS = "id, tenant_id, user_id, action, target_type, target_id, ts, ip, user_agent, details, hash_prev, hash_curr"


def _s(v: Any) -> str | None:
    return None if v is None else str(v)


def audit_entry(tenant_id: Any, user_id: Any, action: str, target_type: str | None = None, target_id: Any = None,
                *, ip: str | None = None, user_agent: str | None = None,
                details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An entry as it is hashed and stored, before it is linked to its chain."""
    return {"tenant_id": _s(tenant_id), "user_id": _s(user_id), "action": action, "target_type": target_type,
            "target_id": _s(target_id), "ts": now_utc(), "ip": anonymize_ip(ip),
            "user_agent": (user_agent or None) and user_agent[:200], "details": normalize_details(details)}


def append_ctes(entry: dict[str, Any], first: int, after: str | None = None) -> tuple[str, str, list[Any]]:
    """The append of `entry` as CTEs of a caller's statement, so that its change and its audit entry are one
    statement: the chain's lock is then held for the statement and its commit, never across a client round
    trip (at 100 concurrent bookings the round trips of a busy caller were what serialized a tenant's
    appends). Returns (head, append, params), params numbered from `first`:

    - `head` defines `audit_head`, the chain's head row locked FOR UPDATE, which waits for a concurrent
      appender and then reads the head it committed (READ COMMITTED) or raises a serialization error
      (REPEATABLE READ, SERIALIZABLE). It is empty for a chain without a head: the change's CTEs should then
      write nothing (select FROM audit_head), and the caller append with `append_audit` in a transaction.
    - `append` defines `audit_entry` (the entry linked to the head, RETURNING id, hash_prev, hash_curr) and
      `audit_move` (the head moved to it), written once per row of the CTE `after` (if given).

    The hash is the one `chain_hash` computes: sha256 of the predecessor's hash (ASCII) and the entry's
    canonical bytes."""
    c, n = f"${first}", [f"${first + i}" for i in range(1, 12)]
    head = f"audit_head AS (SELECT hash_curr FROM audit_chain_heads WHERE chain = {c}::text FOR UPDATE)"
    append = f"""audit_entry AS (
    INSERT INTO audit_log (tenant_id, user_id, action, target_type, target_id, ts, ip, user_agent, details,
                           hash_prev, hash_curr)
    SELECT {n[0]}::uuid, {n[1]}::uuid, {n[2]}::text, {n[3]}::text, {n[4]}::text, {n[5]}::timestamptz, {n[6]}::text,
           {n[7]}::text, {n[8]}::jsonb, audit_head.hash_curr,
           encode(sha256(convert_to(coalesce(audit_head.hash_curr, {n[9]}::text), 'UTF8') || {n[10]}::bytea), 'hex')
    FROM audit_head{", " + after if after else ""}
    RETURNING id, hash_prev, hash_curr
), audit_move AS (
    UPDATE audit_chain_heads h SET last_id = audit_entry.id, hash_curr = audit_entry.hash_curr
    FROM audit_entry WHERE h.chain = {c}::text
)"""
    params = [entry["tenant_id"] or "", entry["tenant_id"], entry["user_id"], entry["action"], entry["target_type"],
              entry["target_id"], entry["ts"], entry["ip"], entry["user_agent"], entry["details"], GENESIS,
              canonical(entry)]
    return head, append, params


async def append_audit(conn: asyncpg.Connection, tenant_id: Any, user_id: Any, action: str,
                       target_type: str | None = None, target_id: Any = None, *, ip: str | None = None,
                       user_agent: str | None = None, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Append one entry to `tenant_id`'s chain. Must run inside the transaction of the change it records."""
    if not conn.is_in_transaction():
        raise RuntimeError("append_audit must run inside the transaction of the change it records")
    entry = audit_entry(tenant_id, user_id, action, target_type, target_id, ip=ip, user_agent=user_agent,
                        details=details)
    head, append, params = append_ctes(entry, 1)
    got = await conn.fetchrow(f"WITH {head}, {append} SELECT id, hash_prev, hash_curr FROM audit_entry", *params)
    if got is None:  # no head yet: the chain's first entry creates it (locked) the long way
        return await append_first(conn, entry)
    entry.update(id=got["id"], hash_prev=got["hash_prev"], hash_curr=got["hash_curr"])
    return entry


async def ensure_chain(conn: asyncpg.Connection, tenant_id: Any) -> None:
    """Create the head of `tenant_id`'s chain if it has none (in the caller's transaction)."""
    await conn.execute("INSERT INTO audit_chain_heads (chain) VALUES ($1) ON CONFLICT (chain) DO NOTHING",
                       _s(tenant_id) or "")


async def append_first(conn: asyncpg.Connection, entry: dict[str, Any]) -> dict[str, Any]:
    """Append `entry` (from `audit_entry`) to a chain that may have no head yet, in the caller's transaction."""
    # Creates and locks the head (or, raced by another first entry, waits for it); DO UPDATE, unlike a plain
    # SELECT, acts on the newest committed version or raises a serialization error, never on the snapshot's.
    chain = entry["tenant_id"] or ""
    prev = await conn.fetchval(
        "INSERT INTO audit_chain_heads (chain) VALUES ($1) ON CONFLICT (chain) DO UPDATE SET chain = EXCLUDED.chain "
        "RETURNING hash_curr", chain)
    entry["hash_prev"] = prev
    entry["hash_curr"] = chain_hash(prev, entry)
    entry["id"] = await conn.fetchval(
        """INSERT INTO audit_log (tenant_id, user_id, action, target_type, target_id, ts, ip, user_agent, details,
                                  hash_prev, hash_curr)
           VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id""",
        entry["tenant_id"], entry["user_id"], entry["action"], entry["target_type"], entry["target_id"], entry["ts"],
        entry["ip"], entry["user_agent"], entry["details"], prev, entry["hash_curr"])
    await conn.execute("UPDATE audit_chain_heads SET last_id = $2, hash_curr = $3 WHERE chain = $1",
                       chain, entry["id"], entry["hash_curr"])
    return entry


def _row(r: asyncpg.Record) -> dict[str, Any]:
    d = dict(r)
    for k in ("tenant_id", "user_id"):
        d[k] = _s(d[k])
    return d


async def verify_audit(pool: asyncpg.Pool, tenant_id: Any = None, all_tenants: bool = False,
                       batch: int = 5000) -> dict[str, Any]:
    """Verify one tenant's chain (or every chain). Reports entries checked and the first broken link."""
    async with pool.acquire() as conn:
        if all_tenants:
            tenants = [_s(r[0]) for r in await conn.fetch("SELECT DISTINCT tenant_id FROM audit_log")]
        else:
            tenants = [_s(tenant_id)]
        checked, broken = 0, []
        for t in sorted(tenants, key=lambda x: x or ""):
            last_id, prev = 0, GENESIS
            while True:  # keyset pages keep memory bounded on long chains
                page = [_row(r) for r in await conn.fetch(
                    f"SELECT {_COLS} FROM audit_log WHERE tenant_id IS NOT DISTINCT FROM $1::uuid AND id > $2 "
                    "ORDER BY id LIMIT $3", t, last_id, batch)]
                n, link = verify_chain(page, prev)
                checked += n
                if link is not None:
                    broken.append(link)
                    break
                if len(page) < batch:
                    break
                last_id, prev = page[-1]["id"], page[-1]["hash_curr"]
    first: BrokenLink | None = min(broken, key=lambda b: b.entry_id) if broken else None
    return {"ok": not broken, "entries_checked": checked, "chains": len(tenants),
            "first_broken": first.as_dict() if first else None,
            "broken_chains": [b.as_dict() for b in broken]}


async def list_audit(conn: asyncpg.Connection, tenant_id: Any, *, user_id: Any = None, after_id: int = 0,
                     limit: int = 100) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_COLS} FROM audit_log WHERE tenant_id = $1::uuid AND ($2::uuid IS NULL OR user_id = $2::uuid "
        "OR (target_type = 'user' AND target_id = $2::text)) AND id > $3 ORDER BY id LIMIT $4",
        _s(tenant_id), _s(user_id), after_id, limit)
    return [_row(r) for r in rows]


def new_id() -> str:
    return str(uuid.uuid4())
