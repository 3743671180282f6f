"""The GPU Broker Python SDK: `Client` (sync) and `AsyncClient` (asyncio), both on httpx.

    from gpubroker import Client

    with Client() as gb:                               # GPUBROKER_API, default http://127.0.0.1:8000
        page = gb.search(gpu_type="H100", max_price=2.5, pricing="spot", limit=20)
        for offer in page.items:
            print(offer.provider, offer.region, offer.price_per_hour)

Calls: offers (`search`, `search_all`, `offer`, `export`, `history`, `offer_history`, `stream`), bookings
(`book`, `bookings`, `booking`, `cancel_booking`, `invoices`, `invoice`), forecasts (`predict`) and chat
(`chat`, `chat_stream`). Results are the API's own pydantic models (`domain.models.SearchPage`,
`domain.booking_api.BookingOut`, `domain.forecast.ForecastResponse`, `domain.chat.ChatResponse`, ...); error
answers raise the typed errors of `gpubroker.errors`, with the API's error code and trace id.
`gpubroker.endpoints.ENDPOINTS` says which route, parameters, body fields and headers each call uses; a test
checks it against the OpenAPI document.
"""
from __future__ import annotations

import asyncio
import os
import queue
import threading
import time
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, AsyncIterator, Iterator

import httpx

from domain.booking_api import BookingDetail, BookingOut, BookingPage, InvoiceDetail, InvoicePage
from domain.chat import ChatConstraints, ChatResponse
from domain.forecast import ForecastResponse
from domain.history import GpuHistory, OfferHistoryPage
from domain.models import OfferDetail, PriceUpdate, ProviderOffer, SearchPage
from gpubroker.endpoints import (ENDPOINTS, FILTERS, STREAM_FILTERS, ChatEvent, Endpoint, SseReader, build_request,
                                 decode, export_result)
from gpubroker.errors import GpuBrokerError, TransportError, Unauthorized

__all__ = ["AsyncClient", "ChatEvent", "Client", "DEFAULT_API", "DEFAULT_WS", "ENDPOINTS", "Endpoint", "FILTERS",
           "StreamUpdate"]

DEFAULT_API = "http://127.0.0.1:8000"
DEFAULT_WS = "ws://127.0.0.1:8765"
# book() resends on a lost answer with the same Idempotency-Key: the API answers the booking it already made
BOOK_ATTEMPTS = 3
BOOK_RETRY_DELAY_S = 0.5


class StreamUpdate(PriceUpdate):
    """One live price change from the stream: the published PriceUpdate plus its stream sequence number."""

    seq: int


def _credential(api_key: str | None) -> str | None:
    return api_key or os.environ.get("GPUBROKER_API_KEY") or None


def _history_params(start: datetime | str | None, end: datetime | str | None) -> dict[str, Any]:
    return {"from": start, "to": end}


def _book_args(offer_id: str, hours: float | Decimal | None, end: datetime | str | None,
               price_per_hour: str | Decimal | None, idempotency_key: str | None) -> dict[str, Any]:
    return {"offer_id": str(offer_id), "hours": hours, "end": end, "price_per_hour": price_per_hour,
            "idempotency_key": idempotency_key or uuid.uuid4().hex}


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

    def _call(self, name: str, path_id: Any = None, *, attempts: int = 1, **args: Any) -> Any:
        request = build_request(name, path_id, **args)
        for attempt in range(attempts):
            try:
                return decode(name, self._http.request(**request))
            except httpx.HTTPError as exc:
                if attempt + 1 == attempts:
                    raise TransportError(f"{request['method']} {self.base_url}{request['url']}: {exc}") from exc
                time.sleep(BOOK_RETRY_DELAY_S * 2 ** attempt)

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
        return export_result(self._call("export", format=format, sort=sort, **filters), format)

    def history(self, gpu_type: str, *, start: datetime | str | None = None, end: datetime | str | None = None,
                bucket: str = "day", provider: str | None = None, pricing: str | None = None) -> GpuHistory:
        """Min/median/max price per provider, region and pricing, per day or week."""
        return self._call("history", gpu_type=gpu_type, bucket=bucket, provider=provider, pricing=pricing,
                          **_history_params(start, end))

    def offer_history(self, offer_id: str, *, start: datetime | str | None = None, end: datetime | str | None = None,
                      limit: int | None = None, cursor: str | None = None) -> OfferHistoryPage:
        """One page of an offer's recorded prices, newest first."""
        return self._call("offer_history", str(offer_id), limit=limit, cursor=cursor, **_history_params(start, end))

    def book(self, offer_id: str, *, hours: float | Decimal | None = None, end: datetime | str | None = None,
             price_per_hour: str | Decimal | None = None, idempotency_key: str | None = None) -> BookingOut:
        """Book an offer for `hours` or until `end` (give one). The Idempotency-Key (generated when not given)
        makes a resend safe: a lost answer is retried and the API answers the booking it already made.
        `price_per_hour`: the price you were shown; if it changed the API refuses with 409 price_changed."""
        return self._call("book", attempts=BOOK_ATTEMPTS,
                          **_book_args(offer_id, hours, end, price_per_hour, idempotency_key))

    def bookings(self, state: str | None = None, *, limit: int | None = None,
                 cursor: str | None = None) -> BookingPage:
        """One page of the tenant's bookings, newest first; `next_cursor` continues it."""
        return self._call("bookings", state=state, limit=limit, cursor=cursor)

    def booking(self, booking_id: str) -> BookingDetail:
        """One booking with its transitions and metered usage."""
        return self._call("booking", str(booking_id))

    def cancel_booking(self, booking_id: str) -> BookingOut:
        """Cancel a booking (Conflict if it is already final)."""
        return self._call("cancel_booking", str(booking_id))

    def invoices(self, *, limit: int | None = None, cursor: str | None = None) -> InvoicePage:
        """One page of the tenant's invoices, newest period first."""
        return self._call("invoices", limit=limit, cursor=cursor)

    def invoice(self, invoice_id: str) -> InvoiceDetail:
        """One invoice with its lines."""
        return self._call("invoice", str(invoice_id))

    def predict(self, gpu_type: str, *, region: str | None = None, provider: str | None = None,
                pricing: str | None = None, gpu_count: float | None = None, hours: float | None = None,
                horizon_days: int = 30) -> ForecastResponse:
        """The price forecast of a GPU for the next `horizon_days` (1..30), with the cost of `hours` of use."""
        return self._call("predict", gpu_type=gpu_type, region=region, provider=provider, pricing=pricing,
                          gpu_count=gpu_count, hours=hours, horizon_days=horizon_days)

    def chat(self, prompt: str, constraints: ChatConstraints | dict[str, Any] | None = None) -> ChatResponse:
        """GPU recommendations for a request in plain words; `constraints` win over the prompt."""
        return self._call("chat", prompt=prompt, constraints=constraints)

    def chat_stream(self, prompt: str, constraints: ChatConstraints | dict[str, Any] | None = None
                    ) -> Iterator[ChatEvent]:
        """The chat answer as it is made: a `result` event, `token` events (the summary), then `done`."""
        request = build_request("chat_stream", prompt=prompt, constraints=constraints)
        reader = SseReader()
        try:
            with self._http.stream(**request) as response:
                if response.status_code >= 400:
                    response.read()
                    decode("chat_stream", response)
                for line in response.iter_lines():
                    event = reader.feed(line)
                    if event is not None:
                        yield event
        except httpx.HTTPError as exc:
            raise TransportError(f"POST {self.base_url}{request['url']}: {exc}") from exc

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

    async def _call(self, name: str, path_id: Any = None, *, attempts: int = 1, **args: Any) -> Any:
        request = build_request(name, path_id, **args)
        for attempt in range(attempts):
            try:
                return decode(name, await self._http.request(**request))
            except httpx.HTTPError as exc:
                if attempt + 1 == attempts:
                    raise TransportError(f"{request['method']} {self.base_url}{request['url']}: {exc}") from exc
                await asyncio.sleep(BOOK_RETRY_DELAY_S * 2 ** attempt)

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
        return export_result(await self._call("export", format=format, sort=sort, **filters), format)

    async def history(self, gpu_type: str, *, start: datetime | str | None = None, end: datetime | str | None = None,
                      bucket: str = "day", provider: str | None = None, pricing: str | None = None) -> GpuHistory:
        return await self._call("history", gpu_type=gpu_type, bucket=bucket, provider=provider, pricing=pricing,
                                **_history_params(start, end))

    async def offer_history(self, offer_id: str, *, start: datetime | str | None = None,
                            end: datetime | str | None = None, limit: int | None = None,
                            cursor: str | None = None) -> OfferHistoryPage:
        return await self._call("offer_history", str(offer_id), limit=limit, cursor=cursor,
                                **_history_params(start, end))

    async def book(self, offer_id: str, *, hours: float | Decimal | None = None, end: datetime | str | None = None,
                   price_per_hour: str | Decimal | None = None, idempotency_key: str | None = None) -> BookingOut:
        return await self._call("book", attempts=BOOK_ATTEMPTS,
                                **_book_args(offer_id, hours, end, price_per_hour, idempotency_key))

    async def bookings(self, state: str | None = None, *, limit: int | None = None,
                       cursor: str | None = None) -> BookingPage:
        return await self._call("bookings", state=state, limit=limit, cursor=cursor)

    async def booking(self, booking_id: str) -> BookingDetail:
        return await self._call("booking", str(booking_id))

    async def cancel_booking(self, booking_id: str) -> BookingOut:
        return await self._call("cancel_booking", str(booking_id))

    async def invoices(self, *, limit: int | None = None, cursor: str | None = None) -> InvoicePage:
        return await self._call("invoices", limit=limit, cursor=cursor)

    async def invoice(self, invoice_id: str) -> InvoiceDetail:
        return await self._call("invoice", str(invoice_id))

    async def predict(self, gpu_type: str, *, region: str | None = None, provider: str | None = None,
                      pricing: str | None = None, gpu_count: float | None = None, hours: float | None = None,
                      horizon_days: int = 30) -> ForecastResponse:
        return await self._call("predict", gpu_type=gpu_type, region=region, provider=provider, pricing=pricing,
                                gpu_count=gpu_count, hours=hours, horizon_days=horizon_days)

    async def chat(self, prompt: str, constraints: ChatConstraints | dict[str, Any] | None = None) -> ChatResponse:
        return await self._call("chat", prompt=prompt, constraints=constraints)

    async def chat_stream(self, prompt: str, constraints: ChatConstraints | dict[str, Any] | None = None
                          ) -> AsyncIterator[ChatEvent]:
        request = build_request("chat_stream", prompt=prompt, constraints=constraints)
        reader = SseReader()
        try:
            async with self._http.stream(**request) as response:
                if response.status_code >= 400:
                    await response.aread()
                    decode("chat_stream", response)
                async for line in response.aiter_lines():
                    event = reader.feed(line)
                    if event is not None:
                        yield event
        except httpx.HTTPError as exc:
            raise TransportError(f"POST {self.base_url}{request['url']}: {exc}") from exc

    async def stream(self, **flt: Any) -> AsyncIterator[StreamUpdate]:
        """Live price changes matching the filter (keys of STREAM_FILTERS), with reconnects and resume
        (`gpubroker.stream.PriceStreamClient`); needs an API key or access token."""
        from gpubroker.stream import PriceStreamClient, StreamRefused

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
