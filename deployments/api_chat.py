"""POST /ai/chat (FR-AI-1): recommendations from real offers, with the Chat deployment behind a handle.

With `stream: true` the answer is Server-Sent Events: `result` (everything but the summary), `token`
events (the summary, piece by piece), then `done` ({summary, engine, degraded, degraded_reason}); an
`error` event carries the error format if the search fails midway.
"""
from __future__ import annotations

import json
from typing import Any, AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from cluster.logs import trace_id_var
from domain.chat import ChatRequest, ChatResponse
from gateway.http.edge import ApiError, error_body

router = APIRouter(tags=["ai"])
# One Server-Sent Event, as SSE-aware clients parse the stream; `data` is the event's JSON.
_SSE_EVENT = {"type": "object", "required": ["event", "data"],
              "properties": {"event": {"type": "string", "enum": ["result", "token", "done", "error"]},
                             "data": {"type": "string", "description": "JSON: the answer without its summary "
                                      "(result), {text} (token), {summary, engine, degraded, degraded_reason} "
                                      "(done), the error format (error)"}}}
_SSE_EXAMPLE = ('event: result\ndata: {"constraints":{...},"recommendations":[...],"engine":"local",...}\n\n'
                'event: token\ndata: {"text":"Best match:"}\n\n'
                'event: done\ndata: {"summary":"Best match: ...","engine":"local","degraded":false,'
                '"degraded_reason":null}\n\n')


def _handle(request: Request) -> Any:
    handle = request.app.state.handles.get("chat")
    if handle is None:
        raise ApiError(503, "dependency_unavailable", "the chat service is not deployed")
    return handle


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@router.post("/ai/chat", summary="Ask for GPU recommendations in plain words", response_model=ChatResponse,
             responses={200: {"description": "JSON, or Server-Sent Events with stream=true",
                              "content": {"text/event-stream": {"schema": _SSE_EVENT, "example": _SSE_EXAMPLE}}},
                        422: {"description": "empty or too long prompt, invalid constraints"},
                        503: {"description": "the offer search or the chat service is unavailable"}})
async def chat(body: ChatRequest, request: Request):
    handle = _handle(request)
    payload = body.model_dump(mode="json", exclude_unset=True)  # keeps which constraints were given
    if not body.stream:
        answer = await handle.chat.remote(payload)
        if "error" in answer:
            e = answer["error"]
            raise ApiError(answer["status"], e["code"], e["message"])
        return JSONResponse(answer)
    trace_id = trace_id_var.get()

    async def events() -> AsyncIterator[bytes]:
        token = trace_id_var.set(trace_id)
        try:
            async for ev in handle.options(stream=True).stream.remote(payload):
                if ev["event"] == "error":
                    e = ev["data"]["error"]
                    yield _sse("error", error_body(ev["data"]["status"], e["message"], e["code"]))
                    return
                yield _sse(ev["event"], ev["data"])
        except Exception as exc:  # the deployment died mid-stream: say so in the stream
            yield _sse("error", error_body(503, f"chat service failed: {type(exc).__name__}", "dependency_unavailable"))
        finally:
            trace_id_var.reset(token)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
