"""The baseline: a plain uvicorn + FastAPI process serving the same /providers filter over the same data
(the same query parsing, numpy index and rendering; no Serve, no cache, no middleware).

    python -m benchmarks.search_plain --database-url postgresql://... --port 8100
"""
from __future__ import annotations

import argparse
import asyncio

import asyncpg
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from cluster.repositories.search_offers import load_all
from domain.offer_index import OfferIndex
from domain.search import QueryError, parse_query


def build(index: OfferIndex) -> FastAPI:
    app = FastAPI()

    @app.get("/providers")
    async def providers(request: Request) -> Response:
        try:
            q = parse_query(request.scope["query_string"])
            result = index.query(q, q.sort, (q.page - 1) * q.page_size, q.page_size)
        except QueryError as exc:
            return JSONResponse({"error": {"details": exc.details}}, status_code=422)
        return Response(index.page_json(result), media_type="application/json")

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "offers": index.n}

    return app


async def _load(dsn: str) -> OfferIndex:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        return OfferIndex(await load_all(pool))
    finally:
        await pool.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    index = asyncio.run(_load(args.database_url))
    uvicorn.run(build(index), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
