-- Search answers from an in-memory columnar index (deployments/search_*.py), not from SQL, so the offers
-- indexes 0001 created for SQL filtering are never read; each one cost every ingested row a write.
-- Kept: the primary key, (provider_id, external_id) (upserts, full-sync mark-down) and updated_at (the
-- index's incremental refresh). The search_tsv column stays: the index reads its lexemes.
DROP INDEX IF EXISTS offers_gpu_price_idx;
DROP INDEX IF EXISTS offers_price_idx;
DROP INDEX IF EXISTS offers_gpu_price_per_gpu_idx;
DROP INDEX IF EXISTS offers_region_idx;
DROP INDEX IF EXISTS offers_geo_idx;
DROP INDEX IF EXISTS offers_availability_idx;
DROP INDEX IF EXISTS offers_tags_idx;
DROP INDEX IF EXISTS offers_tsv_idx;
