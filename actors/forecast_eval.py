"""`gpubroker forecast eval`: a rolling-origin evaluation of every model on a price-history CSV.

The CSV (gzip or not) has at least `date, provider, instance, gpu, region, price_type, price`; one series
per (provider, instance, region, price_type), observations at any dates (daily, weekly snapshots, change
points: each is made a daily as-of series). At each of N monthly cutoffs the engine (`fit_all`) sees only
the days before the cutoff, chooses per series, and forecasts `horizon` days, scored against the actual
prices of those days. Series without a price on the day before a cutoff or through the whole test window
are left out at that cutoff.
"""
from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from actors.forecast_backtest import FitSettings, SeriesData, fit_all, local_runner
from domain.forecast_rules import monthly_cutoffs, scores
from domain.price_series import asof_daily, day_index, from_day_index

__all__ = ["REQUIRED_COLUMNS", "load_history_csv", "evaluate", "format_table", "HistoryError"]

REQUIRED_COLUMNS = ("date", "provider", "instance", "gpu", "region", "price_type", "price")
METRICS = ("mape", "smape", "coverage80", "coverage95", "width80")


class HistoryError(ValueError):
    """The history file cannot be evaluated (missing, unreadable, lacking a column); the message says which."""


def load_history_csv(path: str | Path) -> tuple[dict[str, SeriesData], int, int]:
    """Series by key 'provider|instance|region|price_type', and the first and last day index of the file."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise HistoryError(f"no such file: {p}")
    with open(p, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(p, "rt") if gz else open(p, "rt")) as fh:
            df = pd.read_csv(fh)
    except Exception as exc:  # a parser error names the line
        raise HistoryError(f"cannot read {p} as CSV: {exc}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise HistoryError(f"{p}: missing column(s) {', '.join(missing)}; need {', '.join(REQUIRED_COLUMNS)}")
    df = df.assign(price=pd.to_numeric(df["price"], errors="coerce"),
                   day=(pd.to_datetime(df["date"], errors="coerce") - pd.Timestamp("1970-01-01")).dt.days)
    df = df[(df["price"] > 0) & df["day"].notna()]
    if df.empty:
        raise HistoryError(f"{p}: no rows with a date and a positive price")
    df = df.assign(day=df["day"].astype(int), price_type=df["price_type"].astype(str).str.strip().str.lower())
    first, last = int(df["day"].min()), int(df["day"].max())
    out: dict[str, SeriesData] = {}
    for key, g in df.groupby(["provider", "instance", "region", "price_type"], sort=True):
        days, prices = g["day"].to_numpy(), g["price"].to_numpy(float)
        start, end = int(days.min()), int(days.max())
        out["|".join(map(str, key))] = SeriesData(group=str(key[3]), start=start,
                                                  values=asof_daily(days, prices, start, end),
                                                  observations=int(len(g)))
    return out, first, last


def _summary(acc: dict[str, dict[str, list]], models: tuple[str, ...]) -> dict[str, Any]:
    def figures(name: str) -> dict[str, float | None]:
        parts = acc.get(name)
        if not parts or not parts["a"]:
            return {m: None for m in METRICS}
        cat = {k: np.concatenate(v) for k, v in parts.items()}
        s = scores(cat["a"], cat["p"], cat["lo80"], cat["hi80"], cat["lo95"], cat["hi95"])
        return {m: (None if math.isnan(s[m]) else round(s[m], 4 if m.startswith("coverage") else 3)) for m in METRICS}

    chosen, pers = figures("chosen"), figures("persistence")
    ratio = (None if not pers["mape"] or chosen["mape"] is None else round(chosen["mape"] / pers["mape"], 4))
    return {"models": {m: figures(m) for m in models}, "chosen": chosen, "persistence": pers, "ratio": ratio}


def evaluate(path: str | Path, horizon: int = 30, n_cutoffs: int = 6, fs: FitSettings | None = None,
             runner=local_runner, progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """The evaluation report (the JSON shape of `gpubroker forecast eval --json`)."""
    series, first, last = load_history_csv(path)
    fs = fs or FitSettings(horizon=horizon)
    if fs.horizon != horizon:
        fs = FitSettings(**{**fs.__dict__, "horizon": horizon})
    min_train = fs.n_windows * horizon + 8
    cutoffs = monthly_cutoffs(first, last, horizon, n_cutoffs, min_train)
    acc: dict[str, dict[str, dict[str, list]]] = {}
    evaluated: set[str] = set()
    for ci, cut in enumerate(cutoffs):
        live = {k: s for k, s in series.items()
                if s.start <= cut - 1 and s.start + s.values.size - 1 >= cut + horizon - 1
                and not np.isnan(s.values[cut - 1 - s.start])}
        stage = (lambda name, ci=ci: progress(ci, len(cutoffs), name)) if progress else None
        fits = fit_all(live, cut - 1, fs, runner=runner, progress=stage)
        for key, fit in fits.items():
            s = live[key]
            actual = s.values[cut - s.start: cut - s.start + horizon]
            evaluated.add(key)
            for name in list(fs.models) + ["chosen"]:
                model = fit.chosen if name == "chosen" else name
                p, b = fit.forecasts.get(model), fit.bands.get(model)
                if p is None:
                    continue
                for group in (s.group, "__all__"):
                    d = acc.setdefault(group, {}).setdefault(name, {k: [] for k in ("a", "p", "lo80", "hi80", "lo95", "hi95")})
                    d["a"].append(actual)
                    d["p"].append(p)
                    for band in ("lo80", "hi80", "lo95", "hi95"):
                        d[band].append(b[band])
    if progress:
        progress(len(cutoffs), len(cutoffs), "done")
    groups = sorted(g for g in acc if g != "__all__")
    return {"horizon": horizon, "cutoffs": [from_day_index(c).isoformat() for c in cutoffs], "series": len(evaluated),
            "by_price_type": {g: _summary(acc[g], fs.models) for g in groups},
            "overall": _summary(acc.get("__all__", {}), fs.models)}


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v * 100:.1f}%" if pct else f"{v:.2f}"


def format_table(report: dict[str, Any]) -> str:
    """The report as a text table: one block per price type and overall, one row per model."""
    lines = [f"horizon {report['horizon']} days, {report['series']} series, cutoffs {', '.join(report['cutoffs'])}"]
    blocks = [*report["by_price_type"].items(), ("overall", report["overall"])]
    for name, block in blocks:
        lines.append("")
        lines.append(f"{name:<16}{'MAPE %':>8}{'sMAPE %':>9}{'cov80':>8}{'cov95':>8}{'width80 %':>11}")
        rows = [*block["models"].items(), ("chosen", block["chosen"])]
        for model, s in rows:
            lines.append(f"  {model:<14}{_fmt(s['mape']):>8}{_fmt(s['smape']):>9}{_fmt(s['coverage80'], True):>8}"
                         f"{_fmt(s['coverage95'], True):>8}{_fmt(s['width80']):>11}")
        ratio = block["ratio"]
        lines.append(f"  chosen / persistence MAPE: {'-' if ratio is None else f'{ratio:.3f}'}")
    return "\n".join(lines)


def report_json(report: dict[str, Any]) -> str:
    """One line of JSON (NaN never appears: missing figures are null)."""
    return json.dumps(report, separators=(",", ":"), allow_nan=False)


def cutoff_date(d: str) -> int:
    from datetime import date

    return day_index(date.fromisoformat(d))
