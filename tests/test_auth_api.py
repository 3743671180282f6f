"""Login flows on the real Serve app: password, TOTP, refresh rotation and replay, logout, throttling,
forged tokens, and bad input on every /auth endpoint."""
from __future__ import annotations

import time
import uuid

import jwt
import pyotp
import pytest

from gateway.auth.tokens import TokenService
from tests.auth_fixtures import PASSWORD, login, new_email, signup


async def test_register_login_me_refresh_logout(http, pg):
    a = await signup(http, "flow")
    me = await http.get("/auth/me", headers=a.h)
    assert me.status_code == 200, me.text
    assert me.json()["email"] == a.email and me.json()["role"] == "admin" and me.json()["tenant_id"] == a.tenant_id
    claims = jwt.decode(a.access, options={"verify_signature": False})
    assert {"sub", "role", "tenant_id", "jti", "exp", "sid"} <= set(claims) and claims["typ"] == "access"
    assert jwt.get_unverified_header(a.access)["kid"]
    assert claims["exp"] - claims["iat"] == 300
    # the refresh token is stored only as a hash
    stored = await pg.fetchval("SELECT count(*) FROM refresh_tokens WHERE token_hash = $1", a.refresh)
    assert stored == 0
    r = await http.post("/auth/refresh", json={"refresh_token": a.refresh})
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["refresh_token"] != a.refresh
    assert (await http.get("/auth/me", headers={"Authorization": f"Bearer {new['access_token']}"})).status_code == 200
    r = await http.post("/auth/logout", headers={"Authorization": f"Bearer {new['access_token']}"})
    assert r.status_code == 204
    # the access token dies with its session, and so does the refresh token
    r = await http.get("/auth/me", headers={"Authorization": f"Bearer {new['access_token']}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert (await http.post("/auth/refresh", json={"refresh_token": new["refresh_token"]})).status_code == 401
    actions = [r["action"] for r in await pg.fetch(
        "SELECT action FROM audit_log WHERE tenant_id = $1 ORDER BY id", uuid.UUID(a.tenant_id))]
    assert actions[:3] == ["tenant.created", "user.created", "auth.login"] and actions[-1] == "auth.logout"


async def test_invalid_credentials_give_identical_401(http):
    a = await signup(http, "creds")
    wrong_pw = await http.post("/auth/login", json={"email": a.email, "password": "not the password!"})
    no_user = await http.post("/auth/login", json={"email": new_email("ghost"), "password": PASSWORD})
    for r in (wrong_pw, no_user):
        assert r.status_code == 401
        err = r.json()["error"]
        assert (err["code"], err["message"]) == ("invalid_credentials", "invalid credentials")


async def test_refresh_replay_revokes_the_family(http, pg):
    a = await signup(http, "replay")
    first = a.refresh
    r1 = (await http.post("/auth/refresh", json={"refresh_token": first})).json()
    r2 = (await http.post("/auth/refresh", json={"refresh_token": r1["refresh_token"]})).json()
    # an attacker replays the first (already used) token: refused, and the whole family dies
    replay = await http.post("/auth/refresh", json={"refresh_token": first})
    assert replay.status_code == 401
    assert (await http.post("/auth/refresh", json={"refresh_token": r2["refresh_token"]})).status_code == 401
    assert (await http.get("/auth/me", headers={"Authorization": f"Bearer {r2['access_token']}"})).status_code == 401
    row = await pg.fetchrow("SELECT revoked_at, revoke_reason FROM auth_sessions WHERE user_id = $1",
                            uuid.UUID(a.user_id))
    assert row["revoked_at"] is not None and row["revoke_reason"] == "refresh_reuse"
    assert await pg.fetchval("SELECT count(*) FROM audit_log WHERE action = 'auth.refresh_reuse' AND user_id = $1",
                             uuid.UUID(a.user_id)) == 1
    # another session of the same user is untouched
    assert (await login(http, a.email))["access_token"]


async def test_totp_login_flow_and_code_reuse(http, pg):
    a = await signup(http, "totp")
    enrol = await http.post("/auth/totp/enroll", headers=a.h)
    assert enrol.status_code == 200, enrol.text
    secret = enrol.json()["secret"]
    assert enrol.json()["provisioning_uri"].startswith("otpauth://totp/GPU%20Broker:")
    stored = await pg.fetchval("SELECT secret_enc FROM user_mfa WHERE user_id = $1", uuid.UUID(a.user_id))
    assert secret not in stored  # encrypted at rest
    totp = pyotp.TOTP(secret)
    bad = await http.post("/auth/totp/confirm", json={"code": "000000" if totp.now() != "000000" else "111111"},
                          headers=a.h)
    assert bad.status_code == 400
    step = int(time.time()) // 30
    ok = await http.post("/auth/totp/confirm", json={"code": totp.at(step * 30)}, headers=a.h)
    assert ok.status_code == 200, ok.text
    codes = ok.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10

    first = await http.post("/auth/login", json={"email": a.email, "password": PASSWORD})
    assert first.status_code == 200 and first.json()["mfa_required"] is True
    assert "access_token" not in first.json()
    challenge = first.json()["mfa_challenge"]
    # the code already used to confirm (same step) cannot be used again
    again = await http.post("/auth/login/mfa", json={"mfa_challenge": challenge, "code": totp.at(step * 30)})
    assert again.status_code == 401
    nxt = totp.at((step + 1) * 30)
    r = await http.post("/auth/login/mfa", json={"mfa_challenge": challenge, "code": nxt})
    assert r.status_code == 200, r.text
    assert r.json()["access_token"] and r.json()["refresh_token"]
    # the challenge is single use, and so is the code
    r = await http.post("/auth/login/mfa", json={"mfa_challenge": challenge, "code": nxt})
    assert r.status_code == 401
    ch2 = (await http.post("/auth/login", json={"email": a.email, "password": PASSWORD})).json()["mfa_challenge"]
    assert (await http.post("/auth/login/mfa", json={"mfa_challenge": ch2, "code": nxt})).status_code == 401
    # a recovery code works once
    r = await http.post("/auth/login/mfa", json={"mfa_challenge": ch2, "recovery_code": codes[0]})
    assert r.status_code == 200, r.text
    ch3 = (await http.post("/auth/login", json={"email": a.email, "password": PASSWORD})).json()["mfa_challenge"]
    assert (await http.post("/auth/login/mfa", json={"mfa_challenge": ch3, "recovery_code": codes[0]})).status_code == 401
    # disable with a recovery code; login is one step again
    h = {"Authorization": f"Bearer {r.json()['access_token']}"}
    d = await http.post("/auth/totp/disable", json={"recovery_code": codes[1]}, headers=h)
    assert d.status_code == 200, d.text
    assert "access_token" in await login(http, a.email)
    acts = {r["action"] for r in await pg.fetch("SELECT action FROM audit_log WHERE user_id = $1",
                                               uuid.UUID(a.user_id))}
    assert {"mfa.enroll_started", "mfa.enabled", "mfa.disabled"} <= acts


async def test_login_throttled_per_account(http, settings):
    a = await signup(http, "throttle")
    for _ in range(settings.login_max_failures_account):
        assert (await http.post("/auth/login", json={"email": a.email, "password": "wrong password!!"})).status_code == 401
    r = await http.post("/auth/login", json={"email": a.email, "password": PASSWORD})
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert 0 < int(r.headers["Retry-After"]) <= settings.login_window_s


def _forge(settings, claims_over: dict, key: str | None = None, kid: str | None = None, alg: str = "HS256") -> str:
    ts = TokenService(settings)
    now = int(time.time())
    payload = {"sub": str(uuid.uuid4()), "role": "admin", "tenant_id": str(uuid.uuid4()), "jti": "j", "iat": now,
               "exp": now + 300, "iss": "gpubroker", "typ": "access", "sid": str(uuid.uuid4())}
    payload.update(claims_over)
    if alg == "none":
        return jwt.encode(payload, None, algorithm="none", headers={"kid": ts.active_kid})
    return jwt.encode(payload, key or ts.keys[ts.active_kid], algorithm=alg, headers={"kid": kid or ts.active_kid})


async def test_forged_tokens_refused(http, settings):
    a = await signup(http, "forge")
    c = jwt.decode(a.access, options={"verify_signature": False})
    real = {k: c[k] for k in ("sub", "role", "tenant_id", "sid")}
    other = await signup(http, "forge-other")
    cases = {
        "alg none": _forge(settings, real, alg="none"),
        "wrong signature": _forge(settings, real, key="x" * 64),
        "expired": _forge(settings, {**real, "exp": int(time.time()) - 5, "iat": int(time.time()) - 400}),
        "unknown kid": _forge(settings, real, kid="k-unknown"),
        "another tenant": _forge(settings, {**real, "tenant_id": other.tenant_id}),
        "escalated role": _forge(settings, {**real, "role": "auditor"}),
        "not an access token": _forge(settings, {**real, "typ": "refresh"}),
        "garbage": "abc.def.ghi",
    }
    # sanity: a token minted the same way with the real claims is accepted
    assert (await http.get("/auth/me", headers={"Authorization": f"Bearer {_forge(settings, real)}"})).status_code == 200
    for name, tok in cases.items():
        r = await http.get("/auth/me", headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code == 401, (name, r.text)
        assert r.json()["error"]["code"] == "unauthorized"
    assert (await http.get("/auth/me")).status_code == 401


@pytest.mark.parametrize("path,body,field", [
    ("/auth/register", {"email": "nope", "password": PASSWORD, "tenant_name": "x"}, "email"),
    ("/auth/register", {"email": "a@b.test", "password": "short", "tenant_name": "x"}, "password"),
    ("/auth/register", {"email": "a@b.test", "password": PASSWORD}, "tenant_name"),
    ("/auth/login", {"email": "a@b.test"}, "password"),
    ("/auth/login", {"email": "a@b.test", "password": PASSWORD, "extra": 1}, "extra"),
    ("/auth/login/mfa", {"mfa_challenge": "c" * 20, "code": "12345"}, "code"),
    ("/auth/login/mfa", {"code": "123456"}, "mfa_challenge"),
    ("/auth/refresh", {}, "refresh_token"),
])
async def test_bad_input_names_the_field(http, path, body, field):
    r = await http.post(path, json=body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "validation_error" and field in err["message"]


async def test_bad_input_authenticated_auth_routes(http):
    a = await signup(http, "badin")
    r = await http.post("/auth/totp/confirm", json={"code": "abc"}, headers=a.h)
    assert r.status_code == 422 and "code" in r.json()["error"]["message"]
    r = await http.post("/auth/totp/disable", json={}, headers=a.h)
    assert r.status_code == 422 and "exactly one of code, recovery_code" in r.text


async def test_totp_guesses_count_toward_login_throttling(http, settings):
    """A correct password does not buy a fresh guess budget: 48 wrong codes over 8 challenges meet a 429."""
    a = await signup(http, "totp-guess")
    secret = (await http.post("/auth/totp/enroll", headers=a.h)).json()["secret"]
    totp = pyotp.TOTP(secret)
    assert (await http.post("/auth/totp/confirm", json={"code": totp.now()}, headers=a.h)).status_code == 200
    now = time.time()
    valid = {totp.at(now + d) for d in (-60, -30, 0, 30, 60)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333", "444444", "555555") if c not in valid)
    statuses, guesses = [], 0
    for _ in range(8):
        first = await http.post("/auth/login", json={"email": a.email, "password": PASSWORD})
        statuses.append(first.status_code)
        if first.status_code != 200:
            continue
        challenge = first.json()["mfa_challenge"]
        for j in range(6):  # the 6th meets a challenge already spent by 5 wrong codes
            r = await http.post("/auth/login/mfa", json={"mfa_challenge": challenge, "code": wrong})
            statuses.append(r.status_code)
            guesses += j < 5 and r.status_code == 401
    assert set(statuses) <= {200, 401, 429}
    assert guesses == settings.login_max_failures_account, statuses  # then 429, password or code
    assert 429 in statuses
    # from this address the account now waits, even with the right password and a right code
    r = await http.post("/auth/login", json={"email": a.email, "password": PASSWORD})
    assert r.status_code == 429 and 0 < int(r.headers["Retry-After"]) <= settings.login_window_s
