"""`gpubroker forecast train|eval|plot` and the `gpubroker up` step that starts the training schedule.

Registered in deployments/cli.py (`register`; `up_step` runs after the Serve application is up).
"""
from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any, Callable

from cluster.settings import Settings


def _bar():
    from tqdm import tqdm

    bar = tqdm(total=1, unit="step", file=sys.stderr, dynamic_ncols=True)

    def update(stage: str, done: int, total: int) -> None:
        bar.total = max(total, 1)
        bar.n = done
        bar.set_description(stage[:40])
        bar.refresh()

    return bar, update


def cmd_train(settings: Settings, args) -> int:
    """Train on the stored history now (Ray tasks on the running cluster, or a local Ray)."""
    from actors.forecast_train import fit_settings, train
    from cluster.control import connect_ray

    connect_ray(settings)
    overrides: dict[str, Any] = {}
    if args.models:
        overrides["models"] = tuple(args.models.split(","))
    bar, update = _bar()
    try:
        out = asyncio.run(train(settings, fit_settings(settings, **overrides), progress=update))
    finally:
        bar.close()
    print(f"forecast model {out['version']}: {out['series']} series, chosen {out['chosen']}, "
          f"history to {out['as_of']}, {out['seconds']} s")
    return 0


def cmd_eval(settings: Settings, args) -> int:
    """Rolling-origin evaluation of every model on a history CSV; --json prints the report as the last line."""
    from actors.forecast_backtest import FitSettings
    from actors.forecast_eval import HistoryError, evaluate, format_table, report_json
    from actors.forecast_models import ModelConfig

    if not 1 <= args.horizon <= 30:
        print("gpubroker: --horizon must be within 1..30", file=sys.stderr)
        return 2
    if args.cutoffs < 1:
        print("gpubroker: --cutoffs must be at least 1", file=sys.stderr)
        return 2
    models = tuple(args.models.split(",")) if args.models else tuple(settings.forecast_models)
    fs = FitSettings(horizon=args.horizon, models=models, n_windows=settings.forecast_backtest_windows,
                     model=ModelConfig(nhits_steps=args.nhits_steps or settings.forecast_nhits_steps))
    bar, update = _bar()
    try:
        report = evaluate(args.history, args.horizon, args.cutoffs, fs,
                          progress=lambda i, n, stage: update(f"cutoff {min(i + 1, n)}/{n}: {stage}", i, n))
    except HistoryError as exc:
        print(f"gpubroker: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    print(format_table(report))
    if args.json:
        print(report_json(report))
    return 0


def cmd_plot(settings: Settings, args) -> int:
    """Chart of one series (history, forecast, bands) from the latest model, without Serve."""
    from cluster.repositories.price_history import forecast_offers, history_as_of, history_points
    from deployments.forecast_chart import render_png
    from deployments.forecast_service import ForecastService, build_catalog
    from domain.forecast import ForecastError, ForecastRequest

    async def load():
        from cluster.db import create_pool

        pool = await create_pool(settings, min_size=1, max_size=2)
        try:
            as_of = await history_as_of(pool)
            return await forecast_offers(pool), (await history_points(pool, as_of) if as_of else []), as_of
        finally:
            await pool.close()

    offers, history, as_of = asyncio.run(load())
    service = ForecastService(settings, build_catalog(offers, history, as_of))
    service.reload_model()
    try:
        resp = service.forecast(ForecastRequest(gpu_type=args.gpu, region=args.region, pricing=args.pricing,
                                                horizon_days=args.horizon))
    except ForecastError as exc:
        print(f"gpubroker: {exc.message} {exc.details or ''}", file=sys.stderr)
        return 1
    dates, values = service.history_of(resp, days=args.days)
    with open(args.out, "wb") as fh:
        fh.write(render_png(resp, dates, values))
    print(f"{args.out}: {resp.gpu_type} {resp.provider} {resp.region} {resp.pricing} ({resp.model}), "
          f"{resp.hourly:.4f} {resp.currency}/h mean over {resp.horizon_days} days")
    return 0


def register(sub) -> None:
    fc = sub.add_parser("forecast", help="price forecasts: train, evaluate, plot").add_subparsers(dest="forecast_cmd",
                                                                                                  required=True)
    p = fc.add_parser("train", help="train every model on the stored price history now (progress bar)")
    p.add_argument("--models", help="comma-separated subset of the models (default: settings.forecast_models)")
    p.set_defaults(func=cmd_train)
    p = fc.add_parser("eval", help="rolling-origin evaluation on a price-history CSV")
    p.add_argument("--history", required=True, help="CSV (gzip or not): date, provider, instance, gpu, region, price_type, price")
    p.add_argument("--horizon", type=int, default=30, help="days forecast at each cutoff (1..30)")
    p.add_argument("--cutoffs", type=int, default=6, help="monthly cutoffs over the last part of the file")
    p.add_argument("--models", help="comma-separated subset of the models")
    p.add_argument("--nhits-steps", type=int, default=None, help="NHITS training steps (default: settings)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object on the last line")
    p.set_defaults(func=cmd_eval)
    p = fc.add_parser("plot", help="chart of one series with history, forecast and bands")
    p.add_argument("--gpu", required=True, help="GPU filter as in GET /providers (H100, A100 80GB)")
    p.add_argument("--region", help="provider region")
    p.add_argument("--pricing", choices=["on_demand", "spot", "interruptible"], help="pricing of the series")
    p.add_argument("--horizon", type=int, default=30, help="days to forecast (1..30)")
    p.add_argument("--days", type=int, default=365, help="days of history shown")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.set_defaults(func=cmd_plot)


def refresh_replicas(timeout_s: float = 120.0) -> dict[str, Any]:
    """Make a Forecast replica reload its catalog and model now; returns its status. Synchronous (for
    `gpubroker up`): the app's handles route on the caller's event loop (RAY_SERVE_THROUGHPUT_OPTIMIZED
    runs the router in no separate loop) and keep long-polling Serve's controller on it, so the call runs
    on a loop of its own that lives as long as this process (a loop closed after the call made Serve log
    "LongPollClient ... has been disabled" as an ERROR on every `gpubroker up`)."""
    from ray import serve

    async def call() -> dict[str, Any]:
        handle = serve.get_deployment_handle("Forecast", app_name="gpubroker")
        await asyncio.wait_for(handle.refresh.remote(), timeout_s)
        return await handle.status.remote()

    return asyncio.run_coroutine_threadsafe(call(), _handle_loop()).result(timeout_s + 10)


_loop: asyncio.AbstractEventLoop | None = None


def _handle_loop() -> asyncio.AbstractEventLoop:
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
        threading.Thread(target=_loop.run_forever, name="serve-handles", daemon=True).start()
    return _loop


def up_step(settings: Settings, echo: Callable[[str], None]) -> None:
    """`gpubroker up`: start the training schedule (the first training runs in the background)."""
    if not settings.forecast_train_on_up:
        return
    try:
        import neuralforecast  # noqa: F401
        import statsforecast  # noqa: F401
    except ImportError:
        echo("forecast: the forecast extra is not installed; /predict answers from persistence")
        return
    from actors.forecast_trainer import start_trainer

    try:  # the catalog was loaded after the deployment started: let the replica see it now
        refresh_replicas()
    except Exception as exc:
        echo(f"forecast: replica refresh failed ({type(exc).__name__}: {exc}); it reloads within "
             f"{settings.forecast_refresh_s:g}s")
    start_trainer(settings)
    echo("forecast: training schedule started (first model trains in the background; until then /predict "
         "answers from persistence)")
