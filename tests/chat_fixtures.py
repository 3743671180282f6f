"""Shared by the chat tests: the recorded catalogs of a few real providers, ingested like a sync does, and
the same recommendation query in SQL."""
from __future__ import annotations

from actors.pipeline import Ingestor
from adapters import registry

REAL = ("gcp", "aws", "runpod", "vastai", "lambdalabs", "datacrunch")


async def ingest_real(settings, pg, redis_client, nats_client) -> None:
    ing = Ingestor(settings, pg, redis=redis_client, js=nats_client.jetstream())
    for name in REAL:
        a = registry.build(name)
        await ing.ingest(name, a.parse(a.load_snapshot()).offers)
    await redis_client.incr(settings.redis_prefix + "catalog:generation")


async def sql_cheapest(pg, *, gpu_types, providers=None, regions=None, countries=None, pricing=None, min_count=None,
                       max_price=None, limit=3) -> list[tuple[str, float]]:
    """(id, price) of the cheapest available offers matching, ties by id: the ranking chat must give."""
    where, args = ["availability IN ('up', 'degraded')", "gpu_type = ANY($1)"], [list(gpu_types)]
    for col, val, op in (("provider_id", providers, "= ANY({})"), ("region", regions, "= ANY({})"),
                         ("country", countries, "= ANY({})"), ("pricing::text", pricing, "= ANY({})"),
                         ("gpu_count", min_count, ">= {}"), ("price_per_hour::float8", max_price, "<= {}")):
        if val is not None:
            args.append(val)
            where.append(f"{col} {op.format(f'${len(args)}')}")
    rows = await pg.fetch(f"SELECT id::text, price_per_hour::float8 FROM offers WHERE {' AND '.join(where)} "
                          f"ORDER BY price_per_hour, id LIMIT {limit}", *args)
    return [(r[0], r[1]) for r in rows]
