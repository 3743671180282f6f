"""Audit trail storage: the per-tenant hash chains' heads and entries, appended only inside the
transaction of the change they record, and read back in keyset pages. The chain rule (hashing, what an
entry holds, verification) is `domain.audit`; `cluster.audit` composes the two."""
from __future__ import annotations

from typing import Any

import asyncpg


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
