"""One meaning for every filter word: the price stream's filter and `GET /providers` select the same offers.

Filters are drawn at random (seeded) from the vocabulary of the whole bundled catalog: GPU names, aliases and
form/memory words, regions, countries and continents (in any case), pricing words, price caps (catalog prices
exactly, to hit the boundary), providers and GPU counts, plus a few words that denote nothing. Each draw is
either refused by both paths (the stream with an `invalid` error, search with 422) or selects exactly the same
offers. Most draws compare the two as functions: the stream's compiled filter on the update ingestion
publishes for each offer, against the search index over the same offers. Fewer go through the real
`GET /providers` of the running Serve app over the catalog ingested into PostgreSQL.
"""
from __future__ import annotations

import functools
import random
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import ValidationError

from actors.pipeline import Ingestor
from adapters import registry
from domain.gpus import ALIASES, GPUS
from domain.models import Offer
from domain.offer_index import OfferIndex
from domain.search import CONTINENTS, Filters, QueryError, Sort, parse_query
from gateway.ws.filters import PriceFilter, UpdateView
from tests.search_fixtures import api_all, wait_for

DOMAIN_DRAWS = 600
API_DRAWS = 30


@functools.lru_cache(maxsize=1)
def catalog() -> tuple[Offer, ...]:
    """Every offer of every bundled snapshot, as a sync parses it."""
    offers: list[Offer] = []
    for name in registry.names():
        adapter = registry.build(name)
        offers.extend(adapter.parse(adapter.load_snapshot()).offers)
    return tuple(offers)


class Vocabulary:
    """The words a user could put in a filter, taken from the catalog and the GPU table."""

    def __init__(self, offers: tuple[Offer, ...]):
        gpu_words = [w for name in GPUS for w in (name, name.lower(), name.replace("-", " "), *ALIASES[name])]
        gpu_words += ["H100", "A100", "A10", "L4", "L40", "V100", "H200", "B200 SXM", "A10 PCIe", "a10-pcie",
                      "L4 PCIe", "L40 PCIe", "L4 24GB", "A10 24GB", "T4 16GB", "A100 80GB", "A100 40GB", "a100_80gb",
                      "A100 PCIe", "A100 SXM4 80GB", "NVIDIA A100-SXM4-80GB", "Tesla V100-PCIE-16GB", "H100 SXM",
                      "H100 SXM5", "H100 PCIe", "H100 NVL", "h100-80gb", "RTX 4090", "NVIDIA GeForce RTX 4090",
                      "RTX 6000", "RTX", "MI300X", "GH200", "Voodoo 5", "not-a-gpu"]
        self.gpus = sorted(set(gpu_words))
        self.providers = sorted({o.provider for o in offers}) + ["nosuch"]
        self.regions = sorted({o.region for o in offers}) + ["moon-base-1"]
        self.countries = sorted({o.country for o in offers if o.country}) + ["ZZ", "KE", "USA"]
        self.continents = list(CONTINENTS) + ["XX"]
        self.pricing = ["on_demand", "spot", "interruptible", "On-Demand", "on demand", "SPOT", "Interruptible",
                        "preemptible", "free"]
        self.prices = sorted({float(o.price_per_hour) for o in offers})
        self.counts = sorted({o.gpu_count for o in offers}) + [3.0, 0.5]

    def draw(self, rng: random.Random) -> dict[str, Any]:
        def some(words: list[str], k: int = 3) -> list[str]:
            return [_case(rng, w) for w in rng.sample(words, rng.randint(1, k))]

        f: dict[str, Any] = {}
        if rng.random() < 0.7:
            f["gpu_type"] = some(self.gpus)
        if rng.random() < 0.25:
            f["provider"] = some(self.providers)
        place = rng.random()
        if place < 0.2:
            f["region"] = some(self.regions, 4)
        elif place < 0.35:
            f["country"] = some(self.countries)
        elif place < 0.5:
            f["continent"] = some(self.continents, 2)
        if rng.random() < 0.3:
            f["pricing"] = some(self.pricing, 2)
        if rng.random() < 0.4:
            f["max_price"] = rng.choice(self.prices) if rng.random() < 0.7 else round(rng.uniform(0, 60), 2)
        if rng.random() < 0.2:
            f["gpu_count"] = rng.choice(self.counts)
        return f


def _case(rng: random.Random, word: str) -> str:
    x = rng.random()
    return word.upper() if x < 0.15 else word.lower() if x < 0.3 else word


def _update(offer_id: str, provider: str, gpu_type: str, gpu_count: float, region: str, pricing: str,
            price: Decimal) -> dict[str, Any]:
    """The fields of the price update ingestion publishes for an offer (what the stream's filter reads)."""
    return {"offer_id": offer_id, "provider": provider, "gpu_type": gpu_type, "gpu_count": gpu_count,
            "region": region, "pricing": pricing, "new_price": str(price)}


def stream_selects(views: list[tuple[str, UpdateView]], flt: dict[str, Any]) -> set[str] | None:
    """Offer ids whose updates the stream's filter lets through; None when the stream refuses the filter."""
    try:
        compiled = PriceFilter.model_validate(flt).compiled()
    except ValidationError:
        return None
    return {oid for oid, view in views if compiled.matches(view)}


def query_string(flt: dict[str, Any]) -> str:
    return urlencode(flt, doseq=True)


def index_selects(index: OfferIndex, flt: dict[str, Any]) -> set[str] | None:
    """Offer ids `GET /providers` answers from its index; None for a 422."""
    try:
        result = index.query(parse_query(query_string(flt), Filters), Sort.price_asc, 0, index.n)
    except QueryError:
        return None
    return {index.rows[int(i)][0] for i in result.rows}


def _index_row(oid: str, o: Offer) -> tuple:
    return (oid, o.provider, o.external_id, o.name, o.gpu_type, o.gpu_count, o.gpu_memory_gb, o.vcpu, o.memory_gb,
            o.storage_gb, float(o.price_per_hour), float(o.price_per_gpu_hour), o.currency, o.pricing.value,
            o.region, o.country, o.continent, o.availability.value, o.tags, [], 0, 0)


def test_the_vocabulary_covers_the_catalog():
    offers = catalog()
    vocab = Vocabulary(offers)
    assert len(offers) > 3000 and len(vocab.providers) > 20 and len(vocab.regions) > 200
    assert {o.gpu_type for o in offers} <= set(vocab.gpus)
    assert any("," in r for r in vocab.regions)  # Vast.ai geolocations ('Texas, US') are regions too


def test_stream_and_search_select_the_same_offers_for_random_filters():
    offers = catalog()
    ids = [f"{i:05d}" for i in range(len(offers))]
    index = OfferIndex(_index_row(oid, o) for oid, o in zip(ids, offers))
    views = [(oid, UpdateView(_update(oid, o.provider, o.gpu_type, o.gpu_count, o.region, o.pricing.value,
                                      o.price_per_hour))) for oid, o in zip(ids, offers)]
    vocab = Vocabulary(offers)
    rng = random.Random(20261201)
    outcomes = {"refused": 0, "empty": 0, "some": 0}
    for n in range(DOMAIN_DRAWS):
        flt = vocab.draw(rng)
        want, got = index_selects(index, flt), stream_selects(views, flt)
        assert got == want, (n, flt, None if want is None or got is None else
                             {"search_only": sorted(want - got)[:5], "stream_only": sorted(got - want)[:5]})
        outcomes["refused" if want is None else "some" if want else "empty"] += 1
    # the draws exercise all three outcomes, most of them selecting something
    assert outcomes["some"] > DOMAIN_DRAWS // 3 and outcomes["refused"] > 10 and outcomes["empty"] > 10, outcomes


PREFIX = "fa-"  # this module's copy of the catalog, under provider ids no other test uses


@pytest.fixture(scope="module")
async def ingested_catalog(serve_app, pg, redis_client, nats_client, settings):
    """The whole bundled catalog ingested as a sync does (each provider as `fa-<name>`); waits until the running
    index serves all of it, and removes it afterwards so later tests see the database they expect."""
    ing = Ingestor(settings, pg, redis=redis_client, js=nats_client.jetstream())
    names = [PREFIX + name for name in registry.names()]
    for name in registry.names():
        adapter = registry.build(name)
        parsed = adapter.parse(adapter.load_snapshot()).offers
        offers = [o.model_copy(update={"provider": PREFIX + name}) for o in parsed]
        await ing.ingest(PREFIX + name, offers)
    await redis_client.incr(settings.redis_prefix + "catalog:generation")
    rows = await pg.fetch("SELECT id::text AS id, provider_id, gpu_type, gpu_count, region, pricing::text AS pricing,"
                          " price_per_hour FROM offers WHERE provider_id = ANY($1)", names)
    async with httpx.AsyncClient(base_url=serve_app, timeout=15) as http:
        async def served():
            r = await http.get("/providers", params={"provider": ",".join(names), "page_size": 1})
            return r.status_code == 200 and r.json()["total"] == len(rows)

        await wait_for(served, timeout=60)
    yield names, rows
    await pg.execute("DELETE FROM offers WHERE provider_id = ANY($1)", names)
    await pg.execute("DELETE FROM provider_health WHERE provider_id = ANY($1)", names)
    await pg.execute("DELETE FROM providers WHERE id = ANY($1)", names)
    await redis_client.incr(settings.redis_prefix + "catalog:generation")


async def test_stream_and_get_providers_select_the_same_offers(http, ingested_catalog):
    names, rows = ingested_catalog
    views = [(r["id"], UpdateView(_update(r["id"], r["provider_id"], r["gpu_type"], r["gpu_count"], r["region"],
                                          r["pricing"], r["price_per_hour"]))) for r in rows]
    vocab = Vocabulary(catalog())
    rng = random.Random(1201)
    checked = 0
    for n in range(API_DRAWS):
        flt = vocab.draw(rng)
        if "provider" in flt:
            flt["provider"] = [PREFIX + p for p in flt["provider"]]
        got = stream_selects(views, flt)
        params = {**flt} if "provider" in flt else {**flt, "provider": names}  # only this module's offers
        r = await http.get("/providers", params={**params, "page_size": 1})
        if r.status_code == 422:
            assert got is None, (n, flt, r.json())
            continue
        assert r.status_code == 200, r.text
        _, items = await api_all(http, params)
        want = {i["id"] for i in items}
        assert got == want, (n, flt, None if got is None else
                             {"api_only": sorted(want - got)[:5], "stream_only": sorted(got - want)[:5]})
        checked += 1
    assert checked > API_DRAWS // 2
