"""`gpubroker operator create --email E`: bootstrap a platform operator.

Creating tenants and changing plan limits needs an admin of a platform tenant (`tenants.is_platform`);
nothing in the API can create the first one, so this command does, from the machine that runs the system.
The password is read from `GPUBROKER_OPERATOR_PASSWORD` or standard input, never from the command line.
Idempotent: an existing operator with that email keeps its password unless `--reset-password` is given.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys

from cluster.settings import Settings

PLATFORM_TENANT = "platform"


async def create_operator(settings: Settings, email: str, password: str, reset_password: bool = False) -> dict:
    from cluster.audit import append_audit
    from cluster.db import create_pool
    from cluster.repositories import tenant_accounts, user_accounts
    from domain.passwords import policy_for

    policy = policy_for(settings)
    policy.check(password)
    pw_hash = await asyncio.to_thread(policy.hash, password)
    pool = await create_pool(settings, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            tenant = await tenant_accounts.lock_platform(conn)
            if tenant is None:
                tenant = await tenant_accounts.create_platform(conn, PLATFORM_TENANT)
                await append_audit(conn, tenant["id"], None, "tenant.created", "tenant", tenant["id"],
                                   details={"via": "operator-cli", "platform": True})
            user = await user_accounts.find_by_email(conn, email)
            if user is not None and user["tenant_id"] != tenant["id"]:
                raise ValueError("that email belongs to a user of another tenant")
            if user is None:
                user = await user_accounts.create(conn, tenant["id"], email, pw_hash, "admin")
                await append_audit(conn, tenant["id"], user["id"], "user.created", "user", user["id"],
                                   details={"role": "admin", "via": "operator-cli"})
                state = "created"
            elif reset_password:
                await user_accounts.reset_to_admin(conn, user["id"], pw_hash)
                await append_audit(conn, tenant["id"], user["id"], "user.password_reset", "user", user["id"],
                                   details={"via": "operator-cli"})
                state = "password reset"
            else:
                state = "exists"
        return {"tenant_id": str(tenant["id"]), "user_id": str(user["id"]), "state": state}
    finally:
        await pool.close()


def cmd_create(settings: Settings, args) -> int:
    password = os.environ.get("GPUBROKER_OPERATOR_PASSWORD") or sys.stdin.readline().rstrip("\n")
    if not password:
        print("gpubroker: give the password in GPUBROKER_OPERATOR_PASSWORD or on standard input", file=sys.stderr)
        return 2
    try:
        out = asyncio.run(create_operator(settings, args.email, password, args.reset_password))
    except ValueError as exc:  # weak password, foreign email
        print(f"gpubroker: {exc}", file=sys.stderr)
        return 2
    print(f"platform operator {out['state']}: user {out['user_id']} in platform tenant {out['tenant_id']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("operator", help="platform operators")
    osub = p.add_subparsers(dest="operator_command", required=True)
    c = osub.add_parser("create", help="create (or find) a platform operator: an admin of the platform tenant")
    c.add_argument("--email", required=True, help="the operator's login email")
    c.add_argument("--reset-password", action="store_true", help="set a new password for an existing operator")
    c.set_defaults(func=cmd_create)
