-- Bookings, provider webhooks and the billing ledger (FR-BOOK-1/2, FR-BILL-1/2).
-- A booking row carries a version (optimistic concurrency: every transition is
-- UPDATE ... WHERE version = <read version>), the price locked at acceptance and what the lifecycle needs
-- to resume after a restart (when provisioning started, when the meter started).
ALTER TABLE bookings
    ADD COLUMN version          integer NOT NULL DEFAULT 0,
    ADD COLUMN provider_id      text,
    ADD COLUMN price_per_hour   numeric(14, 6),
    ADD COLUMN currency         char(3) NOT NULL DEFAULT 'USD',
    ADD COLUMN request_hash     text,
    ADD COLUMN pending_since    timestamptz,
    ADD COLUMN active_since     timestamptz,
    ADD COLUMN closed_at        timestamptz,
    ADD COLUMN last_error       text;
CREATE INDEX bookings_live_idx ON bookings (status) WHERE status IN ('Draft', 'PendingProvision', 'Active');
CREATE INDEX bookings_tenant_status_idx ON bookings (tenant_id, status, created_at DESC);

-- Every transition of a booking, in order (GET /bookings/{id} shows them).
CREATE TABLE booking_transitions (
    id          bigserial PRIMARY KEY,
    booking_id  uuid NOT NULL REFERENCES bookings(id),
    version     integer NOT NULL,
    from_state  text,
    to_state    text NOT NULL,
    source      text NOT NULL,
    reason      text,
    ts          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (booking_id, version)
);

-- Provider webhook events, applied once each (a replay finds its row and changes nothing).
CREATE TABLE webhook_events (
    provider_id text NOT NULL,
    event_id    text NOT NULL,
    booking_id  uuid REFERENCES bookings(id),
    event_type  text NOT NULL,
    outcome     text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider_id, event_id)
);

-- One usage row per booked minute: the unique key makes metering after a restart idempotent.
ALTER TABLE usage_events
    ADD COLUMN tenant_id uuid REFERENCES tenants(id),
    ADD COLUMN minute    integer;
CREATE UNIQUE INDEX usage_events_minute_key ON usage_events (booking_id, minute);
CREATE INDEX usage_events_tenant_ts_idx ON usage_events (tenant_id, ts);

-- FX rates with where and when they came from (FR-BILL-2: the rate source is recorded).
CREATE TABLE fx_rates (
    base        char(3) NOT NULL,
    quote       char(3) NOT NULL,
    rate        numeric(20, 10) NOT NULL CHECK (rate > 0),
    source      text NOT NULL,
    as_of       timestamptz NOT NULL,
    PRIMARY KEY (base, quote, as_of)
);

-- Daily invoices: one per tenant, day and ledger currency; lines per booking; display currency via fx_rates.
ALTER TABLE invoices
    ADD COLUMN display_currency char(3),
    ADD COLUMN display_total    numeric(14, 2),
    ADD COLUMN fx_rate          numeric(20, 10),
    ADD COLUMN fx_source        text,
    ADD COLUMN fx_as_of         timestamptz,
    ADD COLUMN usage_count      integer NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX invoices_tenant_day_key ON invoices (tenant_id, period_start, currency);

CREATE TABLE invoice_lines (
    invoice_id  uuid NOT NULL REFERENCES invoices(id),
    booking_id  uuid NOT NULL REFERENCES bookings(id),
    minutes     integer NOT NULL,
    amount      numeric(14, 6) NOT NULL,
    PRIMARY KEY (invoice_id, booking_id)
);
