"""Which dependency an exception means is down: the one rule behind every 503 `dependency_unavailable`.

A request that fails because PostgreSQL, Redis or NATS cannot be reached (refused, reset, closed by a
restart, timed out, shutting down) is an outage, not a bug: the edge answers 503 with `Retry-After`
instead of 500. Library exceptions name their dependency by type; plain `OSError` / `TimeoutError` are
attributed to the library whose code raised them (the deepest frame of the traceback in one of them).
"""
from __future__ import annotations

import asyncio
from types import TracebackType

import asyncpg
import redis.exceptions as redis_errors
from nats import errors as nats_errors

DEPENDENCIES = ("postgres", "redis", "nats")
RETRY_AFTER_S = 2  # a restarted dependency is back (and our clients reconnected) within ~1 s in benchmarks/faults.py

_MODULE_ROOTS = {"asyncpg": "postgres", "redis": "redis", "nats": "nats"}

# PostgreSQL SQLSTATE classes/codes that mean "the server is not serving us right now".
_PG_DOWN = (
    asyncpg.PostgresConnectionError,           # class 08
    asyncpg.exceptions.OperatorInterventionError,  # class 57: admin/crash shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, out of memory
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
)
_REDIS_DOWN = (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.BusyLoadingError)
_NATS_DOWN = (nats_errors.ConnectionClosedError, nats_errors.NoServersError, nats_errors.TimeoutError,
              nats_errors.OutboundBufferLimitError, nats_errors.StaleConnectionError,
              nats_errors.ConnectionReconnectingError, nats_errors.NoRespondersError,
              nats_errors.FlushTimeoutError)


class DependencyUnavailable(ConnectionError):
    """Raised by our own code when a dependency is known to be down (e.g. NATS not connected yet)."""

    def __init__(self, dependency: str, reason: str = ""):
        super().__init__(f"{dependency} unavailable" + (f": {reason}" if reason else ""))
        self.dependency = dependency


def _raised_in(tb: TracebackType | None) -> str | None:
    found = None
    while tb is not None:
        root = str(tb.tb_frame.f_globals.get("__name__", "")).split(".", 1)[0]
        found = _MODULE_ROOTS.get(root, found)
        tb = tb.tb_next
    return found


def dependency_down(exc: BaseException) -> str | None:
    """The dependency (`postgres`, `redis`, `nats`) whose outage `exc` is, or None for any other error."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DependencyUnavailable):
            return exc.dependency
        if isinstance(exc, _PG_DOWN):
            return "postgres"
        if isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc):  # "connection is closed"
            return "postgres"
        # asyncpg's state error on a pooled connection whose previous operation the server cut off while
        # shutting down (seen twice in 1,400 requests across a PostgreSQL stop in benchmarks/faults.py)
        if isinstance(exc, asyncpg.exceptions.InternalClientError) and "another operation" in str(exc):
            return "postgres"
        if isinstance(exc, _REDIS_DOWN):
            return "redis"
        if isinstance(exc, _NATS_DOWN):
            return "nats"
        if isinstance(exc, (OSError, asyncio.TimeoutError, TimeoutError)):
            dep = _raised_in(exc.__traceback__)
            if dep is not None:
                return dep
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None
