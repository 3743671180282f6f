"""Compliance log lines (SEC-LOG-REQ-1): who, tenant, what, on what, outcome, source, trace id.

One JSON line per booking and billing event on the `gpubroker.compliance` logger, next to the audit
chain entry. Ids only: no emails, names, tokens or amounts tied to a person.
"""
from __future__ import annotations

from typing import Any

from cluster.logs import get_logger, trace_id_var

log = get_logger("compliance")


def record(event: str, *, outcome: str, tenant_id: Any, actor: Any = None, target: Any = None,
           source: str = "api", trace_id: str | None = None, **fields: Any) -> None:
    """Log one compliance event; `outcome` is 'success', 'refused' or 'failed' (why goes in `reason`)."""
    log.info(event, extra={"event_type": event, "outcome": outcome, "tenant_id": None if tenant_id is None else str(tenant_id),
                           "user_id": None if actor is None else str(actor), "target": None if target is None else str(target),
                           "source": source, "trace_id": trace_id or trace_id_var.get(),
                           **{k: (str(v) if v is not None and not isinstance(v, (int, float, bool)) else v)
                              for k, v in fields.items()}})
