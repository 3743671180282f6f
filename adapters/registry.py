"""The provider registry: adding a module and listing its class here makes its offers appear on the
next sync (the ProviderAdapter actors and `gpubroker sync` walk this list)."""
from __future__ import annotations

from typing import Any

from adapters.aws import AwsProvider
from adapters.azure import AzureProvider
from adapters.base import Adapter
from adapters.gcp import GcpProvider
from adapters.primeintellect import PrimeIntellectProvider
from adapters.runpod import RunpodProvider
from adapters.sandbox import SandboxProvider
from adapters.shadeform import CLOUDS
from adapters.vastai import VastaiProvider

PROVIDERS: list[type[Adapter]] = [
    GcpProvider, AwsProvider, AzureProvider, RunpodProvider, VastaiProvider, *CLOUDS, PrimeIntellectProvider,
    SandboxProvider,
]
_BY_NAME = {p.NAME: p for p in PROVIDERS}
assert len(_BY_NAME) == len(PROVIDERS), "two adapters share a NAME"


def names() -> list[str]:
    return [p.NAME for p in PROVIDERS]


def adapter_class(name: str) -> type[Adapter]:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown provider {name!r}; known: {', '.join(names())}") from None


def build(name: str, settings: Any = None, secrets: Any = None, **kw: Any) -> Adapter:
    """An adapter instance; `settings.adapter_base_urls[name]` overrides its API base URL (tests, proxies)."""
    from adapters.base import FetchPolicy

    base_urls = getattr(settings, "adapter_base_urls", None) or {}
    if settings is not None and "policy" not in kw:
        kw["policy"] = FetchPolicy(timeout_s=settings.adapter_timeout_s, retries=settings.adapter_retries)
    cls = adapter_class(name)
    return cls(settings=settings, secrets=secrets, base_url=base_urls.get(name), **kw)
