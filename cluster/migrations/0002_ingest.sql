-- Ingestion (issue 3): per-provider sync details next to the health row (last sync's counts, rejected
-- records by reason, data source and schedule), read by GET /providers/health.
ALTER TABLE provider_health ADD COLUMN details jsonb NOT NULL DEFAULT '{}';
