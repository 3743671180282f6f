"""Settings from the environment (prefix GPUBROKER_), with defaults pointing at the local services.

A missing or malformed setting stops start-up with one line naming it (`SettingsError`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_PREFIX = "GPUBROKER_"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str = Field("postgresql://postgres@127.0.0.1:5432/gpubroker", description="PostgreSQL DSN")
    db_pool_min: int = Field(1, ge=0, le=100, description="asyncpg pool minimum size per process")
    db_pool_max: int = Field(8, ge=1, le=200, description="asyncpg pool maximum size per process")
    redis_url: str = Field("redis://127.0.0.1:6379/1", description="Redis URL (DB1: price cache, per SRS 3.7)")
    nats_url: str = Field("nats://127.0.0.1:4222", description="NATS URL (JetStream enabled)")
    redis_prefix: str = Field("gpubroker:", pattern=r"^[A-Za-z0-9_:.-]*$", description="prefix of every Redis key we write")
    nats_prefix: str = Field("", pattern=r"^([A-Za-z0-9_-]+\.)*$", description="prefix of NATS subjects and stream names (tests isolate with it)")
    http_host: str = Field("127.0.0.1", description="Serve HTTP host")
    http_port: int = Field(8000, ge=1, le=65535, description="Serve HTTP port")
    ws_host: str = Field("127.0.0.1", description="WebSocket gateway host")
    ws_port: int = Field(8765, ge=1, le=65535, description="WebSocket gateway port")
    ray_address: str | None = Field(None, description="address of an existing Ray cluster (host:port); unset starts a local head")
    ray_port: int = Field(6390, ge=1, le=65535, description="Ray GCS port for a local head (not Redis's 6379)")
    dashboard_port: int = Field(8265, ge=1, le=65535, description="Ray dashboard port")
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs the local Ray head advertises (default: all)")
    throughput_mode: bool = Field(True, description="Serve HAProxy + throughput-optimized mode")
    haproxy_stats_port: int = Field(8404, ge=1, le=65535, description="Serve HAProxy stats port (throughput mode)")
    haproxy_metrics_port: int = Field(9101, ge=1, le=65535, description="Serve HAProxy Prometheus port (throughput mode)")
    ingress_replicas_min: int = Field(1, ge=1, le=64, description="ingress autoscaling minimum replicas")
    ingress_replicas_max: int = Field(2, ge=1, le=64, description="ingress autoscaling maximum replicas")
    max_ongoing_requests: int = Field(256, ge=1, le=10000, description="per replica (Serve's default of 5 collapses throughput)")
    state_dir: Path = Field(Path(".run"), description="where `gpubroker up` keeps PIDs, logs and metrics files")
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$", description="log level")
    readiness_timeout_s: float = Field(1.0, gt=0, le=30, description="per-dependency timeout of /ready checks")
    secrets_dir: Path | None = Field(None, description="directory of secret files (<path>/<key>); env is read first")
    vault_addr: str | None = Field(None, description="Vault address; when set, secrets come from Vault KV v2")
    vault_token: str | None = Field(None, description="Vault token (or VAULT_TOKEN)")
    vault_mount: str = Field("secret", description="Vault KV v2 mount point")
    adapters_live: bool = Field(False, description="call provider APIs on sync; false serves the bundled snapshots (offline)")
    adapter_base_urls: dict[str, str] = Field(default_factory=dict, description="per-provider API base URL overrides (proxies, tests)")
    adapter_timeout_s: float = Field(10.0, gt=0, le=120, description="timeout of one provider API request")
    adapter_retries: int = Field(3, ge=0, le=10, description="retries of a failed provider API request (exponential backoff + jitter)")
    sync_interval_s: float = Field(300.0, ge=1, description="seconds between two syncs of one provider (FR-PROV-1: < 5 min)")

    @field_validator("database_url")
    @classmethod
    def _pg(cls, v: str) -> str:
        if not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql://")
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://")
        return v

    @field_validator("nats_url")
    @classmethod
    def _nats(cls, v: str) -> str:
        if not all(u.strip().startswith(("nats://", "tls://", "ws://", "wss://")) for u in v.split(",")):
            raise ValueError("must start with nats://")
        return v

    @property
    def database_name(self) -> str:
        return self.database_url.rsplit("/", 1)[-1].split("?", 1)[0]

    def with_overrides(self, **changes: Any) -> "Settings":
        data = self.model_dump()
        data.update(changes)
        return Settings.model_validate(data)


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings from `environ` (default `os.environ`); raise SettingsError naming the bad variable."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for name in Settings.model_fields:
        key = env_name(name)
        if key in env:
            value = env[key]
            if value == "" and name not in ("vault_addr", "ray_address", "secrets_dir", "vault_token"):
                raise SettingsError(f"setting {key} is empty")
            raw[name] = value if value != "" else None
    if "vault_addr" not in raw and env.get("VAULT_ADDR"):
        raw["vault_addr"] = env["VAULT_ADDR"]
    if "vault_token" not in raw and env.get("VAULT_TOKEN"):
        raw["vault_token"] = env["VAULT_TOKEN"]
    raw.update(overrides)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        shown = raw.get(field)
        raise SettingsError(f"invalid setting {env_name(field)}={shown!r}: {err['msg']}") from None
