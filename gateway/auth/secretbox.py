"""Encryption at rest for small secrets (TOTP seeds): AES-256-GCM, key from the secrets interface.

The key is `auth/totp` -> `key` (urlsafe base64 of 32 bytes) in the secret store (Vault when configured);
without one a local key file `<state_dir>/totp_key` is created once (0600) and shared by local processes.
"""
from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cluster.secrets import secret_store
from cluster.settings import Settings


def _local_key(state_dir: Path) -> bytes:
    path = Path(state_dir) / "totp_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
        except FileExistsError:
            pass
    for _ in range(50):
        raw = path.read_text().strip()
        if raw:
            return base64.urlsafe_b64decode(raw)
    raise RuntimeError("local TOTP key file is empty")


class SecretBox:
    """seal(plaintext, aad) -> token; open(token, aad) -> plaintext. `aad` binds a ciphertext to its row."""

    def __init__(self, settings: Settings):
        raw = secret_store(settings).get("auth/totp", "key")
        key = base64.urlsafe_b64decode(raw) if raw else _local_key(settings.state_dir)
        if len(key) != 32:
            raise ValueError("auth/totp key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, aad: str) -> str:
        nonce = secrets.token_bytes(12)
        ct = self._aead.encrypt(nonce, plaintext.encode(), aad.encode())
        return base64.urlsafe_b64encode(nonce + ct).decode()

    def open(self, token: str, aad: str) -> str:
        raw = base64.urlsafe_b64decode(token)
        return self._aead.decrypt(raw[:12], raw[12:], aad.encode()).decode()

