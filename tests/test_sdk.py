"""The Python SDK: every call matches the OpenAPI document, and works against the live app (sync and
async), with typed results and typed errors carrying the API's code and trace id."""
from __future__ import annotations

import asyncio
import inspect
import re
import time
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import httpx
import pytest

import gpubroker
from cluster.settings import load_settings
from deployments.ingress import create_app
from domain.booking_api import BookingDetail, BookingOut, BookingPage, InvoicePage
from domain.chat import ChatConstraints, ChatResponse
from domain.forecast import ForecastResponse
from domain.history import GpuHistory, OfferHistoryPage
from domain.models import BookingState, OfferDetail, ProviderOffer, SearchPage
from gpubroker.client import ENDPOINTS, FILTERS, AsyncClient, Client
from tests.booking_fixtures import booking_hosts, sandbox_offers, tenants  # noqa: F401
from tests.search_fixtures import bump_generation, wait_for

SANDBOX_OFFER = "sbx-4090x1-use1"  # 0.44 USD per hour
SDK_TO_API = {"start": "from", "end": "to"}  # query parameters the SDK names otherwise
NOT_ROUTES = {"close", "aclose", "search_all", "stream"}


@pytest.fixture(scope="module")
def doc():
    return create_app(SimpleNamespace(settings=load_settings())).openapi()


def _sent(method, ep) -> tuple[set[str], set[str], set[str], set[str]]:
    """What an SDK method can send, by its signature: (query names, body fields, header names, path arguments)."""
    query, body, headers, path = set(), set(), set(), set()
    for name, p in inspect.signature(method).parameters.items():
        if name == "self":
            continue
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            query |= set(FILTERS)
        elif name in ep.body:
            body.add(name)
        elif name in ep.headers:
            headers.add(ep.headers[name].lower())
        elif name.endswith("_id") and "{" in ep.path:
            path.add(name)
        else:
            query.add(SDK_TO_API.get(name, name))
    return query, body, headers, path


def _schema(doc, ref: dict) -> dict:
    return doc["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]


@pytest.mark.parametrize("cls", [Client, AsyncClient])
def test_every_sdk_call_matches_the_openapi_document(doc, cls):
    public = {n for n, _ in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")} - NOT_ROUTES
    assert public == set(ENDPOINTS), "every SDK call that is a route is listed in ENDPOINTS"
    for name, ep in ENDPOINTS.items():
        op = doc["paths"][ep.path][ep.method.lower()]
        declared = {p["in"]: set() for p in op.get("parameters", [])}
        for p in op.get("parameters", []):
            declared[p["in"]].add(p["name"])
        query, body, headers, path_args = _sent(getattr(cls, name), ep)
        assert set(ep.params) <= declared.get("query", set()), (name, set(ep.params) - declared.get("query", set()))
        assert query == set(ep.params), name
        required = {p["name"] for p in op.get("parameters", []) if p.get("required") and p["in"] == "query"}
        assert required <= set(ep.params), (name, required)
        assert declared.get("path", set()) == set(re.findall(r"{(\w+)}", ep.path)), name
        assert len(path_args) == len(declared.get("path", ())), name
        assert headers == {h.lower() for h in ep.headers.values()} and headers <= declared.get("header", set()), name
        assert body == set(ep.body), name
        if ep.body or ep.fixed:
            schema = _schema(doc, op["requestBody"]["content"]["application/json"]["schema"])
            assert set(ep.body) | set(ep.fixed) <= set(schema["properties"]), (name, schema["properties"].keys())
            assert set(schema.get("required", ())) <= set(ep.body), name
        else:
            assert "requestBody" not in op, name
        status = min(s for s in op["responses"] if s.startswith("2"))
        content = op["responses"][status]["content"]
        if ep.model is not None:
            assert content["application/json"]["schema"]["$ref"].rsplit("/", 1)[1] == ep.model.__name__, name
        elif ep.fixed.get("stream"):
            assert "text/event-stream" in content, name
        else:
            assert {"text/csv", "application/json"} <= set(content), name


def test_public_surface():
    assert set(gpubroker.__all__) == {
        "ApiError", "AsyncClient", "BadRequest", "ChatEvent", "Client", "Conflict", "Forbidden", "GpuBrokerError",
        "NotFound", "RateLimited", "StreamUpdate", "TransportError", "Unauthorized", "Unavailable", "__version__"}
    with pytest.raises(TypeError, match="colour"):
        Client("http://127.0.0.1:9").search(colour="red")


@pytest.fixture(scope="module")
async def sdk_data(serve_app, pg, redis_client, settings):
    await pg.execute("INSERT INTO providers (id, name) VALUES ('sdk-a', 'SDK A') ON CONFLICT DO NOTHING")
    ids = []
    for n, price in enumerate((1.25, 2.5, 3.75)):
        oid = uuid.uuid4()
        ids.append(oid)
        await pg.execute(
            "INSERT INTO offers (id, provider_id, external_id, name, gpu_type, gpu_count, price_per_hour, "
            "price_per_gpu_hour, pricing, region, country, continent) "
            "VALUES ($1, 'sdk-a', $2, $2, 'L40S', 1, $3, $3, 'spot', 'europe-west4', 'NL', 'EU')",
            oid, f"sdk-{n}", price)
        t0 = datetime(2025, 6, 2, tzinfo=timezone.utc)
        await pg.executemany("INSERT INTO price_history (offer_id, price_per_hour, availability, recorded_at) "
                             "VALUES ($1, $2, 'up', $3)", [(oid, price + k / 10, t0 + timedelta(days=k)) for k in range(5)])
    await bump_generation(redis_client, settings)

    def loaded():
        with Client(serve_app) as c:
            return c.search(provider="sdk-a").total == 3
    await wait_for(lambda: asyncio.to_thread(loaded), timeout=20)
    return ids


async def test_sync_client_against_the_live_app(serve_app, sdk_data):
    def calls():
        with Client(serve_app) as gb:
            page = gb.search("L40S", provider="sdk-a", max_price=3, sort="price_desc", limit=1)
            all_items = list(gb.search_all(provider="sdk-a", limit=2))
            detail = gb.offer(str(sdk_data[0]))
            csv_text = gb.export(provider="sdk-a")
            as_json = gb.export("json", provider="sdk-a")
            hist = gb.history("L40S", start="2025-06-01", end="2025-06-30", bucket="week", provider="sdk-a")
            points = gb.offer_history(str(sdk_data[1]), limit=2)
            return page, all_items, detail, csv_text, as_json, hist, points
    page, all_items, detail, csv_text, as_json, hist, points = await asyncio.to_thread(calls)
    assert isinstance(page, SearchPage) and page.total == 2 and page.items[0].price_per_hour == 2.5
    assert page.next_cursor is not None
    assert sorted(i.price_per_hour for i in all_items) == [1.25, 2.5, 3.75]
    assert isinstance(detail, OfferDetail) and detail.id == sdk_data[0] and len(detail.price_history) == 5
    assert csv_text.splitlines()[0].startswith("id,provider,name") and len(csv_text.splitlines()) == 4
    assert all(isinstance(o, ProviderOffer) for o in as_json) and len(as_json) == 3
    assert isinstance(hist, GpuHistory) and hist.gpus == ["L40S"]
    assert [(s.provider, sum(p.samples for p in s.points)) for s in hist.series] == [("sdk-a", 15)]
    assert isinstance(points, OfferHistoryPage) and [p.price_per_hour for p in points.items] == [2.9, 2.8]


async def test_async_client_against_the_live_app(serve_app, sdk_data):
    async with AsyncClient(serve_app) as gb:
        page = await gb.search(provider="sdk-a", continent="EU", pricing=["spot"])
        seen = [o.id async for o in gb.search_all(provider="sdk-a", limit=1)]
        hist = await gb.history("L40S", start=datetime(2025, 6, 1), end=datetime(2025, 6, 10), provider="sdk-a")
    assert page.total == 3 and len(seen) == 3 and set(seen) == {o.id for o in page.items}
    assert len(hist.series) == 1 and len(hist.series[0].points) == 5


async def test_errors_are_typed_with_code_and_trace_id(serve_app, sdk_data):
    async with AsyncClient(serve_app) as gb:
        with pytest.raises(gpubroker.NotFound) as nf:
            await gb.offer(str(uuid.uuid4()))
        with pytest.raises(gpubroker.BadRequest) as bad:
            await gb.history("Z9000")
        with pytest.raises(gpubroker.BadRequest) as bad_sort:
            await gb.search(sort="cheapest")
    assert nf.value.status == 404 and nf.value.code == "not_found" and len(nf.value.trace_id) == 32
    assert bad.value.code == "validation_error" and bad.value.details[0]["field"] == "gpu_type"
    assert bad_sort.value.details[0]["field"] == "sort"
    with pytest.raises(gpubroker.TransportError):
        with Client("http://127.0.0.1:9", timeout=2) as gb:
            gb.search()
    with pytest.raises(gpubroker.GpuBrokerError, match="needs an API key"):
        async with AsyncClient(serve_app, api_key="") as gb:
            async for _ in gb.stream(gpu_type="H100"):
                pass


class _LoseFirstAnswer(httpx.HTTPTransport):
    """Delivers the first POST to the API, then loses its answer (a timeout), as a flaky network would."""

    def __init__(self):
        super().__init__()
        self.posts: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST":
            self.posts.append(request.headers.get("idempotency-key"))
            if len(self.posts) == 1:
                response.read()
                response.close()
                raise httpx.ReadTimeout("answer lost", request=request)
        return response


async def test_bookings_through_the_sdk(serve_app, tenants, sandbox_offers, pg):
    a = tenants["a"]
    lossy = _LoseFirstAnswer()

    def calls():
        with Client(serve_app, api_key=a.access, transport=lossy) as gb:
            made = gb.book(sandbox_offers[SANDBOX_OFFER], hours=1, price_per_hour="0.440000")
            detail = gb.booking(made.id)
            for _ in range(100):  # the sandbox provisions after GPUBROKER_SANDBOX_DELAY_S
                if detail.state != BookingState.pending_provision:
                    break
                time.sleep(0.2)
                detail = gb.booking(made.id)
            listed = gb.bookings(state=detail.state.value, limit=200)
            cancelled = gb.cancel_booking(made.id)
            with pytest.raises(gpubroker.Conflict) as again:
                gb.cancel_booking(made.id)
            with pytest.raises(gpubroker.BadRequest) as no_span:
                gb.book(sandbox_offers[SANDBOX_OFFER])
            with pytest.raises(gpubroker.NotFound) as missing:
                gb.booking(str(uuid.uuid4()))
            return made, detail, listed, cancelled, again.value, no_span.value, missing.value
    made, detail, listed, cancelled, again, no_span, missing = await asyncio.to_thread(calls)
    # the lost answer was resent with the same generated key: one booking, the one the API made first
    key = lossy.posts[0]
    assert len(key) == 32 and lossy.posts[:4] == [key, key, None, None]  # book, its resend, two cancels
    assert lossy.posts[4] not in (None, key)  # each book() call its own key
    assert await pg.fetchval("SELECT count(*) FROM bookings WHERE idempotency_key = $1", key) == 1
    assert await pg.fetchval("SELECT id::text FROM bookings WHERE idempotency_key = $1", key) == made.id
    assert isinstance(made, BookingOut) and made.provider == "sandbox" and made.price_per_hour == "0.440000"
    assert isinstance(detail, BookingDetail) and detail.state == BookingState.active
    assert [t.to for t in detail.transitions] == [BookingState.draft, BookingState.pending_provision,
                                                  BookingState.active]
    assert isinstance(listed, BookingPage) and made.id in {b.id for b in listed.items}
    assert all(b.state == BookingState.active for b in listed.items)
    assert cancelled.id == made.id and cancelled.state == BookingState.cancelled
    assert again.code == "illegal_transition" and again.status == 409 and len(again.trace_id) == 32
    assert no_span.status == 422 and no_span.code == "validation_error"
    assert missing.code == "not_found"
    async with AsyncClient(serve_app, api_key=a.access) as gb:
        page = await gb.bookings(state="Cancelled", limit=1)
        one = await gb.booking(made.id)
        invoices = await gb.invoices(limit=5)
        with pytest.raises(gpubroker.NotFound):
            await gb.invoice(str(uuid.uuid4()))
        with pytest.raises(gpubroker.BadRequest) as bad_state:
            await gb.bookings(state="Sleeping")
    assert page.items[0].id == made.id and one.state == BookingState.cancelled and one.transitions[-1].source == "api"
    assert isinstance(invoices, InvoicePage) and invoices.total == len(invoices.items)
    assert bad_state.value.details[0]["field"] == "state"
    async with AsyncClient(serve_app) as anonymous:
        with pytest.raises(gpubroker.Unauthorized):
            await anonymous.bookings()


async def test_predict_through_the_sdk(serve_app, sdk_data):
    from ray import serve

    await serve.get_deployment_handle("Forecast", app_name="gpubroker").refresh.remote()
    with_hours = await asyncio.to_thread(lambda: Client(serve_app).predict(
        "L40S", provider="sdk-a", region="europe-west4", pricing="spot", hours=10, horizon_days=3))
    async with AsyncClient(serve_app) as gb:
        whole = await gb.predict("L40S", provider="sdk-a", horizon_days=2)
        with pytest.raises(gpubroker.BadRequest) as too_far:
            await gb.predict("L40S", horizon_days=31)
        with pytest.raises(gpubroker.NotFound) as unknown:
            await gb.predict("L40S", provider="no-such-provider")
    assert isinstance(with_hours, ForecastResponse) and with_hours.provider == "sdk-a" and len(with_hours.series) == 3
    assert with_hours.hours == 10 and with_hours.total_for_hours == pytest.approx(with_hours.hourly * 10, rel=1e-3)
    assert with_hours.region == "europe-west4" and with_hours.pricing == "spot"
    assert len(whole.series) == 2 and whole.hours == 48
    assert too_far.value.details[0]["field"] == "horizon_days"
    assert unknown.value.status == 404 and unknown.value.code == "unknown_provider"


async def test_chat_through_the_sdk(serve_app, sdk_data):
    ids = {str(i) for i in sdk_data}
    answer = await asyncio.to_thread(lambda: Client(serve_app).chat(
        "the cheapest L40S spot for 10 hours", constraints={"providers": ["sdk-a"]}))
    assert isinstance(answer, ChatResponse) and answer.constraints.providers == ["sdk-a"]
    assert answer.constraints.gpu_type == "L40S" and answer.recommendations
    assert {r.offer_id for r in answer.recommendations} <= ids
    assert answer.recommendations[0].price_per_hour == 1.25
    assert answer.recommendations[0].total_for_duration == pytest.approx(12.5)
    async with AsyncClient(serve_app) as gb:
        events = [e async for e in gb.chat_stream("an L40S", constraints=ChatConstraints(providers=["sdk-a"]))]
        with pytest.raises(gpubroker.BadRequest) as empty:
            await gb.chat("")
    kinds = [e.event for e in events]
    assert kinds[0] == "result" and kinds[-1] == "done" and set(kinds[1:-1]) <= {"token"}
    assert {r["offer_id"] for r in events[0].data["recommendations"]} <= ids
    assert events[-1].data["summary"] == "".join(e.data["text"] for e in events if e.event == "token")
    assert empty.value.details[0]["field"] == "prompt"
