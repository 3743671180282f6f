"""The SQL of the ingestion pipeline (kept apart so the pipeline reads as steps)."""
from __future__ import annotations

STAGE_COLUMNS = [
    "external_id", "name", "gpu_type", "gpu_vendor", "gpu_count", "gpu_memory_gb", "form_factor", "vcpu",
    "memory_gb", "storage_gb", "price_per_hour", "price_per_gpu_hour", "currency", "pricing", "region", "country",
    "continent", "availability", "tags", "attributes",
]

CREATE_STAGE = """
CREATE TEMP TABLE _offer_stage (
    external_id text, name text, gpu_type text, gpu_vendor text, gpu_count double precision,
    gpu_memory_gb double precision, form_factor text, vcpu double precision, memory_gb double precision,
    storage_gb double precision, price_per_hour numeric(14, 6), price_per_gpu_hour numeric(14, 6),
    currency char(3), pricing text, region text, country char(2), continent char(2), availability text,
    tags text[], attributes text
) ON COMMIT DROP
"""

_CONTENT = ("name", "gpu_type", "gpu_vendor", "gpu_count", "gpu_memory_gb", "form_factor", "vcpu", "memory_gb",
            "storage_gb", "price_per_hour", "price_per_gpu_hour", "currency", "pricing", "region", "country",
            "continent", "availability", "tags", "attributes")
_STAGED = ", ".join(f"s.{c}" for c in _CONTENT[:-1]) + ", s.attributes::jsonb"
_DIFFERS = "(" + ", ".join(f"o.{c}" for c in _CONTENT) + ") IS DISTINCT FROM (" + _STAGED + ")"

# $1 provider, $2 sync ts, $3 touch threshold (unchanged rows get last_seen_at only when older than it).
# `cand` keeps only new, changed or to-be-touched rows, so unchanged offers are neither written nor locked.
# New offers take a plain INSERT and known ones an UPDATE by id: the pipeline is the only writer of
# offers and holds the provider's advisory lock, so no other transaction can add the same
# (provider_id, external_id) meanwhile; a plain insert skips ON CONFLICT's speculative insertion, and
# UPDATE .. FROM can return cand's previous price, so no step joins on the text key. All CTEs see the
# table as it was before the statement: cand holds the previous price and availability.
UPSERT = f"""
WITH cand AS (
    SELECT s.*, o.id AS old_id, o.price_per_hour AS old_price, o.availability AS old_avail,
           (o.id IS NULL OR {_DIFFERS}) AS differs
    FROM _offer_stage s LEFT JOIN offers o ON o.provider_id = $1 AND o.external_id = s.external_id
    WHERE o.id IS NULL OR {_DIFFERS} OR o.last_seen_at < $3
), ins AS (
    INSERT INTO offers (provider_id, external_id, {", ".join(_CONTENT)}, last_seen_at, updated_at)
    SELECT $1, external_id, {", ".join(_CONTENT[:-1])}, attributes::jsonb, $2, $2 FROM cand WHERE old_id IS NULL
    RETURNING id, external_id, gpu_type, gpu_count, region, pricing, price_per_hour, availability
), upd AS (
    UPDATE offers o SET {", ".join(f"{c} = c.{c}" for c in _CONTENT[:-1])}, attributes = c.attributes::jsonb,
        last_seen_at = $2, updated_at = CASE WHEN c.differs THEN $2 ELSE o.updated_at END
    FROM cand c WHERE c.old_id IS NOT NULL AND o.id = c.old_id
    RETURNING o.id, o.external_id, o.gpu_type, o.gpu_count, o.region, o.pricing, o.price_per_hour, o.availability,
              c.old_price, c.old_avail, c.differs
), hist AS (
    INSERT INTO price_history (offer_id, price_per_hour, availability, recorded_at)
    SELECT id, price_per_hour, availability, $2 FROM ins
    UNION ALL
    SELECT id, price_per_hour, availability, $2 FROM upd
    WHERE old_price <> price_per_hour OR old_avail <> availability
    RETURNING id, offer_id
)
SELECT 'inserted' AS kind, h.id AS hid, i.id, i.external_id, i.gpu_type, i.gpu_count, i.region, i.pricing,
       NULL::numeric AS old_price, i.price_per_hour AS new_price, i.availability
FROM ins i LEFT JOIN hist h ON h.offer_id = i.id
UNION ALL
SELECT 'updated', h.id, u.id, u.external_id, u.gpu_type, u.gpu_count, u.region, u.pricing, u.old_price,
       u.price_per_hour,
       u.availability
FROM upd u LEFT JOIN hist h ON h.offer_id = u.id
WHERE u.differs
"""

# Offers of the provider absent from a full sync: availability 'down', one history row each.
MARK_DOWN = """
WITH gone AS (
    UPDATE offers o SET availability = 'down', updated_at = $2
    WHERE o.provider_id = $1 AND o.availability <> 'down'
      AND NOT EXISTS (SELECT 1 FROM _offer_stage s WHERE s.external_id = o.external_id)
    RETURNING o.id, o.external_id, o.gpu_type, o.gpu_count, o.region, o.pricing, o.price_per_hour
), hist AS (
    INSERT INTO price_history (offer_id, price_per_hour, availability, recorded_at)
    SELECT id, price_per_hour, 'down', $2 FROM gone
    RETURNING id, offer_id
)
SELECT 'down' AS kind, hist.id AS hid, gone.id, gone.external_id, gone.gpu_type, gone.gpu_count, gone.region,
       gone.pricing,
       gone.price_per_hour AS old_price, gone.price_per_hour AS new_price, 'down' AS availability
FROM gone JOIN hist ON hist.offer_id = gone.id
"""

UPSERT_PROVIDER = """
INSERT INTO providers (id, name, api_endpoint) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET name = CASE WHEN EXCLUDED.name <> EXCLUDED.id THEN EXCLUDED.name ELSE providers.name END,
    api_endpoint = coalesce(EXCLUDED.api_endpoint, providers.api_endpoint)
"""

UPSERT_HEALTH = """
WITH p AS (
    UPDATE providers SET status = $2,
        regions = coalesce((SELECT array_agg(DISTINCT region ORDER BY region) FROM offers WHERE provider_id = $1),
                           '{}')
    WHERE id = $1 RETURNING id
)
INSERT INTO provider_health AS h (provider_id, status, last_sync_ts, last_error, latency_ms, offers, source, details,
                                  updated_at)
VALUES ($1, $2, CASE WHEN $7 THEN now() END, $3, $4,
        (SELECT count(*) FROM offers WHERE provider_id = $1 AND availability <> 'down'), $5, $6, now())
ON CONFLICT (provider_id) DO UPDATE SET status = EXCLUDED.status,
    last_sync_ts = CASE WHEN $7 THEN now() ELSE h.last_sync_ts END, last_error = EXCLUDED.last_error,
    latency_ms = EXCLUDED.latency_ms, offers = EXCLUDED.offers, source = coalesce(EXCLUDED.source, h.source),
    details = EXCLUDED.details, updated_at = now()
"""

MARK_PUBLISHED_BATCH = """
UPDATE outbox SET published_at = now()
WHERE published_at IS NULL AND msg_id LIKE $2 AND created_at = $1
"""

UNPUBLISHED = """
SELECT id, subject, msg_id, payload::text AS payload, body, messages FROM outbox
WHERE published_at IS NULL AND msg_id LIKE $1 AND created_at <= now() - make_interval(secs => $2)
ORDER BY id LIMIT $3
"""

MARK_PUBLISHED_IDS = "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])"

# Age of the oldest event still waiting (0 when none): the outbox-backlog gauge (the partial index on
# unpublished rows makes it an index probe).
OLDEST_UNPUBLISHED_AGE = """
SELECT COALESCE(EXTRACT(EPOCH FROM now() - (SELECT created_at FROM outbox WHERE published_at IS NULL
                                           ORDER BY id LIMIT 1)), 0)::float8
"""
