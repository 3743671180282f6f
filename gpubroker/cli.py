"""`gpubroker search` and `gpubroker watch`: the marketplace from a terminal or a script, through the SDK.

    gpubroker search --gpu H100 --max-price 2.5 --region eu --pricing spot --sort price --limit 20
    gpubroker search --gpu A100 --json | jq '.items[0]'
    gpubroker watch --gpu H100 --max-price 2          # live price changes until Ctrl-C

A table in a terminal; tab-separated lines (header first) when piped; `--json` / `--csv` for programs.
The API is GPUBROKER_API (default http://127.0.0.1:8000); the stream GPUBROKER_WS with the credential
GPUBROKER_API_KEY (an API key or an access token).
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from typing import Any

from domain.geo import place_filter
from domain.search import ITEM_FIELDS
from gpubroker.client import AsyncClient, Client
from gpubroker.errors import ApiError, GpuBrokerError, TransportError

SORTS = {"price": "price_asc", "price-desc": "price_desc", "price-per-gpu": "price_per_gpu_asc",
         "updated": "updated_desc"}
COLUMNS = (("provider", "provider"), ("name", "name"), ("gpu_type", "GPU"), ("gpu_count", "GPUs"),
           ("price_per_hour", "$/h"), ("price_per_gpu_hour", "$/GPU-h"), ("pricing", "pricing"),
           ("region", "region"), ("availability", "avail"))


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    flt: dict[str, Any] = {}
    if args.gpu:
        flt["gpu_type"] = args.gpu
    if args.max_price is not None:
        flt["max_price"] = args.max_price
    if args.pricing:
        flt["pricing"] = args.pricing
    if args.provider:
        flt["provider"] = args.provider
    for place in args.region or []:
        key, value = place_filter(place)
        flt.setdefault(key, []).append(value)
    return flt


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(getattr(value, "value", value))


def _print_table(items: list[dict[str, Any]], total: int) -> None:
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(caption=f"{len(items)} of {total} offers")
        for _, title in COLUMNS:
            table.add_column(title, justify="right" if title.startswith(("$", "GPUs")) else "left")
        for item in items:
            table.add_row(*(_cell(item[k]) for k, _ in COLUMNS))
        Console().print(table)
        return
    print("\t".join(title for _, title in COLUMNS))
    for item in items:
        print("\t".join(_cell(item[k]) for k, _ in COLUMNS))


def cmd_search(args: argparse.Namespace) -> int:
    with Client(args.api) as client:
        page = client.search(sort=SORTS[args.sort], limit=args.limit, **_filters(args))
    items = [item.model_dump(mode="json") for item in page.items]
    if args.json:
        print(json.dumps({"total": page.total, "items": items, "next_cursor": page.next_cursor}, indent=2))
    elif args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(ITEM_FIELDS)
        for item in items:
            writer.writerow([";".join(item[k]) if k == "tags" else _cell(item[k]) for k in ITEM_FIELDS])
    else:
        _print_table(items, page.total)
    return 0


async def _watch(args: argparse.Namespace) -> int:
    flt = _filters(args)
    seen = 0
    async with AsyncClient(args.api, api_key=args.api_key, ws_url=args.ws) as client:
        async for u in client.stream(**flt):
            old = "new" if u.old_price is None else f"{u.old_price:g}"
            line = (f"{u.ts:%H:%M:%S} {u.provider} {u.gpu_type} {u.region} {u.pricing.value} "
                    f"{old} -> {u.new_price:g} {u.availability.value}")
            print(json.dumps(u.model_dump(mode="json")) if args.json else line, flush=True)
            seen += 1
            if args.count and seen >= args.count:
                return 0
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_watch(args))
    except KeyboardInterrupt:
        return 0


def _run(func):
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except ApiError as exc:
            print(f"gpubroker: {exc.message} ({exc.code}, trace {exc.trace_id})", file=sys.stderr)
            for d in exc.details or []:
                if isinstance(d, dict) and "field" in d:
                    print(f"  {d['field']}: {d.get('message')}", file=sys.stderr)
            return 1
        except TransportError as exc:
            print(f"gpubroker: cannot reach the API: {exc}", file=sys.stderr)
            return 2
        except GpuBrokerError as exc:
            print(f"gpubroker: {exc}", file=sys.stderr)
            return 2
    return run


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpu", action="append", metavar="NAME",
                   help="GPU model or alias (H100 means every H100 variant); repeat for several")
    p.add_argument("--max-price", type=float, metavar="USD", help="highest price of the whole instance per hour")
    p.add_argument("--region", action="append", metavar="PLACE",
                   help="a continent (eu, na, as, ...), a country code (de, us, ...) or a provider region; repeatable")
    p.add_argument("--pricing", action="append", choices=("on_demand", "spot", "interruptible"),
                   help="pricing model; repeat for several")
    p.add_argument("--provider", action="append", metavar="ID", help="provider id (gcp, aws, runpod, ...); repeatable")
    p.add_argument("--api", default=None, metavar="URL", help="API base URL (default: $GPUBROKER_API or "
                   "http://127.0.0.1:8000)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `search` and `watch` to the `gpubroker` command."""
    p = sub.add_parser("search", help="search GPU offers (table; --json or --csv for programs)",
                       description="Search GPU offers. A table in a terminal, tab-separated lines when piped.")
    _common(p)
    p.add_argument("--sort", choices=tuple(SORTS), default="price", help="order: %(choices)s (default: price)")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N offers, 1-100 (default: 20)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the page as JSON {total, items, next_cursor}")
    fmt.add_argument("--csv", action="store_true", help="print CSV with the export's columns")
    p.set_defaults(func=_run(cmd_search))

    p = sub.add_parser("watch", help="print live price changes until interrupted",
                       description="Print live price changes from the stream until Ctrl-C.")
    _common(p)
    p.add_argument("--api-key", default=None, metavar="KEY",
                   help="API key or access token (default: $GPUBROKER_API_KEY)")
    p.add_argument("--ws", default=None, metavar="URL", help="stream URL (default: $GPUBROKER_WS or "
                   "ws://127.0.0.1:8765)")
    p.add_argument("--count", type=int, default=0, metavar="N", help="stop after N changes (default: never)")
    p.add_argument("--json", action="store_true", help="one JSON object per change")
    p.set_defaults(func=_run(cmd_watch))
