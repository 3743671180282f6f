"""`gpubroker audit verify [--tenant ID] [--json]`: walk the audit hash chains and report the first broken link.

Exit status 0 when every chain verifies, 1 when a link is broken.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import uuid

from cluster.settings import Settings


async def _verify(settings: Settings, tenant: str | None) -> dict:
    from cluster.audit import verify_audit
    from cluster.db import create_pool

    pool = await create_pool(settings, min_size=1, max_size=1)
    try:
        return await verify_audit(pool, tenant, all_tenants=tenant is None)
    finally:
        await pool.close()


def cmd_verify(settings: Settings, args) -> int:
    report = asyncio.run(_verify(settings, args.tenant))
    if args.json:
        print(json.dumps(report, indent=2))
    elif report["ok"]:
        print(f"audit log OK: {report['entries_checked']} entries in {report['chains']} chains verified")
    else:
        b = report["first_broken"]
        print(f"audit log BROKEN: first broken link at entry {b['entry_id']} (tenant {b['tenant_id']}): {b['reason']}")
        for other in report["broken_chains"][1:]:
            print(f"  also: entry {other['entry_id']} (tenant {other['tenant_id']}): {other['reason']}")
    return 0 if report["ok"] else 1


def _uuid(v: str) -> str:
    return str(uuid.UUID(v))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="audit trail tools")
    asub = p.add_subparsers(dest="audit_command", required=True)
    v = asub.add_parser("verify", help="verify the hash chains; report the first broken link")
    v.add_argument("--tenant", type=_uuid, default=None, help="only this tenant's chain (default: every chain)")
    v.add_argument("--json", action="store_true", help="print the result as JSON")
    v.set_defaults(func=cmd_verify)
