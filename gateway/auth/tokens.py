"""Access tokens: HS256 JWTs with a `kid` so signing keys rotate without logging everyone out.

Keys come from the secrets interface at `auth/jwt`: `keys` (JSON object kid -> secret, every key still
accepted for verification) and `active_kid` (the one that signs). With none configured, a local key
file `<state_dir>/jwt_keys.json` is created once (0600) and shared by every process on this machine.
"""
from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt

from cluster.secrets import SecretStore, secret_store
from cluster.settings import Settings

ALGORITHM = "HS256"
ISSUER = "gpubroker"


class TokenError(Exception):
    """The token is missing, malformed, expired, signed with an unknown key or otherwise invalid."""


@dataclass(frozen=True)
class Claims:
    sub: str
    role: str
    tenant_id: str
    jti: str
    kid: str
    exp: int
    extra: dict


def _local_keys(state_dir: Path) -> tuple[dict[str, str], str]:
    path = Path(state_dir) / "jwt_keys.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        kid = "k" + secrets.token_hex(4)
        data = json.dumps({"keys": {kid: secrets.token_urlsafe(48)}, "active_kid": kid})
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(data)
        except FileExistsError:
            pass  # another process won the race; read theirs
    for _ in range(50):
        try:
            data = json.loads(path.read_text())
            return data["keys"], data["active_kid"]
        except (json.JSONDecodeError, KeyError):
            time.sleep(0.02)  # being written by the winner
    raise TokenError("local JWT key file is unreadable")


class TokenService:
    """Issues and verifies access tokens."""

    def __init__(self, settings: Settings, store: SecretStore | None = None, access_ttl_s: int = 900):
        store = store or secret_store(settings)
        raw = store.get("auth/jwt", "keys")
        if raw:
            self.keys: dict[str, str] = json.loads(raw)
            self.active_kid = store.get("auth/jwt", "active_kid") or sorted(self.keys)[-1]
        else:
            self.keys, self.active_kid = _local_keys(settings.state_dir)
        if self.active_kid not in self.keys:
            raise TokenError(f"active_kid {self.active_kid!r} has no key")
        self.access_ttl_s = access_ttl_s

    def issue(self, sub: str, role: str, tenant_id: str, ttl_s: int | None = None, **extra) -> str:
        now = int(time.time())
        payload = {"sub": sub, "role": role, "tenant_id": tenant_id, "jti": uuid.uuid4().hex, "iat": now,
                   "exp": now + (ttl_s if ttl_s is not None else self.access_ttl_s), "iss": ISSUER, **extra}
        return jwt.encode(payload, self.keys[self.active_kid], algorithm=ALGORITHM, headers={"kid": self.active_kid})

    def verify(self, token: str) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("malformed token") from None
        if header.get("alg") != ALGORITHM:
            raise TokenError("unsupported algorithm")
        kid = header.get("kid")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenError("unknown key id")
        try:
            p = jwt.decode(token, key, algorithms=[ALGORITHM], issuer=ISSUER,
                           options={"require": ["exp", "iat", "sub", "jti"]})
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from None
        for f in ("role", "tenant_id"):
            if not isinstance(p.get(f), str):
                raise TokenError(f"claim {f} missing")
        known = {"sub", "role", "tenant_id", "jti", "exp", "iat", "iss"}
        return Claims(p["sub"], p["role"], p["tenant_id"], p["jti"], kid, p["exp"],
                      {k: v for k, v in p.items() if k not in known})
