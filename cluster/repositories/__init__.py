"""SQL by aggregate: one module per aggregate, async functions taking a connection or pool. Functions that
must be part of a caller's transaction refuse to run outside one (`require_transaction`)."""
from __future__ import annotations

from typing import Any


def require_transaction(conn: Any, what: str) -> None:
    if not conn.is_in_transaction():
        raise RuntimeError(f"{what} must run inside a transaction")
