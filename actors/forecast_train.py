"""Training: price history from PostgreSQL -> daily frame (Ray Data) -> model fits (Ray tasks) -> a version on disk.

`train()` is what `gpubroker forecast train` and the `ForecastTrainer` actor's schedule run. Each model
fits all series in one Ray task (`num_cpus=1`), so the models train side by side; the frame is built by a
Ray Data job that turns each offer's change points into a daily as-of series up
to the last recorded day (a map over blocks of whole offers). Without Ray (tests of the engine) the same steps run in-process.
"""
from __future__ import annotations

import asyncio
import math
import time
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np

from actors.forecast_backtest import FitSettings, SeriesData, fit_all, local_runner
from actors.forecast_models import ModelConfig, predict_windows
from cluster.settings import Settings
from domain.price_series import asof_on_axis, day_index, observed_axis

__all__ = ["train", "build_series", "ray_runner", "fit_settings"]

Progress = Callable[[str, int, int], None]


def fit_settings(settings: Settings, **overrides: Any) -> FitSettings:
    """The engine's settings for training from the service settings (tests shrink the model sizes)."""
    model = ModelConfig(nhits_steps=settings.forecast_nhits_steps)
    base = dict(horizon=30, n_windows=settings.forecast_backtest_windows, model=model,
                models=tuple(settings.forecast_models))
    base.update(overrides)
    return FitSettings(**base)


def _asof_block(block: Any, axes: dict[str, np.ndarray], end_day: int) -> Any:
    """Ray Data map_batches over a block holding whole offers: each offer's daily change points -> its
    as-of values on its provider's observed axis from its first observation on (one row per offer). The
    series all end on `end_day`: `start` is the day index of values[0] when nothing was skipped."""
    import pandas as pd

    rows = []
    for oid, g in block.groupby("offer_id", sort=False):
        days = g["day"].to_numpy(np.int64)
        axis = axes[g["source"].iloc[0]]
        values = asof_on_axis(days, g["price"].to_numpy(float), axis[np.searchsorted(axis, days.min()):])
        rows.append({"offer_id": str(oid), "start": end_day - values.size + 1, "values": values.tolist(),
                     "observations": int(len(g))})
    return pd.DataFrame(rows, columns=["offer_id", "start", "values", "observations"])


def _blocks(df: Any, n: int) -> list:
    """`df` sorted by offer, cut into n parts at offer boundaries (no offer spans two blocks)."""
    df = df.sort_values(["offer_id", "day"], kind="stable").reset_index(drop=True)
    ids = df["offer_id"].to_numpy()
    cuts = [0]
    for k in range(1, n):
        i = len(df) * k // n
        while 0 < i < len(df) and ids[i] == ids[i - 1]:
            i += 1
        cuts.append(i)
    cuts.append(len(df))
    return [df.iloc[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]


def build_series(history: list[dict[str, Any]], groups: dict[str, str], end_day: int, use_ray: bool,
                 sources: dict[str, str] | None = None, blocks: int = 4) -> tuple[dict[str, SeriesData], int]:
    """Daily series of every offer with history, each ending on `end_day`, and the number of days left
    out as unwatched. Each source (provider, `sources`: offer id -> provider) has its own axis
    (`domain.price_series.observed_axis` over the days it recorded anything), so a stretch nobody watched
    is not filled with an invented flat price. A Ray Data map over blocks of whole offers when Ray is up
    (one task per block; a groupby shuffle costs ~200 tasks here), else pandas."""
    import pandas as pd

    if not history:
        return {}, 0
    sources = sources or {}
    df = pd.DataFrame(history)
    df = df.assign(day=[day_index(d) for d in df["day"]],
                   source=[sources.get(o, "") for o in df["offer_id"]])[["offer_id", "day", "price", "source"]]
    axes = {src: observed_axis(g["day"].to_numpy(np.int64), end_day) for src, g in df.groupby("source")}
    skipped = sum(int(end_day - a[0] + 1 - a.size) for a in axes.values() if a.size)
    parts = _blocks(df, blocks)
    kwargs = {"axes": axes, "end_day": end_day}
    frame = None
    if use_ray:
        import ray

        if ray.is_initialized():
            ds = ray.data.from_pandas(parts)
            frame = ds.map_batches(_asof_block, fn_kwargs=kwargs, batch_size=None, batch_format="pandas",
                                   num_cpus=0.5).to_pandas()
    if frame is None:
        frame = pd.concat([_asof_block(p, **kwargs) for p in parts], ignore_index=True)
    series = {r.offer_id: SeriesData(group=groups.get(r.offer_id, "on_demand"), start=int(r.start),
                                     values=np.asarray(r.values, float), observations=int(r.observations))
              for r in frame.itertuples(index=False)}
    return series, skipped


def _fit_job(name: str, series: list, horizon: int, n_windows: int, cfg: ModelConfig) -> np.ndarray:
    return predict_windows(name, series, horizon, n_windows, cfg)


def ray_runner(progress: Progress | None = None) -> Callable:
    """A runner for `fit_all` that fits each model in its own Ray task and reports each one finished."""
    import ray

    task = ray.remote(num_cpus=1, max_retries=1)(_fit_job)

    def run(jobs: list[tuple[str, list]], horizon: int, n_windows: int, cfg: ModelConfig) -> list[np.ndarray]:
        refs = [task.remote(name, series, horizon, n_windows, cfg) for name, series in jobs]
        names = {r: name for r, (name, _) in zip(refs, jobs)}
        pending, done = list(refs), 0
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            done += 1
            if progress:
                progress(f"fitted {names[ready[0]]}", done, len(refs))
        return ray.get(refs)

    return run


def _clean(x: Any) -> Any:
    return None if isinstance(x, float) and (math.isnan(x) or math.isinf(x)) else x


async def train(settings: Settings, fs: FitSettings | None = None, *, use_ray: bool = True,
                progress: Progress | None = None) -> dict[str, Any]:
    """Train every model on the stored history and save a new version. Returns its summary."""
    from cluster.db import create_pool
    from cluster.forecast_store import save_version
    from cluster.repositories.price_history import forecast_offers, history_as_of, history_points

    fs = fs or fit_settings(settings)
    say = progress or (lambda *_: None)
    t0 = time.perf_counter()
    say("reading price history", 0, 1)
    pool = await create_pool(settings, min_size=1, max_size=2)
    try:
        as_of = await history_as_of(pool)
        offers = await forecast_offers(pool)
        history = await history_points(pool, as_of) if as_of else []
    finally:
        await pool.close()
    if as_of is None:
        raise RuntimeError("no price history in PostgreSQL yet (load the catalog first: gpubroker up / sync)")
    groups = {o["offer_id"]: o["pricing"] for o in offers}
    ray_up = False
    if use_ray:
        import ray

        ray_up = ray.is_initialized()
    say("building the daily frame", 0, 1)
    sources = {o["offer_id"]: o["provider"] for o in offers}
    series, skipped = await asyncio.to_thread(build_series, history, groups, day_index(as_of), ray_up, sources)
    t_frame = time.perf_counter()
    runner = ray_runner(progress) if ray_up else local_runner
    fits = await asyncio.to_thread(fit_all, series, day_index(as_of), fs, runner)
    t_fit = time.perf_counter()
    rows = []
    for key, fit in fits.items():
        b = fit.bands[fit.chosen]
        rows.append({"key": key, "model": fit.chosen, "last": fit.last, "points": fit.points, "flat": fit.flat,
                     "mape": _clean(fit.backtest_mape.get(fit.chosen)),
                     "baseline_mape": _clean(fit.backtest_mape.get("persistence")),
                     "coverage80": _clean(fit.coverage80), "warning": fit.warning,
                     "price": fit.forecasts[fit.chosen], **b})
    chosen: dict[str, int] = {}
    for r in rows:
        chosen[r["model"]] = chosen.get(r["model"], 0) + 1
    meta = {"trained_at": datetime.now(timezone.utc).isoformat(), "as_of": as_of.isoformat(),
            "horizon": fs.horizon, "n_windows": fs.n_windows, "models": list(fs.models), "chosen": chosen,
            "interval_method": "split-conformal on absolute relative residuals of the rolling-origin backtest, "
                               "pooled per price type, activity class and horizon day; persistence: empirical j-day changes",
            "unwatched_days_skipped": skipped,
            "seconds": {"frame": round(t_frame - t0, 2), "fit": round(t_fit - t_frame, 2)}}
    name = await asyncio.to_thread(save_version, settings.state_dir, meta, rows)
    say("saved " + name, 1, 1)
    return {"version": name, "series": len(rows), "chosen": chosen, "as_of": as_of.isoformat(),
            "unwatched_days_skipped": skipped,
            "seconds": round(time.perf_counter() - t0, 2)}
