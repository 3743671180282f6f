"""GPU Broker from Python: `Client` / `AsyncClient` (the SDK) and the errors they raise.

The public surface is `__all__`; a test guards it.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from gpubroker.client import AsyncClient, ChatEvent, Client, StreamUpdate
from gpubroker.errors import (ApiError, BadRequest, Conflict, Forbidden, GpuBrokerError, NotFound, RateLimited,
                              TransportError, Unauthorized, Unavailable)

try:
    __version__ = version("gpubroker")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"

__all__ = ["ApiError", "AsyncClient", "BadRequest", "ChatEvent", "Client", "Conflict", "Forbidden", "GpuBrokerError",
           "NotFound", "RateLimited", "StreamUpdate", "TransportError", "Unauthorized", "Unavailable", "__version__"]
