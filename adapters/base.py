"""The one small abstract class every provider adapter implements (after dstack's gpuhunt).

An adapter has a `NAME`, a live `fetch()` that calls the provider's documented public API (timeouts,
retries with exponential backoff and jitter, a circuit breaker, credentials from the secrets interface)
and a pure `parse(raw) -> ParseResult`. Raw provider JSON never leaves its module: `parse` turns it into
`domain.models.Offer`s, and every record it cannot turn into an offer becomes a `Reject` with a reason.
Each adapter also ships a bundled snapshot of a recorded response (`adapters/snapshots/`, built by
`adapters/build_snapshots.py`), in the same shape `parse` accepts, served when live data cannot be had.
Where the recording is a catalog derived from the API rather than its response (GCP, AWS, Prime
Intellect), `parse` accepts both shapes and turns the live one into the snapshot's rows or offers.

Errors (all `AdapterError`):
    CredentialsMissing  - the provider needs a secret that is not set (the snapshot is served instead)
    LiveUnsupported     - no live path in this adapter (the snapshot is the catalog; no adapter raises it now)
    CircuitOpen         - recent live calls failed; no call is made until the breaker half-opens
    FetchError          - the live call failed after its retries (HTTP status, timeout, bad body)
    ProvisionUnsupported - the adapter cannot book machines yet (only the sandbox provider can)

Provisioning (bookings): `provision(request) -> external id`, `terminate(external id)`,
`status(external id) -> "pending" | "provisioned" | "failed" | "terminated" | "unknown"`. `provision` is
idempotent by booking id (a booking resumed after a crash asks again and gets the same machine).
"""
from __future__ import annotations

import abc
import asyncio
import gzip
import json
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable

import httpx
from pydantic import ValidationError

from domain.geo import UnknownRegion, locate
from domain.gpus import GpuModel, UnknownGpu, resolve
from domain.models import Offer

SNAPSHOT_DIR = Path(__file__).resolve().parent / "snapshots"


class AdapterError(Exception):
    """Base of every adapter failure; `str()` is what provider health shows as last_error."""


class CredentialsMissing(AdapterError):
    """A secret the live API requires is not set."""


class LiveUnsupported(AdapterError):
    """The adapter has no live path; its bundled snapshot is the catalog."""


class CircuitOpen(AdapterError):
    """Too many consecutive live failures; calls are refused until the cool-down ends."""


class FetchError(AdapterError):
    """The live call failed after all retries."""


class ProvisionUnsupported(AdapterError):
    """This provider's adapter cannot provision machines (yet); bookings of its offers are refused."""


@dataclass(frozen=True)
class ProvisionRequest:
    booking_id: str
    offer_external_id: str
    end_time: Any          # datetime (UTC)
    callback_url: str      # where the provider posts its signed webhooks


class RecordError(ValueError):
    """One raw record cannot become an offer; `reason` is the counter key."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason


@dataclass(frozen=True)
class Reject:
    reason: str
    external_id: str | None
    detail: str


@dataclass
class ParseResult:
    offers: list[Offer] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    def reject_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rejects:
            out[r.reason] = out.get(r.reason, 0) + 1
        return out


class CircuitBreaker:
    """Closed -> open after `threshold` consecutive failures -> half-open after `reset_s` (one trial call)."""

    def __init__(self, threshold: int = 3, reset_s: float = 60.0):
        self.threshold, self.reset_s = threshold, reset_s
        self.failures = 0
        self.opened_at: float | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if time.monotonic() - self.opened_at >= self.reset_s else "open"

    def check(self) -> None:
        if self.state == "open":
            left = self.reset_s - (time.monotonic() - (self.opened_at or 0))
            raise CircuitOpen(f"circuit open after {self.failures} failures; next try in {left:.0f}s")

    def success(self) -> None:
        self.failures, self.opened_at = 0, None

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = time.monotonic()


@dataclass
class FetchPolicy:
    timeout_s: float = 10.0
    retries: int = 3            # attempts after the first
    backoff_s: float = 0.5      # first delay; doubles each attempt, plus up to 100 % jitter
    backoff_max_s: float = 8.0


def dec(value: Any, what: str = "price") -> Decimal:
    """A positive Decimal from a source number, else RecordError('invalid_<what>')."""
    try:
        d = Decimal(str(value).strip())
    except (InvalidOperation, TypeError):
        raise RecordError(f"invalid_{what}", f"{what} {value!r} is not a number") from None
    if not d.is_finite() or d <= 0:
        raise RecordError(f"invalid_{what}", f"{what} {value!r} is not positive")
    return d


def num(value: Any) -> float | None:
    """A float from a source cell, None when blank or unknown."""
    if value is None:
        return None
    s = str(value).strip()
    if not s or s.lower() in ("unknown", "nan", "none", "null"):
        return None
    try:
        return float(s.split()[0])
    except ValueError:
        return None


class Adapter(abc.ABC):
    """One provider. Subclasses set the class attributes and implement `records`, `to_offers`, `fetch_live`."""

    NAME: str = ""                    # provider id in the database and on NATS subjects
    DISPLAY: str = ""                 # human name
    API_ENDPOINT: str = ""            # documented public API base URL
    SNAPSHOT: str = ""                # file under adapters/snapshots/
    SNAPSHOT_DATE: str = ""           # when the bundled data was recorded
    SECRET: tuple[str, str] | None = None   # (path, key) in the secrets interface
    SECRET_REQUIRED: bool = False

    def __init__(self, settings: Any = None, secrets: Any = None, base_url: str | None = None,
                 policy: FetchPolicy | None = None, breaker: CircuitBreaker | None = None):
        self.settings = settings
        self.secrets = secrets
        self.base_url = (base_url or self.API_ENDPOINT).rstrip("/")
        self.policy = policy or FetchPolicy()
        self.breaker = breaker or CircuitBreaker()

    # ---- pure part -------------------------------------------------------------------------------
    @abc.abstractmethod
    def records(self, raw: Any) -> Iterable[dict]:
        """The raw records in a response (or snapshot), in the provider's own shape."""

    @abc.abstractmethod
    def to_offers(self, rec: dict) -> list[Offer]:
        """Offers of one raw record (on-demand, plus spot/interruptible ones); raise RecordError to reject."""

    def record_id(self, rec: dict) -> str | None:
        return str(rec.get("id")) if isinstance(rec, dict) and rec.get("id") is not None else None

    def parse(self, raw: Any) -> ParseResult:
        """Pure: raw response -> offers + rejects. One bad record never stops the others."""
        out = ParseResult()
        for rec in self.records(raw):
            try:
                out.offers.extend(self.to_offers(rec))
            except RecordError as exc:
                out.rejects.append(Reject(exc.reason, self.record_id(rec), str(exc)[:300]))
            except UnknownGpu as exc:
                out.rejects.append(Reject("unknown_gpu", self.record_id(rec), str(exc)[:300]))
            except UnknownRegion as exc:
                out.rejects.append(Reject("unknown_region", self.record_id(rec), str(exc)[:300]))
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(p) for p in err.get("loc", ())) or "record"
                out.rejects.append(Reject(f"invalid_{loc}", self.record_id(rec), err.get("msg", "")[:300]))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                out.rejects.append(Reject("malformed", self.record_id(rec), f"{type(exc).__name__}: {exc}"[:300]))
        return out

    def make_offer(self, *, external_id: str, name: str, gpu: GpuModel, gpu_count: float, price: Decimal,
                   region: str, gpu_memory_gb: float | None = None, pricing: str = "on_demand",
                   availability: str = "up", tags: list[str] | None = None, **extra: Any) -> Offer:
        country, continent = locate(region)
        return Offer(
            provider=self.NAME, external_id=external_id, name=name, gpu_type=gpu.name, gpu_vendor=gpu.vendor,
            gpu_count=gpu_count, gpu_memory_gb=gpu_memory_gb if gpu_memory_gb else gpu.memory_gb,
            form_factor=gpu.form_factor, price_per_hour=price, pricing=pricing, region=region, country=country,
            continent=continent, availability=availability, tags=sorted(set((tags or []) + [pricing])), **extra,
        )

    # ---- snapshot ----------------------------------------------------------------------------------
    def load_snapshot(self) -> Any:
        """The bundled recorded response, in the shape `parse` accepts."""
        path = SNAPSHOT_DIR / self.SNAPSHOT
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        if ".json" in path.name:
            return json.loads(data)
        import csv
        import io

        return list(csv.DictReader(io.StringIO(data.decode())))

    # ---- provisioning (bookings) -----------------------------------------------------------------------
    SUPPORTS_PROVISIONING: bool = False

    async def provision(self, request: ProvisionRequest) -> str:
        """Ask the provider for the machine; returns its id for the booking. Idempotent by booking id."""
        raise ProvisionUnsupported(f"booking through {self.DISPLAY or self.NAME} is not supported yet")

    async def terminate(self, external_id: str) -> None:
        """Release the machine (cancellation, end of booking, provisioning timeout)."""
        raise ProvisionUnsupported(f"booking through {self.DISPLAY or self.NAME} is not supported yet")

    async def status(self, external_id: str) -> str:
        """The machine's state as the provider reports it (used when a webhook may have been lost)."""
        raise ProvisionUnsupported(f"booking through {self.DISPLAY or self.NAME} is not supported yet")

    # ---- live ----------------------------------------------------------------------------------------
    def credential(self) -> str | None:
        if self.SECRET is None or self.secrets is None:
            return None
        return self.secrets.get(*self.SECRET)

    def required_secrets(self) -> list[tuple[str, str]]:
        """(path, key) of every secret the live API needs; AWS needs a key id and a secret key."""
        return [self.SECRET] if self.SECRET_REQUIRED and self.SECRET else []

    @abc.abstractmethod
    async def fetch_live(self, http: "Http") -> Any:
        """Call the documented API (all pages) and return the raw response in the shape `parse` accepts."""

    async def fetch(self) -> Any:
        """The live call behind the circuit breaker; raises an AdapterError when it cannot be had."""
        self.breaker.check()
        for path, key in self.required_secrets():
            if self.secrets is None or not self.secrets.get(path, key):
                raise CredentialsMissing(f"secret {path}#{key} is not set")
        async with httpx.AsyncClient(timeout=self.policy.timeout_s) as client:
            try:
                raw = await self.fetch_live(Http(client, self.policy))
            except LiveUnsupported:
                raise
            except AdapterError:
                self.breaker.failure()
                raise
            except Exception as exc:  # a body we cannot read is a failed call too
                self.breaker.failure()
                raise FetchError(f"{type(exc).__name__}: {exc}"[:300]) from None
        self.breaker.success()
        return raw


class Http:
    """An httpx client with the adapter's retry policy: 5xx, 429 and transport errors are retried."""

    def __init__(self, client: httpx.AsyncClient, policy: FetchPolicy):
        self.client, self.policy = client, policy

    async def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        last = ""
        for attempt in range(self.policy.retries + 1):
            if attempt:
                delay = min(self.policy.backoff_max_s, self.policy.backoff_s * 2 ** (attempt - 1))
                await asyncio.sleep(delay * (1 + random.random()))
            try:
                r = await self.client.request(method, url, **kw)
            except httpx.TimeoutException:
                last = f"timeout after {self.policy.timeout_s:g}s"
                continue
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if r.status_code == 429 or r.status_code >= 500:
                last = f"HTTP {r.status_code}"
                continue
            if r.status_code >= 400:
                raise FetchError(f"HTTP {r.status_code} from {url.split('?')[0]}")
            return r
        raise FetchError(f"{last} from {url.split('?')[0]} ({self.policy.retries + 1} attempts)")

    async def get_json(self, url: str, **kw: Any) -> Any:
        return (await self.request("GET", url, **kw)).json()

    async def post_json(self, url: str, **kw: Any) -> Any:
        return (await self.request("POST", url, **kw)).json()
