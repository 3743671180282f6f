"""`/auth/*`: register, login (with the TOTP second step), refresh, logout, profile, TOTP enrol/confirm/disable.

Registration model: `POST /auth/register` is self-service sign-up of an ORGANIZATION: it creates a new
tenant (free plan) and its first user, who becomes that tenant's `admin`. Everyone else joins a tenant
by being created by its admin (`POST /admin/users`), within the tenant's seats. Any invalid credential
answers the same 401 ("invalid credentials"), whether the email, the password or the second factor was
wrong; repeated failures (wrong passwords and wrong second factors alike) answer 429 with Retry-After,
counted per account and real client address (`gateway.auth.login_throttle`).
"""
from __future__ import annotations

import asyncio
import secrets
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field, model_validator

from cluster.audit import append_audit
from cluster.repositories import tenant_accounts, user_accounts
from cluster.repositories import users as users_repo
from cluster.settings import Settings
from domain.api import MfaChallenge, MfaState, Profile, Registered, TotpEnrolment, Tokens
from gateway.auth.passwords import check_password, hash_password
from domain.inputs import EMAIL_PATTERN, RequestModel
from domain.passwords import policy_for
from domain.permissions import P
from gateway.auth import live_sessions, login_throttle, mfa, sessions
from gateway.auth.authz import Principal, client_ip, require, token_service, user_agent
from gateway.auth.secretbox import SecretBox
from gateway.http.edge import ApiError

router = APIRouter(prefix="/auth", tags=["auth"])


class _In(RequestModel):
    pass


class RegisterIn(_In):
    email: str = Field(max_length=320, pattern=EMAIL_PATTERN)
    password: str = Field(min_length=1, max_length=256)
    tenant_name: str = Field(min_length=1, max_length=200)


class LoginIn(_In):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=256)


class SecondFactorIn(_In):
    code: str | None = Field(None, pattern=r"^\d{6}$", description="current TOTP code")
    recovery_code: str | None = Field(None, min_length=8, max_length=64, description="an unused recovery code")

    @model_validator(mode="after")
    def _one(self):
        if (self.code is None) == (self.recovery_code is None):
            raise ValueError("give exactly one of code, recovery_code")
        return self


class MfaLoginIn(SecondFactorIn):
    mfa_challenge: str = Field(min_length=16, max_length=128)


class RefreshIn(_In):
    refresh_token: str = Field(min_length=16, max_length=128)


class CodeIn(_In):
    code: str = Field(pattern=r"^\d{6}$")


def _dummy_hash(state: Any) -> str:
    h = getattr(state, "dummy_password_hash", None)
    if h is None:
        h = state.dummy_password_hash = policy_for(state.settings).hash(secrets.token_urlsafe(16))
    return h


def secret_box(state: Any) -> SecretBox:
    box = getattr(state, "secret_box", None)
    if box is None:
        box = state.secret_box = SecretBox(state.settings)
    return box


def invalid_credentials() -> ApiError:
    return ApiError(401, "invalid_credentials", "invalid credentials", headers={"WWW-Authenticate": "Bearer"})


def _tokens(request: Request, user: Any, sid: str, refresh: str) -> dict[str, Any]:
    s: Settings = request.app.state.settings
    access = token_service(request.app.state).issue(str(user["id"]), user["role"], str(user["tenant_id"]),
                                                    ttl_s=s.access_token_ttl_s, typ="access", sid=sid)
    return {"access_token": access, "token_type": "bearer", "expires_in": s.access_token_ttl_s,
            "refresh_token": refresh, "refresh_expires_in": s.refresh_token_ttl_s}


async def _start_session(request: Request, user_id: Any, how: str) -> dict[str, Any]:
    """Mint a session from the user row as it is now, locked against a concurrent role change or erasure
    (see `cluster.repositories.users`): the token never carries a role the user no longer has."""
    rt = request.app.state.runtime
    ip, ua = client_ip(request), user_agent(request)
    async with (await rt.get_pg()).acquire() as conn, conn.transaction():
        user = await users_repo.lock_for_session(conn, user_id)
        if user is None:
            raise invalid_credentials()
        sid, refresh = await sessions.create_session(conn, rt.settings, user, ip, ua)
        await append_audit(conn, user["tenant_id"], user["id"], "auth.login", "session", sid, ip=ip,
                           user_agent=ua, details={"outcome": "success", "factor": how})
    if not await live_sessions.publish_session(rt.redis, rt.settings, sid, user["id"], user["tenant_id"],
                                               user["role"]):
        raise ApiError(409, "conflict", "the account changed during login; log in again")
    return _tokens(request, user, sid, refresh)


async def _not_throttled(redis, settings: Settings, email: str, ip: str | None) -> None:
    wait = await login_throttle.throttled_for(redis, settings, email, ip)
    if wait:
        raise ApiError(429, "rate_limited", "too many failed logins; try later", headers={"Retry-After": str(wait)})


@router.post("/register", status_code=201, summary="Sign up an organization: new tenant + its admin",
             response_model=Registered, responses={409: {"description": "this email cannot be registered"}})
async def register(body: RegisterIn, request: Request) -> dict:
    rt = request.app.state.runtime
    check_password(rt.settings, body.password)
    pw_hash = await hash_password(rt.settings, body.password)
    ip, ua = client_ip(request), user_agent(request)
    async with (await rt.get_pg()).acquire() as conn, conn.transaction():
        if await user_accounts.email_taken(conn, body.email):
            raise ApiError(409, "conflict", "this email cannot be registered")
        tenant = await tenant_accounts.create_signed_up(conn, body.tenant_name)
        user = await user_accounts.create(conn, tenant["id"], body.email, pw_hash, "admin")
        await append_audit(conn, tenant["id"], user["id"], "tenant.created", "tenant", tenant["id"], ip=ip,
                           user_agent=ua, details={"via": "register", "plan": tenant["plan"]})
        await append_audit(conn, tenant["id"], user["id"], "user.created", "user", user["id"], ip=ip,
                           user_agent=ua, details={"role": "admin", "via": "register"})
    return {"user_id": str(user["id"]), "tenant_id": str(tenant["id"]), "role": "admin"}


@router.post("/login", summary="Password login; answers tokens, or an MFA challenge when TOTP is on",
             response_model=Tokens | MfaChallenge, responses={401: {"description": "invalid credentials"}})
async def login(body: LoginIn, request: Request) -> dict:
    rt = request.app.state.runtime
    s: Settings = rt.settings
    ip = client_ip(request)
    await _not_throttled(rt.redis, s, body.email, ip)
    pool = await rt.get_pg()
    user = await user_accounts.for_login(pool, body.email)
    stored = user["password_hash"] if user is not None else _dummy_hash(request.app.state)
    ok = await asyncio.to_thread(policy_for(s).verify, stored, body.password)
    if user is None or not ok:
        await login_throttle.record_failure(rt.redis, s, body.email, ip)
        if user is not None:
            async with pool.acquire() as conn, conn.transaction():
                await append_audit(conn, user["tenant_id"], user["id"], "auth.login_failed", "user", user["id"],
                                   ip=ip, user_agent=user_agent(request), details={"outcome": "fail"})
        raise invalid_credentials()
    if policy_for(s).needs_rehash(user["password_hash"]):
        await user_accounts.set_password_hash(pool, user["id"], await hash_password(s, body.password))
    if user["mfa_enabled"]:  # the failure count stays: the second factor is still owed
        challenge = await sessions.new_challenge(rt.redis, s, user["id"])
        return {"mfa_required": True, "mfa_challenge": challenge, "expires_in": s.mfa_challenge_ttl_s}
    await login_throttle.clear_failures(rt.redis, s, body.email, ip)
    return await _start_session(request, user["id"], "password")


@router.post("/login/mfa", summary="Second login step: the challenge plus a TOTP or recovery code",
             response_model=Tokens, responses={401: {"description": "invalid credentials"}})
async def login_mfa(body: MfaLoginIn, request: Request) -> dict:
    rt = request.app.state.runtime
    s: Settings = rt.settings
    user_id = await sessions.challenge_user(rt.redis, s, body.mfa_challenge)
    if user_id is None:
        raise invalid_credentials()
    ip = client_ip(request)
    pool = await rt.get_pg()
    async with pool.acquire() as conn:
        user = await user_accounts.with_mfa(conn, user_id)
        if user is None:
            raise invalid_credentials()
        await _not_throttled(rt.redis, s, user["email"], ip)  # code guesses share the password budget
        async with conn.transaction():
            ok = (await mfa.verify_code(conn, secret_box(request.app.state), user["id"], body.code) if body.code
                  else await mfa.use_recovery_code(conn, user["id"], body.recovery_code))
    if not ok:
        await sessions.challenge_failed(rt.redis, s, body.mfa_challenge)
        await login_throttle.record_failure(rt.redis, s, user["email"], ip)
        raise invalid_credentials()
    if not await sessions.consume_challenge(rt.redis, s, body.mfa_challenge):
        raise invalid_credentials()
    await login_throttle.clear_failures(rt.redis, s, user["email"], ip)
    return await _start_session(request, user["id"], "totp" if body.code else "recovery_code")


@router.post("/refresh", summary="Exchange a refresh token for a new pair (the old one is spent)",
             response_model=Tokens, responses={401: {"description": "invalid credentials"}})
async def refresh(body: RefreshIn, request: Request) -> dict:
    rt = request.app.state.runtime
    try:
        user, sid, successor = await sessions.rotate(await rt.get_pg(), rt.redis, rt.settings, body.refresh_token,
                                                     client_ip(request), user_agent(request))
    except sessions.InvalidRefresh:
        raise invalid_credentials() from None
    return _tokens(request, user, sid, successor)


@router.post("/logout", status_code=204, summary="End this session (its refresh tokens and access tokens)")
async def logout(request: Request, me: Principal = Depends(require(P.SELF))) -> Response:
    rt = request.app.state.runtime
    async with (await rt.get_pg()).acquire() as conn, conn.transaction():
        ids = await sessions.revoke_sessions(conn, reason="logout", session_id=me.session_id)
        await append_audit(conn, me.tenant_id, me.user_id, "auth.logout", "session", me.session_id,
                           ip=client_ip(request), user_agent=user_agent(request))
    await live_sessions.revoke(rt.redis, rt.settings, ids or [me.session_id])
    return Response(status_code=204)


@router.get("/me", summary="The caller's profile", response_model=Profile)
async def me_profile(request: Request, me: Principal = Depends(require(P.SELF))) -> dict:
    row = await user_accounts.profile(await request.app.state.runtime.get_pg(), me.user_id)
    return {k: (str(v) if k in ("id", "tenant_id") else v) for k, v in dict(row).items()}


@router.post("/totp/enroll", summary="Start TOTP enrolment: a new secret and its otpauth:// URI",
             response_model=TotpEnrolment, responses={409: {"description": "TOTP is already enabled"}})
async def totp_enroll(request: Request, me: Principal = Depends(require(P.SELF))) -> dict:
    rt = request.app.state.runtime
    async with (await rt.get_pg()).acquire() as conn, conn.transaction():
        user = await user_accounts.lock_mfa_state(conn, me.user_id)
        if user["mfa_enabled"]:
            raise ApiError(409, "conflict", "TOTP is already enabled; disable it first")
        secret, uri = await mfa.enroll(conn, secret_box(request.app.state), me.user_id, user["email"])
        await append_audit(conn, me.tenant_id, me.user_id, "mfa.enroll_started", "user", me.user_id,
                           ip=client_ip(request), user_agent=user_agent(request))
    return {"secret": secret, "provisioning_uri": uri}


@router.post("/totp/confirm", summary="Confirm enrolment with a first code; answers the recovery codes once",
             response_model=MfaState, responses={400: {"description": "the code is wrong or was already used"},
                                                 409: {"description": "no TOTP enrolment is pending"}})
async def totp_confirm(body: CodeIn, request: Request, me: Principal = Depends(require(P.SELF))) -> dict:
    rt = request.app.state.runtime
    async with (await rt.get_pg()).acquire() as conn, conn.transaction():
        pending = await user_accounts.lock_pending_enrolment(conn, me.user_id)
        if not pending:
            raise ApiError(409, "conflict", "no TOTP enrolment is pending")
        if not await mfa.verify_code(conn, secret_box(request.app.state), me.user_id, body.code):
            raise ApiError(400, "invalid_code", "the code is wrong or was already used")
        await user_accounts.confirm_enrolment(conn, me.user_id)
        await user_accounts.set_mfa_enabled(conn, me.user_id, True)
        codes = await mfa.new_recovery_codes(conn, me.user_id)
        await append_audit(conn, me.tenant_id, me.user_id, "mfa.enabled", "user", me.user_id,
                           ip=client_ip(request), user_agent=user_agent(request))
    return {"mfa_enabled": True, "recovery_codes": codes}


@router.post("/totp/disable", summary="Turn TOTP off (needs a current code or a recovery code)",
             response_model=MfaState, responses={400: {"description": "the code is wrong or was already used"},
                                                 409: {"description": "TOTP is not enabled"}})
async def totp_disable(body: SecondFactorIn, request: Request, me: Principal = Depends(require(P.SELF))) -> dict:
    rt = request.app.state.runtime
    async with (await rt.get_pg()).acquire() as conn, conn.transaction():
        enabled = (await user_accounts.lock_mfa_state(conn, me.user_id))["mfa_enabled"]
        if not enabled:
            raise ApiError(409, "conflict", "TOTP is not enabled")
        ok = (await mfa.verify_code(conn, secret_box(request.app.state), me.user_id, body.code) if body.code
              else await mfa.use_recovery_code(conn, me.user_id, body.recovery_code))
        if not ok:
            raise ApiError(400, "invalid_code", "the code is wrong or was already used")
        await mfa.remove(conn, me.user_id)
        await user_accounts.set_mfa_enabled(conn, me.user_id, False)
        await append_audit(conn, me.tenant_id, me.user_id, "mfa.disabled", "user", me.user_id,
                           ip=client_ip(request), user_agent=user_agent(request))
    return {"mfa_enabled": False}
