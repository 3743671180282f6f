"""Audit trail storage: the per-tenant hash chains' heads and entries, appended only inside the
transaction of the change they record, and read back in keyset pages. The chain rule (hashing, what an
entry holds, verification) is `domain.audit`; `cluster.audit` composes the two."""
from __future__ import annotations

from typing import Any

import asyncpg

from domain.audit import GENESIS, canonical, chain_hash

COLUMNS = "id, tenant_id, user_id, action, target_type, target_id, ts, ip, user_agent, details, hash_prev, hash_curr"


def _inside_the_change(conn: asyncpg.Connection) -> None:
    if not conn.is_in_transaction():
        raise RuntimeError("an audit entry must be appended inside the transaction of the change it records")


async def lock_chain_head(conn: asyncpg.Connection, chain: str) -> str | None:
    """Lock the chain's head row until the transaction ends (creating it for a new chain) and return the
    last entry's hash (None for an empty chain). DO UPDATE, unlike a plain SELECT, acts on the newest
    committed version or raises a serialization error, never on the snapshot's."""
    _inside_the_change(conn)
    return await conn.fetchval(
        "INSERT INTO audit_chain_heads (chain) VALUES ($1) ON CONFLICT (chain) DO UPDATE SET chain = EXCLUDED.chain "
        "RETURNING hash_curr", chain)


async def insert_entry(conn: asyncpg.Connection, chain: str, entry: dict[str, Any]) -> int:
    """Store one entry and make it the chain's head (the head must be locked by `lock_chain_head`)."""
    _inside_the_change(conn)
    entry_id = await conn.fetchval(
        """INSERT INTO audit_log (tenant_id, user_id, action, target_type, target_id, ts, ip, user_agent, details,
                                  hash_prev, hash_curr)
           VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id""",
        entry["tenant_id"], entry["user_id"], entry["action"], entry["target_type"], entry["target_id"], entry["ts"],
        entry["ip"], entry["user_agent"], entry["details"], entry["hash_prev"], entry["hash_curr"])
    await conn.execute("UPDATE audit_chain_heads SET last_id = $2, hash_curr = $3 WHERE chain = $1",
                       chain, entry_id, entry["hash_curr"])
    return entry_id



def append_ctes(entry: dict[str, Any], first: int, after: str | None = None) -> tuple[str, str, list[Any]]:
    """The append of `entry` (from `domain.audit.new_entry`) as CTEs of a caller's statement, so that its
    change and its audit entry are one statement: the chain's lock is then held for the statement and its
    commit, never across a client round trip (at 100 concurrent bookings the round trips of a busy caller
    were what serialized a tenant's appends). Returns (head, append, params), params numbered from `first`:

    - `head` defines `audit_head`, the chain's head row locked FOR UPDATE, which waits for a concurrent
      appender and then reads the head it committed (READ COMMITTED) or raises a serialization error
      (REPEATABLE READ, SERIALIZABLE). It is empty for a chain without a head: the change's CTEs should then
      write nothing (select FROM audit_head), and the caller append with `append_first` in a transaction.
    - `append` defines `audit_entry` (the entry linked to the head, RETURNING id, hash_prev, hash_curr) and
      `audit_move` (the head moved to it), written once per row of the CTE `after` (if given).

    The hash is the one `domain.audit.chain_hash` computes: sha256 of the predecessor's hash (ASCII) and the
    entry's canonical bytes."""
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


async def append_linked(conn: asyncpg.Connection, entry: dict[str, Any]) -> dict[str, Any] | None:
    """Link `entry` to its chain's head in one statement: {id, hash_prev, hash_curr}, or None for a chain
    without a head yet (nothing written; append it with `append_first`)."""
    _inside_the_change(conn)
    head, append, params = append_ctes(entry, 1)
    got = await conn.fetchrow(f"WITH {head}, {append} SELECT id, hash_prev, hash_curr FROM audit_entry", *params)
    return None if got is None else dict(got)


async def ensure_chain(conn: asyncpg.Connection, tenant_id: Any) -> None:
    """Create the head of `tenant_id`'s chain if it has none (in the caller's transaction)."""
    await conn.execute("INSERT INTO audit_chain_heads (chain) VALUES ($1) ON CONFLICT (chain) DO NOTHING",
                       "" if tenant_id is None else str(tenant_id))


async def append_first(conn: asyncpg.Connection, entry: dict[str, Any]) -> dict[str, Any]:
    """Append `entry` to a chain that may have no head yet, in the caller's transaction: the head is created
    and locked (or, raced by another first entry, waited for), then the entry linked to it."""
    chain = entry["tenant_id"] or ""
    prev = await lock_chain_head(conn, chain)
    entry["hash_prev"] = prev
    entry["hash_curr"] = chain_hash(prev, entry)
    entry["id"] = await insert_entry(conn, chain, entry)
    return entry

async def chain_tenants(conn: asyncpg.Connection) -> list[Any]:
    """The tenant id of every chain that has entries (None: the chain of entries without a tenant)."""
    return [r[0] for r in await conn.fetch("SELECT DISTINCT tenant_id FROM audit_log")]


async def chain_page(conn: asyncpg.Connection, tenant_id: str | None, after_id: int,
                     limit: int) -> list[asyncpg.Record]:
    """Entries of one chain (tenant_id None: entries without a tenant) after `after_id`, in order."""
    return list(await conn.fetch(
        f"SELECT {COLUMNS} FROM audit_log WHERE tenant_id IS NOT DISTINCT FROM $1::uuid AND id > $2 "
        "ORDER BY id LIMIT $3", tenant_id, after_id, limit))


async def entries(conn: asyncpg.Connection, tenant_id: str | None, user_id: str | None, after_id: int,
                  limit: int) -> list[asyncpg.Record]:
    """The tenant's entries after `after_id`, in order; with `user_id`, only those by or about that user."""
    return list(await conn.fetch(
        f"SELECT {COLUMNS} FROM audit_log WHERE tenant_id = $1::uuid AND ($2::uuid IS NULL OR user_id = $2::uuid "
        "OR (target_type = 'user' AND target_id = $2::text)) AND id > $3 ORDER BY id LIMIT $4",
        tenant_id, user_id, after_id, limit))
