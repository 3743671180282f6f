-- GPU Broker schema v1: every entity of the SRS data model (3.4 / 3.8), the outbox and provider health.
CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE TABLE tenants (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL,
    plan            text NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'pro', 'enterprise')),
    rate_limit_rps  double precision NOT NULL DEFAULT 100 CHECK (rate_limit_rps > 0),
    burst           integer NOT NULL DEFAULT 200 CHECK (burst >= 1),
    seats           integer NOT NULL DEFAULT 5 CHECK (seats >= 1),
    ws_limit        integer NOT NULL DEFAULT 10 CHECK (ws_limit >= 0),
    currency        char(3) NOT NULL DEFAULT 'USD',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);

CREATE TABLE users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants(id),
    email           text NOT NULL,
    password_hash   text NOT NULL,
    role            text NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'manager', 'user', 'auditor')),
    mfa_enabled     boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_tenant_idx ON users (tenant_id);

CREATE TABLE providers (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    api_endpoint    text,
    status          text NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'degraded', 'down')),
    regions         text[] NOT NULL DEFAULT '{}',
    tags            text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE provider_health (
    provider_id     text PRIMARY KEY REFERENCES providers(id),
    status          text NOT NULL CHECK (status IN ('ok', 'degraded', 'down')),
    last_sync_ts    timestamptz,
    last_error      text,
    latency_ms      double precision,
    offers          integer NOT NULL DEFAULT 0,
    source          text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- array_to_string is only STABLE in general; for text[] it is immutable, which a generated column needs.
CREATE FUNCTION offer_search_text(name text, gpu_type text, tags text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT coalesce(name, '') || ' ' || gpu_type || ' ' || array_to_string(tags, ' ') $$;

CREATE TABLE offers (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    provider_id         text NOT NULL REFERENCES providers(id),
    external_id         text NOT NULL,
    name                text NOT NULL,
    gpu_type            text NOT NULL,
    gpu_vendor          text,
    gpu_count           double precision NOT NULL CHECK (gpu_count > 0),
    gpu_memory_gb       double precision,
    form_factor         text,
    vcpu                double precision,
    memory_gb           double precision,
    storage_gb          double precision,
    price_per_hour      numeric(14, 6) NOT NULL CHECK (price_per_hour > 0),
    price_per_gpu_hour  numeric(14, 6) NOT NULL,
    currency            char(3) NOT NULL DEFAULT 'USD',
    pricing             text NOT NULL DEFAULT 'on_demand' CHECK (pricing IN ('on_demand', 'spot', 'interruptible')),
    region              text NOT NULL,
    country             char(2),
    continent           char(2),
    availability        text NOT NULL DEFAULT 'up' CHECK (availability IN ('up', 'down', 'degraded')),
    tags                text[] NOT NULL DEFAULT '{}',
    attributes          jsonb NOT NULL DEFAULT '{}',
    last_seen_at        timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    search_tsv          tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', offer_search_text(name, gpu_type, tags))
    ) STORED,
    CONSTRAINT offers_provider_external_key UNIQUE (provider_id, external_id)
);
CREATE INDEX offers_gpu_price_idx ON offers (gpu_type, price_per_hour, id);
CREATE INDEX offers_price_idx ON offers (price_per_hour, id);
CREATE INDEX offers_gpu_price_per_gpu_idx ON offers (price_per_gpu_hour, id);
CREATE INDEX offers_updated_idx ON offers (updated_at DESC, id);
CREATE INDEX offers_region_idx ON offers (region);
CREATE INDEX offers_geo_idx ON offers (continent, country);
CREATE INDEX offers_availability_idx ON offers (availability);
CREATE INDEX offers_tags_idx ON offers USING gin (tags);
CREATE INDEX offers_tsv_idx ON offers USING gin (search_tsv);

CREATE TABLE price_history (
    id              bigserial PRIMARY KEY,
    offer_id        uuid NOT NULL REFERENCES offers(id) ON DELETE CASCADE,
    price_per_hour  numeric(14, 6) NOT NULL,
    availability    text NOT NULL CHECK (availability IN ('up', 'down', 'degraded')),
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX price_history_offer_idx ON price_history (offer_id, recorded_at DESC);

CREATE TABLE bookings (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL REFERENCES tenants(id),
    user_id             uuid NOT NULL REFERENCES users(id),
    offer_id            uuid NOT NULL REFERENCES offers(id),
    start_time          timestamptz NOT NULL,
    end_time            timestamptz NOT NULL CHECK (end_time > start_time),
    status              text NOT NULL DEFAULT 'Draft'
                        CHECK (status IN ('Draft', 'PendingProvision', 'Active', 'Completed', 'Failed', 'Cancelled')),
    external_booking_id text,
    cost_estimate       numeric(14, 6),
    cost_actual         numeric(14, 6),
    idempotency_key     text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bookings_tenant_idx ON bookings (tenant_id, created_at DESC);
CREATE UNIQUE INDEX bookings_idem_key ON bookings (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE usage_events (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    booking_id      uuid NOT NULL REFERENCES bookings(id),
    ts              timestamptz NOT NULL DEFAULT now(),
    cost_amount     numeric(14, 6) NOT NULL,
    currency        char(3) NOT NULL DEFAULT 'USD'
);
CREATE INDEX usage_events_booking_idx ON usage_events (booking_id, ts);

CREATE TABLE invoices (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants(id),
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    currency        char(3) NOT NULL DEFAULT 'USD',
    subtotal        numeric(14, 6) NOT NULL DEFAULT 0,
    tax             numeric(14, 6) NOT NULL DEFAULT 0,
    total           numeric(14, 6) NOT NULL DEFAULT 0,
    pdf_url         text,
    status          text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'final', 'paid', 'void')),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoices_tenant_idx ON invoices (tenant_id, period_start);

-- Append-only audit log with a per-tenant SHA-256 hash chain (SEC-AUDIT-1).
CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    tenant_id       uuid,
    user_id         uuid,
    action          text NOT NULL,
    target_type     text,
    target_id       text,
    ts              timestamptz NOT NULL DEFAULT now(),
    ip              text,
    user_agent      text,
    details         jsonb NOT NULL DEFAULT '{}',
    hash_prev       text,
    hash_curr       text NOT NULL
);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, id);

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

-- Transactional outbox: events written with the state change, relayed to JetStream with Nats-Msg-Id dedup.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    subject         text NOT NULL,
    msg_id          text NOT NULL UNIQUE,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
