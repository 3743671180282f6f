-- Ingestion (issue 3): per-provider sync details next to the health row (last sync's counts, rejected
-- records by reason, data source and schedule), read by GET /providers/health.
ALTER TABLE provider_health ADD COLUMN details jsonb NOT NULL DEFAULT '{}';
-- The outbox relay of price events looks up this pipeline's unpublished rows by msg_id prefix.
CREATE INDEX outbox_unpublished_msg_idx ON outbox (msg_id text_pattern_ops) WHERE published_at IS NULL;
