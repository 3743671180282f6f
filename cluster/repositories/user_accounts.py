"""Users as accounts: created by sign-up, an admin or the operator CLI; found for a password login;
their role, password hash and MFA flag changed; erased (pseudonymized) on request. Emails are unique
case-insensitively across all tenants. Locking reads must run in the caller's transaction (lock order:
see `cluster.repositories.users`)."""
from __future__ import annotations

from uuid import UUID

import asyncpg

from cluster.repositories import require_transaction

PROFILE_COLUMNS = "id, tenant_id, email, role, mfa_enabled, created_at"


async def email_taken(conn: asyncpg.Connection, email: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM users WHERE lower(email) = lower($1)", email))


async def find_by_email(conn: asyncpg.Connection, email: str) -> asyncpg.Record | None:
    """Any user with the email (deleted ones too: their email stays taken until erased)."""
    return await conn.fetchrow("SELECT id, tenant_id FROM users WHERE lower(email) = lower($1)", email)


async def create(conn: asyncpg.Connection, tenant_id: UUID, email: str, password_hash: str,
                 role: str) -> asyncpg.Record:
    return await conn.fetchrow(
        f"INSERT INTO users (tenant_id, email, password_hash, role) VALUES ($1, $2, $3, $4) "
        f"RETURNING {PROFILE_COLUMNS}", tenant_id, email, password_hash, role)


async def count_members(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID) -> int:
    """Live users of the tenant."""
    return await conn.fetchval("SELECT count(*) FROM users WHERE tenant_id = $1 AND deleted_at IS NULL", tenant_id)


async def count_admins(conn: asyncpg.Connection, tenant_id: UUID, except_user: UUID | None = None) -> int:
    """Live admins of the tenant, leaving out `except_user`."""
    return await conn.fetchval(
        "SELECT count(*) FROM users WHERE tenant_id = $1 AND role = 'admin' AND deleted_at IS NULL "
        "AND ($2::uuid IS NULL OR id <> $2)", tenant_id, except_user)


async def for_login(pool: asyncpg.Pool, email: str) -> asyncpg.Record | None:
    """The live user with this email in a live tenant, with its password hash and MFA flag."""
    return await pool.fetchrow(
        """SELECT u.* FROM users u JOIN tenants t ON t.id = u.tenant_id
           WHERE lower(u.email) = lower($1) AND u.deleted_at IS NULL AND t.deleted_at IS NULL""", email)


async def with_mfa(conn: asyncpg.Connection, user_id: UUID | str) -> asyncpg.Record | None:
    """The live user if it has MFA turned on (the second login step)."""
    return await conn.fetchrow("SELECT * FROM users WHERE id = $1 AND deleted_at IS NULL AND mfa_enabled", user_id)


async def profile(pool: asyncpg.Pool, user_id: UUID) -> asyncpg.Record | None:
    return await pool.fetchrow(f"SELECT {PROFILE_COLUMNS} FROM users WHERE id = $1", user_id)


async def set_password_hash(pool: asyncpg.Pool, user_id: UUID, password_hash: str) -> None:
    """Store a rehash of the same password (stronger argon2 costs); nothing about the account changes."""
    await pool.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash)


async def reset_to_admin(conn: asyncpg.Connection, user_id: UUID, password_hash: str) -> None:
    """A new password and the admin role (the operator CLI restoring a platform operator)."""
    await conn.execute("UPDATE users SET password_hash = $2, role = 'admin', updated_at = now() WHERE id = $1",
                       user_id, password_hash)


async def lock_member(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID) -> asyncpg.Record | None:
    """The tenant's live user (id, role) locked FOR UPDATE; None when there is none."""
    require_transaction(conn, "lock_member")
    return await conn.fetchrow("SELECT id, role FROM users WHERE id = $1 AND tenant_id = $2 "
                               "AND deleted_at IS NULL FOR UPDATE", user_id, tenant_id)


async def set_role(conn: asyncpg.Connection, user_id: UUID, role: str) -> None:
    await conn.execute("UPDATE users SET role = $2, updated_at = now() WHERE id = $1", user_id, role)


async def lock_mfa_state(conn: asyncpg.Connection, user_id: UUID) -> asyncpg.Record:
    """(email, mfa_enabled) of the user, its row locked against a concurrent MFA change."""
    require_transaction(conn, "lock_mfa_state")
    return await conn.fetchrow("SELECT email, mfa_enabled FROM users WHERE id = $1 FOR UPDATE", user_id)


async def lock_pending_enrolment(conn: asyncpg.Connection, user_id: UUID) -> bool:
    """Whether a TOTP enrolment waits for its first code (the enrolment row locked)."""
    require_transaction(conn, "lock_pending_enrolment")
    return bool(await conn.fetchval("SELECT confirmed_at IS NULL FROM user_mfa WHERE user_id = $1 FOR UPDATE",
                                    user_id))


async def confirm_enrolment(conn: asyncpg.Connection, user_id: UUID) -> None:
    await conn.execute("UPDATE user_mfa SET confirmed_at = now() WHERE user_id = $1", user_id)


async def set_mfa_enabled(conn: asyncpg.Connection, user_id: UUID, enabled: bool) -> None:
    await conn.execute("UPDATE users SET mfa_enabled = $2, updated_at = now() WHERE id = $1", user_id, enabled)


async def pseudonymize(conn: asyncpg.Connection, user_id: UUID) -> None:
    """Erase the user's personal data but keep the row (bookings and invoices refer to it): the email
    becomes erased-<id>@erased.invalid, the password hash unusable, MFA off, the user deleted."""
    await conn.execute(
        "UPDATE users SET email = 'erased-' || id || '@erased.invalid', password_hash = '!', mfa_enabled = false, "
        "deleted_at = now(), erased_at = now(), updated_at = now() WHERE id = $1", user_id)
