"""The audit trail: append in the caller's transaction (hash chain per tenant), read, and verify.

The chain rule is `domain.audit`; storage is `cluster.repositories.audit` (it refuses to run outside a
transaction).

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

from cluster.repositories import audit as audit_repo
from domain.audit import GENESIS, BrokenLink, new_entry, verify_chain


def _s(v: Any) -> str | None:
    return None if v is None else str(v)



async def append_audit(conn: asyncpg.Connection, tenant_id: Any, user_id: Any, action: str,
                       target_type: str | None = None, target_id: Any = None, *, ip: str | None = None,
                       user_agent: str | None = None, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Append one entry to `tenant_id`'s chain. Must run inside the transaction of the change it records
    (the repository refuses otherwise, before writing anything)."""
    entry = new_entry(tenant_id, user_id, action, target_type, target_id, ip=ip, user_agent=user_agent,
                      details=details)
    got = await audit_repo.append_linked(conn, entry)
    if got is None:  # no head yet: the chain's first entry creates it (locked) the long way
        return await audit_repo.append_first(conn, entry)
    entry.update(got)
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
            tenants = [_s(t) for t in await audit_repo.chain_tenants(conn)]
        else:
            tenants = [_s(tenant_id)]
        checked, broken = 0, []
        for t in sorted(tenants, key=lambda x: x or ""):
            last_id, prev = 0, GENESIS
            while True:  # keyset pages keep memory bounded on long chains
                page = [_row(r) for r in await audit_repo.chain_page(conn, t, last_id, batch)]
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
    rows = await audit_repo.entries(conn, _s(tenant_id), _s(user_id), after_id, limit)
    return [_row(r) for r in rows]


def new_id() -> str:
    return str(uuid.uuid4())
