"""One small secrets interface with two sources.

- `EnvFileSecrets` (default): `GPUBROKER_SECRET_<PATH>_<KEY>` in the environment, else the file
  `<secrets_dir>/<path>/<key>`.
- `VaultSecrets`: Vault KV v2 through hvac when `VAULT_ADDR` is set (paths as in SRS 3.7, e.g.
  `providers/lambda` key `apikey`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping, Protocol

from cluster.settings import Settings


class SecretNotFound(KeyError):
    """The secret is in none of the configured sources."""


class SecretStore(Protocol):
    def get(self, path: str, key: str) -> str | None:
        """Return the secret at `path`/`key`, or None when it is not set."""

    def require(self, path: str, key: str) -> str:
        """Return the secret or raise SecretNotFound naming it."""


def _env_key(path: str, key: str) -> str:
    return "GPUBROKER_SECRET_" + re.sub(r"[^A-Za-z0-9]+", "_", f"{path}_{key}").strip("_").upper()


class _Base:
    def get(self, path: str, key: str) -> str | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def require(self, path: str, key: str) -> str:
        value = self.get(path, key)
        if value is None:
            raise SecretNotFound(f"secret {path}#{key} is not set")
        return value


class EnvFileSecrets(_Base):
    def __init__(self, secrets_dir: Path | None = None, environ: Mapping[str, str] | None = None):
        self._dir = secrets_dir
        self._env = os.environ if environ is None else environ

    def get(self, path: str, key: str) -> str | None:
        value = self._env.get(_env_key(path, key))
        if value:
            return value
        if self._dir is not None:
            f = (self._dir / path / key).resolve()
            if self._dir.resolve() in f.parents and f.is_file():
                return f.read_text().strip() or None
        return None


class VaultSecrets(_Base):
    def __init__(self, addr: str, token: str | None, mount: str = "secret", timeout: float = 5.0):
        import hvac  # imported here: only needed when Vault is configured

        self._client = hvac.Client(url=addr, token=token, timeout=timeout)
        self._mount = mount
        self._cache: dict[str, dict[str, str]] = {}

    def get(self, path: str, key: str) -> str | None:
        import hvac.exceptions

        if path not in self._cache:
            try:
                resp = self._client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self._mount, raise_on_deleted_version=True
                )
            except hvac.exceptions.InvalidPath:
                return None
            self._cache[path] = resp["data"]["data"]
        value = self._cache[path].get(key)
        return None if value is None else str(value)


def secret_store(settings: Settings) -> SecretStore:
    if settings.vault_addr:
        return VaultSecrets(settings.vault_addr, settings.vault_token, settings.vault_mount)
    return EnvFileSecrets(settings.secrets_dir)
