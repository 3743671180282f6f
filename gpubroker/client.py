"""The GPU Broker Python SDK: `Client` (sync) and `AsyncClient` (asyncio), both on httpx.

    from gpubroker import Client

    with Client() as gb:                               # GPUBROKER_API, default http://127.0.0.1:8000
        page = gb.search(gpu_type="H100", max_price=2.5, pricing="spot", limit=20)
        for offer in page.items:
            print(offer.provider, offer.region, offer.price_per_hour)

Results are the API's own pydantic models (`domain.models.SearchPage`, `OfferDetail`,
`domain.history.GpuHistory`, ...); error answers raise the typed errors of `gpubroker.errors`, with
the API's error code and trace id. `ENDPOINTS` says which route and parameters each call uses; a test
checks it against the OpenAPI document.
"""
from __future__ import annotations

import asyncio
import os
import queue
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, AsyncIterator, Iterator

import httpx
from pydantic import BaseModel, TypeAdapter

from domain.history import GpuHistory, OfferHistoryPage
from domain.models import OfferDetail, PriceUpdate, ProviderOffer, SearchPage
from gpubroker.errors import GpuBrokerError, TransportError, Unauthorized, error_from_response

__all__ = ["AsyncClient", "Client", "ENDPOINTS", "Endpoint", "StreamUpdate", "DEFAULT_API", "DEFAULT_WS"]

DEFAULT_API = "http://127.0.0.1:8000"
DEFAULT_WS = "ws://127.0.0.1:8765"
FILTERS = ("gpu_type", "gpu_count", "min_gpu_count", "min_gpu_memory_gb", "provider", "region", "country",
           "continent", "max_price", "max_price_per_gpu", "pricing", "availability", "min_vcpu", "min_memory_gb",
           "tags", "q")
STREAM_FILTERS = ("gpu_type", "provider", "region", "country", "continent", "pricing", "max_price")


@dataclass(frozen=True)
class Endpoint:
    """The route an SDK call uses and the query parameters it may send (API names)."""

    method: str
    path: str
    params: tuple[str, ...]
    model: type[BaseModel] | None


ENDPOINTS: dict[str, Endpoint] = {
    "search": Endpoint("GET", "/providers", FILTERS + ("sort", "limit", "cursor"), SearchPage),
    "offer": Endpoint("GET", "/providers/{id}", (), OfferDetail),
    "export": Endpoint("GET", "/providers/export", FILTERS + ("sort", "format"), None),
    "history": Endpoint("GET", "/prices/history", ("gpu_type", "from", "to", "bucket", "provider", "pricing"),
                        GpuHistory),
    "offer_history": Endpoint("GET", "/providers/{id}/history", ("from", "to", "limit", "cursor"), OfferHistoryPage),
}
_OFFERS = TypeAdapter(list[ProviderOffer])


class StreamUpdate(PriceUpdate):
    """One live price change from the stream: the published PriceUpdate plus its stream sequence number."""

    seq: int


def _param(value: Any) -> Any:
    if isinstance(value, (list, tuple, set)):
        return ",".join(str(_param(v)) for v in value)
    if isinstance(value, datetime):
        return value.isoformat()
    return getattr(value, "value", value)


def _request(name: str, path_id: str | None = None, **params: Any) -> tuple[str, str, dict[str, Any]]:
    """(method, path, query) of an SDK call; unknown parameter names are a TypeError, never sent."""
    ep = ENDPOINTS[name]
    unknown = set(params) - set(ep.params)
    if unknown:
        raise TypeError(f"{name}() got unexpected parameters: {', '.join(sorted(unknown))}")
    query = {k: _param(v) for k, v in params.items() if v is not None}
    path = ep.path.replace("{id}", str(path_id)) if path_id is not None else ep.path
    return ep.method, path, query


def _decode(name: str, response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise error_from_response(response)
    model = ENDPOINTS[name].model
    return model.model_validate_json(response.content) if model is not None else response


def _export_result(response: httpx.Response, fmt: str) -> str | list[ProviderOffer]:
    return _OFFERS.validate_json(response.content) if fmt == "json" else response.text


def _credential(api_key: str | None) -> str | None:
    return api_key or os.environ.get("GPUBROKER_API_KEY") or None


def _history_params(start: datetime | str | None, end: datetime | str | None) -> dict[str, Any]:
    return {"from": start, "to": end}


class _Base:
    def __init__(self, base_url: str | None, api_key: str | None, ws_url: str | None, timeout: float):
        self.base_url = (base_url or os.environ.get("GPUBROKER_API") or DEFAULT_API).rstrip("/")
        self.ws_url = ws_url or os.environ.get("GPUBROKER_WS") or DEFAULT_WS
        self.api_key = _credential(api_key)
        self.timeout = timeout

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


class Client(_Base):
    """Synchronous client. `api_key`: an API key or access token (default: GPUBROKER_API_KEY)."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None, ws_url: str | None = None,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None):
        super().__init__(base_url, api_key, ws_url, timeout)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, headers=self._headers(),
                                  transport=transport)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, name: str, path_id: str | None = None, **params: Any) -> Any:
        method, path, query = _request(name, path_id, **params)
        try:
            response = self._http.request(method, path, params=query)
        except httpx.HTTPError as exc:
            raise TransportError(f"{method} {self.base_url}{path}: {exc}") from exc
        return _decode(name, response)

    def search(self, gpu_type: str | list[str] | None = None, *, sort: str | None = None, limit: int | None = None,
               cursor: str | None = None, **filters: Any) -> SearchPage:
        """One page of offers matching the filters (any of `FILTERS`); `next_cursor` continues it."""
        return self._call("search", gpu_type=gpu_type, sort=sort, limit=limit, cursor=cursor, **filters)

    def search_all(self, gpu_type: str | list[str] | None = None, *, sort: str | None = None, limit: int = 100,
                   **filters: Any) -> Iterator[ProviderOffer]:
        """Every matching offer, following `next_cursor` page after page."""
        cursor = None
        while True:
            page = self.search(gpu_type, sort=sort, limit=limit, cursor=cursor, **filters)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def offer(self, offer_id: str) -> OfferDetail:
        """One offer with its recent price history."""
        return self._call("offer", str(offer_id))

    def export(self, format: str = "csv", *, sort: str | None = None, **filters: Any) -> str | list[ProviderOffer]:
        """Up to 10,000 matching offers: CSV text, or (format="json") a list of offers."""
        return _export_result(self._call("export", format=format, sort=sort, **filters), format)

    def history(self, gpu_type: str, *, start: datetime | str | None = None, end: datetime | str | None = None,
                bucket: str = "day", provider: str | None = None, pricing: str | None = None) -> GpuHistory:
        """Min/median/max price per provider, region and pricing, per day or week."""
        return self._call("history", gpu_type=gpu_type, bucket=bucket, provider=provider, pricing=pricing,
                          **_history_params(start, end))

    def offer_history(self, offer_id: str, *, start: datetime | str | None = None, end: datetime | str | None = None,
                      limit: int | None = None, cursor: str | None = None) -> OfferHistoryPage:
        """One page of an offer's recorded prices, newest first."""
        return self._call("offer_history", str(offer_id), limit=limit, cursor=cursor, **_history_params(start, end))

    def stream(self, **flt: Any) -> Iterator[StreamUpdate]:
        """Live price changes matching the filter, until the loop breaks (runs the async stream in a thread)."""
        updates: queue.Queue = queue.Queue()
        stop = threading.Event()

        async def pump() -> None:
            async with AsyncClient(self.base_url, api_key=self.api_key, ws_url=self.ws_url) as client:
                try:
                    async for update in client.stream(**flt):
                        updates.put(update)
                        if stop.is_set():
                            return
                except BaseException as exc:  # handed to the caller's thread
                    updates.put(exc)

        thread = threading.Thread(target=asyncio.run, args=(pump(),), daemon=True)
        thread.start()
        try:
            while True:
                item = updates.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()


class AsyncClient(_Base):
    """Asynchronous client: the same calls as `Client`, awaited; `stream()` is an async iterator."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None, ws_url: str | None = None,
                 timeout: float = 30.0, transport: httpx.AsyncBaseTransport | None = None):
        super().__init__(base_url, api_key, ws_url, timeout)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, headers=self._headers(),
                                       transport=transport)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, name: str, path_id: str | None = None, **params: Any) -> Any:
        method, path, query = _request(name, path_id, **params)
        try:
            response = await self._http.request(method, path, params=query)
        except httpx.HTTPError as exc:
            raise TransportError(f"{method} {self.base_url}{path}: {exc}") from exc
        return _decode(name, response)

    async def search(self, gpu_type: str | list[str] | None = None, *, sort: str | None = None,
                     limit: int | None = None, cursor: str | None = None, **filters: Any) -> SearchPage:
        return await self._call("search", gpu_type=gpu_type, sort=sort, limit=limit, cursor=cursor, **filters)

    async def search_all(self, gpu_type: str | list[str] | None = None, *, sort: str | None = None, limit: int = 100,
                         **filters: Any) -> AsyncIterator[ProviderOffer]:
        cursor = None
        while True:
            page = await self.search(gpu_type, sort=sort, limit=limit, cursor=cursor, **filters)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def offer(self, offer_id: str) -> OfferDetail:
        return await self._call("offer", str(offer_id))

    async def export(self, format: str = "csv", *, sort: str | None = None,
                     **filters: Any) -> str | list[ProviderOffer]:
        return _export_result(await self._call("export", format=format, sort=sort, **filters), format)

    async def history(self, gpu_type: str, *, start: datetime | str | None = None, end: datetime | str | None = None,
                      bucket: str = "day", provider: str | None = None, pricing: str | None = None) -> GpuHistory:
        return await self._call("history", gpu_type=gpu_type, bucket=bucket, provider=provider, pricing=pricing,
                                **_history_params(start, end))

    async def offer_history(self, offer_id: str, *, start: datetime | str | None = None,
                            end: datetime | str | None = None, limit: int | None = None,
                            cursor: str | None = None) -> OfferHistoryPage:
        return await self._call("offer_history", str(offer_id), limit=limit, cursor=cursor,
                                **_history_params(start, end))

    async def stream(self, **flt: Any) -> AsyncIterator[StreamUpdate]:
        """Live price changes matching the filter (keys of STREAM_FILTERS), with reconnects and resume
        (`gateway.client.PriceStreamClient`); needs an API key or access token."""
        from gateway.client import PriceStreamClient, StreamRefused

        unknown = set(flt) - set(STREAM_FILTERS)
        if unknown:
            raise TypeError(f"stream() got unexpected filters: {', '.join(sorted(unknown))}")
        if not self.api_key:
            raise GpuBrokerError("the price stream needs an API key or access token (api_key= or GPUBROKER_API_KEY)")
        flt = {k: (str(v) if k == "max_price" else v) for k, v in flt.items() if v is not None}
        client = PriceStreamClient(self.ws_url, self.api_key, subscriptions={"sdk": flt})
        runner = asyncio.get_running_loop().create_task(client.run())
        try:
            while True:
                getter = asyncio.ensure_future(client.updates.get())
                done, _ = await asyncio.wait({getter, runner}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    try:
                        runner.result()
                    except StreamRefused as exc:
                        raise Unauthorized(401, "unauthorized", f"stream refused: {exc.reason or exc.code}") from None
                    return
                yield StreamUpdate.model_validate(getter.result())
        finally:
            await client.close()
            runner.cancel()
