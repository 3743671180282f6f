"""The migration runner: the versioned SQL files of this folder applied in order, each once, in its own
transaction, under an advisory lock (one migrator at a time across processes), with their checksums
recorded in `schema_migrations` so a changed file is refused. Also creates the database itself."""
from __future__ import annotations

import hashlib
import importlib.resources
from dataclasses import dataclass

import asyncpg

from cluster.logs import get_logger
from cluster.settings import Settings

log = get_logger("db")
_MIGRATION_LOCK = 0x6770_7562  # "gpub": one migrator at a time across processes


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    """An applied migration's file changed after it ran (checksums differ)."""


def load_migrations() -> list[Migration]:
    out = []
    for entry in importlib.resources.files("cluster.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            out.append(Migration(version, entry.name, entry.read_text()))
    out.sort(key=lambda m: m.version)
    if len({m.version for m in out}) != len(out):
        raise MigrationError("two migrations share a version number")
    return out


def _admin_dsn(dsn: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return base + "/postgres"


async def ensure_database(settings: Settings) -> bool:
    """Create the configured database if it does not exist. Returns True when it was created."""
    name = settings.database_name
    conn = await asyncpg.connect(_admin_dsn(settings.database_url), timeout=10)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        await conn.execute(f'CREATE DATABASE "{name}"')
        log.info("created database", extra={"database": name})
        return True
    finally:
        await conn.close()


async def apply_migrations(conn: asyncpg.Connection) -> list[int]:
    """Apply pending migrations, each in its own transaction, under an advisory lock. Idempotent."""
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"]: r["checksum"] for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")}
        for m in load_migrations():
            if m.version in done:
                if done[m.version] != m.checksum:
                    raise MigrationError(f"migration {m.name} changed after it was applied")
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    m.version, m.name, m.checksum,
                )
            applied_now.append(m.version)
            log.info("applied migration", extra={"migration": m.name})
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now
