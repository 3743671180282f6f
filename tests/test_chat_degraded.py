"""A chat never fails because the LLM is slow or down: past the deadline, with the engine stopped or
unreachable, or with no engine at all, the answer is the extractor's and the templates', marked degraded,
with the same recommendations. The chat service runs in-process here over a real search index, with the
real engines; and the prompt never reaches the logs."""
from __future__ import annotations

import logging
import socket

import pytest

from cluster.runtime import Runtime
from deployments.chat_service import ChatService, prompt_fingerprint
from deployments.llm_engines import LocalEngine, OpenAIEngine
from deployments.search_service import SearchService
from domain.chat import ChatRequest
from tests.chat_fixtures import ingest_real, sql_cheapest
from tests.search_fixtures import wait_for

# Words the extractor cannot place, so the LLM is asked to fill the missing fields.
PROMPT = "an L4 on gcp in europe-west4 for my protein folding pipeline"


@pytest.fixture(scope="module")
async def search(settings, pg, redis_client, nats_client):
    await ingest_real(settings, pg, redis_client, nats_client)
    runtime = await Runtime(settings).start()
    service = await SearchService(settings, runtime).start()

    async def has_gcp():
        return service.loaded and "gcp" in service.index.cats["provider"].names
    await wait_for(has_gcp, timeout=30)
    yield service
    await service.close()
    await runtime.close()


@pytest.fixture(scope="module")
async def local_engine(settings):
    engine = await LocalEngine(settings).start()
    yield engine
    await engine.close()


def _service(settings, search, engine, **overrides) -> ChatService:
    return ChatService(settings.with_overrides(**overrides), search.search, search.detail, None, engine, ["gcp"])


async def _expected(pg):
    return await sql_cheapest(pg, gpu_types=["L4"], providers=["gcp"], regions=["europe-west4"], min_count=1)


async def test_constrained_json_keeps_to_the_schema(local_engine):
    from deployments.chat_service import _fill_schema

    schema = _fill_schema(["gpu_count", "pricing", "duration_hours"])
    data = await local_engine.complete_json(
        [{"role": "user", "content": "two GPUs, spot, for ten hours"}], schema, 48)
    assert set(data) <= {"gpu_count", "pricing", "duration_hours"}
    assert data.get("pricing") in (None, "on_demand", "spot")
    assert isinstance(data.get("gpu_count", 0), int)


async def test_past_the_deadline_the_answer_is_degraded_and_still_right(settings, search, local_engine, pg):
    svc = _service(settings, search, local_engine, chat_deadline_s=0.001, chat_extract_deadline_s=0.001)
    resp = await svc.answer(ChatRequest(prompt=PROMPT))
    assert resp.degraded is True and resp.degraded_reason == "llm_deadline"
    assert [r.offer_id for r in resp.recommendations] == [i for i, _ in await _expected(pg)]
    assert resp.summary.startswith("Best match: 1 x L4 from gcp in europe-west4")
    # the abandoned generation stopped and released the model: the engine answers the next call
    assert isinstance(await local_engine.complete_json([{"role": "user", "content": "an L4"}],
                                                       {"type": "object", "properties": {}}, 8), dict)


async def test_a_stopped_engine_gives_a_degraded_answer(settings, search, pg):
    engine = await LocalEngine(settings).start()
    await engine.close()
    resp = await _service(settings, search, engine).answer(ChatRequest(prompt=PROMPT))
    assert resp.degraded is True and resp.degraded_reason == "llm_error"
    assert [r.offer_id for r in resp.recommendations] == [i for i, _ in await _expected(pg)]


async def test_an_unreachable_openai_server_gives_a_degraded_answer(settings, search, pg):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    engine = OpenAIEngine(settings.with_overrides(chat_openai_url=f"http://127.0.0.1:{port}/v1"))
    try:
        resp = await _service(settings, search, engine).answer(ChatRequest(prompt=PROMPT))
    finally:
        await engine.close()
    assert resp.engine == "openai" and resp.degraded_reason == "llm_error"
    assert [r.offer_id for r in resp.recommendations] == [i for i, _ in await _expected(pg)]


async def test_without_an_engine_the_stream_still_has_result_tokens_done(settings, search):
    svc = ChatService(settings, search.search, search.detail, None, None, ["gcp"], engine_error="llm_unavailable")
    events = [e async for e in svc.events(ChatRequest(prompt=PROMPT, stream=True))]
    kinds = [k for k, _ in events]
    assert kinds[0] == "result" and kinds[-1] == "done" and set(kinds[1:-1]) == {"token"}
    assert events[0][1]["engine"] == "none" and events[-1][1]["degraded_reason"] == "llm_unavailable"


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_the_prompt_is_never_logged_only_its_length_and_hash(settings, search):
    secret = "an L4 on gcp for the Zorblax-7731 project of jane.doe@example.com"
    root = logging.getLogger("gpubroker")
    handler, level = _Records(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        await ChatService(settings, search.search, search.detail, None, None, ["gcp"]).answer(ChatRequest(prompt=secret))
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in handler.records)
    assert "Zorblax" not in logged and "jane.doe" not in logged
    answered = [r for r in handler.records if r.getMessage() == "chat answered"]
    assert answered and answered[0].prompt_sha256 == prompt_fingerprint(secret)["prompt_sha256"]
    assert answered[0].prompt_chars == len(secret)
