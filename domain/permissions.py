"""Roles and permissions (FR-AUTH-3): the ONE table that says which role may do what.

Routes declare the permission they need (`gateway.auth.authz.require(P.X)`); nothing else grants access.
Tenant scope is separate: every query is filtered by the caller's tenant (other tenants' ids give 404).
"""
from __future__ import annotations

import enum

from domain.models import Role


class P(str, enum.Enum):
    SELF = "self"                        # own profile, sessions, TOTP, logout, data export and erasure
    PROVIDERS_READ = "providers.read"    # marketplace search and offers
    CHAT = "chat"                        # AI assistant and forecasts
    BOOKINGS_READ = "bookings.read"      # the tenant's bookings
    BOOKINGS_WRITE = "bookings.write"    # create / cancel bookings
    BILLING_READ = "billing.read"        # invoices and usage
    TENANT_READ = "tenant.read"          # the tenant's settings and plan limits
    TENANT_WRITE = "tenant.write"        # rename the tenant; plan limits need platform scope too
    TENANTS_MANAGE = "tenants.manage"    # create / delete tenants (platform operators only)
    USERS_READ = "users.read"            # list the tenant's users
    USERS_MANAGE = "users.manage"        # create users, assign roles
    AUDIT_READ = "audit.read"            # read the tenant's audit trail
    AUDIT_VERIFY = "audit.verify"        # verify the hash chain


_ALL = frozenset(P)
ROLE_PERMISSIONS: dict[Role, frozenset[P]] = {
    Role.admin: _ALL,
    Role.manager: frozenset({P.SELF, P.PROVIDERS_READ, P.CHAT, P.BOOKINGS_READ, P.BOOKINGS_WRITE,
                             P.BILLING_READ, P.TENANT_READ, P.USERS_READ}),
    Role.user: frozenset({P.SELF, P.PROVIDERS_READ, P.CHAT, P.BOOKINGS_READ, P.BOOKINGS_WRITE}),
    Role.auditor: frozenset({P.SELF, P.PROVIDERS_READ, P.BOOKINGS_READ, P.BILLING_READ, P.TENANT_READ,
                             P.USERS_READ, P.AUDIT_READ, P.AUDIT_VERIFY}),
}


def allowed(role: str | Role, permission: P) -> bool:
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False
