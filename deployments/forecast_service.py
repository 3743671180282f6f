"""What a Forecast replica holds and how it answers: the offers and their daily history, and the latest
trained model version from disk. Answers are table look-ups (no model runs here; `/predict` never trains).

Before any version exists, and for offers a version does not hold (new offers, too little history), the
answer is persistence (today's price) with empirical intervals: the conformal quantiles of the j-day price
changes of every series of the same pricing and volatility class. When an offer's price moved after the
model was trained, the trained path is rescaled to the new level (a level shift the model has not seen).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np

from cluster.forecast_store import ModelVersion, latest_name, load_latest
from cluster.settings import Settings
from domain.forecast import (Alternative, BacktestScore, ForecastError, ForecastPoint, ForecastRequest,
                             ForecastResponse, MAX_HORIZON_DAYS, PERSISTENCE)
from domain.forecast_rules import bands, conformal_quantiles, persistence_residuals
from domain.gpus import GPUS, matching_gpus
from domain.price_series import activity_class, asof_on_axis, day_index, from_day_index, observed_axis

__all__ = ["ForecastService", "Catalog", "build_catalog"]

EMPIRICAL = "empirical: conformal quantiles of past j-day price changes of the same pricing class"


@dataclass
class Catalog:
    """Offers as parallel arrays, plus the daily history of those that have one."""
    offers: list[dict[str, Any]]
    gpu: np.ndarray
    provider: np.ndarray
    region: np.ndarray
    pricing: np.ndarray
    count: np.ndarray
    price: np.ndarray
    as_of: date | None
    history: dict[str, np.ndarray] = field(default_factory=dict)        # offer id -> daily values to as_of
    axes: dict[str, np.ndarray] = field(default_factory=dict)         # provider -> its observed days
    history_points: dict[str, int] = field(default_factory=dict)
    quantiles: dict[tuple[str, str], dict[float, np.ndarray]] = field(default_factory=dict)
    activity: dict[str, str] = field(default_factory=dict)             # offer id -> flat / low / high


def build_catalog(offers: list[dict[str, Any]], history: list[dict[str, Any]], as_of: date | None) -> Catalog:
    """Index offers and turn history change points into daily series with persistence's empirical bands."""
    cat = Catalog(offers, np.array([o["gpu_type"] for o in offers], dtype=object),
                  np.array([o["provider"] for o in offers], dtype=object),
                  np.array([str(o["region"]).lower() for o in offers], dtype=object),
                  np.array([o["pricing"] for o in offers], dtype=object),
                  np.array([float(o["gpu_count"]) for o in offers]), np.array([float(o["price"]) for o in offers]),
                  as_of)
    by_offer: dict[str, list] = {}
    for h in history:
        by_offer.setdefault(h["offer_id"], []).append((day_index(h["day"]), h["price"]))
    pricing = {o["offer_id"]: o["pricing"] for o in offers}
    pools: dict[tuple[str, str], list[np.ndarray]] = {}
    if as_of is not None and by_offer:
        provider = {o["offer_id"]: o["provider"] for o in offers}
        seen: dict[str, list[int]] = {}
        for oid, pts in by_offer.items():
            seen.setdefault(provider.get(oid, ""), []).extend(p[0] for p in pts)
        cat.axes = {src: observed_axis(np.array(d), day_index(as_of)) for src, d in seen.items()}
        for oid, pts in by_offer.items():
            days, axis = np.array([p[0] for p in pts]), cat.axes[provider.get(oid, "")]
            values = asof_on_axis(days, np.array([p[1] for p in pts]), axis[np.searchsorted(axis, days.min()):])
            cat.history[oid] = values
            cat.history_points[oid] = len(pts)
            klass = cat.activity[oid] = activity_class(values)
            if values.size > 1:
                pools.setdefault((pricing.get(oid, "on_demand"), klass), []).append(
                    persistence_residuals(values, MAX_HORIZON_DAYS, stride=7))
    cat.quantiles = {k: conformal_quantiles(np.concatenate(v)) for k, v in pools.items()}
    return cat


def _closest(word: str, names: set[str], n: int = 5) -> list[str]:
    by_lower = {x.lower(): x for x in names}
    hits = difflib.get_close_matches(word.lower(), list(by_lower), n=n, cutoff=0.3)
    return [by_lower[h] for h in hits] or sorted(names)[:n]


class ForecastService:
    """Answers ForecastRequests from the catalog and the latest model version (see the module doc)."""

    def __init__(self, settings: Settings, catalog: Catalog | None = None, version: ModelVersion | None = None):
        self.settings = settings
        self.catalog = catalog
        self.version = version

    def reload_model(self) -> bool:
        """Load the latest version from disk if it changed. True when a new one was loaded."""
        name = latest_name(self.settings.state_dir)
        if name is None or (self.version is not None and self.version.name == name):
            return False
        self.version = load_latest(self.settings.state_dir)
        return True

    # --- matching ---------------------------------------------------------------------------------------
    def _candidates(self, req: ForecastRequest) -> tuple[np.ndarray, np.ndarray]:
        cat = self.catalog
        loaded = cat is not None and bool(cat.offers)
        # a name no GPU model has is 404 whether or not the catalog has loaded: only a real question waits
        gpus = matching_gpus(req.gpu_type)
        if not gpus:
            known = set(GPUS) | (set(cat.gpu.tolist()) if loaded else set())
            raise ForecastError(404, "unknown_gpu", f"no GPU model is called {req.gpu_type!r}",
                                {"closest": _closest(req.gpu_type, known)})
        if not loaded:
            raise ForecastError(503, "dependency_unavailable", "the offer catalog is not loaded yet; retry shortly")
        mask = np.isin(cat.gpu, gpus)
        if not mask.any():
            raise ForecastError(404, "unknown_gpu", f"no offers for {req.gpu_type!r} ({', '.join(gpus)})",
                                {"closest": _closest(req.gpu_type, set(cat.gpu.tolist()))})
        for attr, column, code in (("provider", cat.provider, "unknown_provider"), ("region", cat.region, "unknown_region")):
            want = getattr(req, attr)
            if want is None:
                continue
            m = mask & (column == (want.lower() if attr == "region" else want))
            if not m.any():
                raise ForecastError(404, code, f"no {req.gpu_type} offers in {attr} {want!r}",
                                    {"closest": _closest(want, set(column[mask].tolist()))})
            mask = m
        if req.pricing is not None:
            m = mask & (cat.pricing == req.pricing)
            if not m.any():
                raise ForecastError(404, "no_matching_series", f"no {req.pricing} prices for this selection",
                                    {"available": sorted(set(cat.pricing[mask].tolist()))})
            mask = m
        idx = np.flatnonzero(mask)
        scale = np.ones(idx.size)
        if req.gpu_count is not None:
            exact = cat.count[idx] == req.gpu_count
            if exact.any():
                idx = idx[exact]
                scale = np.ones(idx.size)
            else:  # no instance of that size: price per GPU times the count
                scale = req.gpu_count / cat.count[idx]
        return idx, scale

    # --- one series --------------------------------------------------------------------------------------
    def _series(self, i: int, h: int) -> dict[str, Any]:
        """Point path, bands, model and scores of offer i for h days (unscaled, USD/h of the offer)."""
        cat, o = self.catalog, self.catalog.offers[i]
        oid, current = o["offer_id"], float(cat.price[i])
        row = self.version.series(oid) if self.version is not None else None
        if row is not None:
            shift = current / row["last"] if row["last"] else 1.0
            out = {a: np.asarray(row[a][:h]) * shift for a in ("price", "lo80", "hi80", "lo95", "hi95")}
            as_of = date.fromisoformat(self.version.meta["as_of"])
            out.update(model=row["model"], warning=row.get("warning"), as_of=as_of,
                       backtest=BacktestScore(mape=row.get("mape"), coverage80=row.get("coverage80"),
                                              baseline_mape=row.get("baseline_mape")),
                       interval=self.version.meta.get("interval_method", ""), trained_at=self.version.trained_at,
                       version=self.version.name)
            return out
        point = np.full(h, current)
        # an offer without history gets the band of its pricing's most active class (the widest: honest)
        klass = cat.activity.get(oid)
        q = (cat.quantiles.get((o["pricing"], klass)) if klass else None) \
            or next((cat.quantiles[(o["pricing"], c)] for c in ("high", "low", "flat") if (o["pricing"], c) in cat.quantiles),
                    None) or next(iter(cat.quantiles.values()), None)
        b = bands(point, q) if q is not None else {k: point.copy() for k in ("lo80", "hi80", "lo95", "hi95")}
        points = cat.history_points.get(oid, 0)
        if self.version is None:
            warning = "no trained model yet: answered by persistence (today's price) with empirical intervals"
        else:
            warning = (f"too little history ({points} recorded prices): answered by persistence with the "
                       f"empirical intervals of other {o['pricing']} series")
        if q is None:
            warning += "; no price history at all, so the interval has zero width"
        return {"price": point, **b, "model": PERSISTENCE, "warning": warning,
                "as_of": cat.as_of or datetime.now(timezone.utc).date(), "backtest": BacktestScore(),
                "interval": EMPIRICAL, "trained_at": None, "version": None}

    def _lookup(self) -> tuple[np.ndarray, np.ndarray]:
        """Per offer: its row in the model version (-1: none) and the level shift since training; and per
        row the running mean of the forecast path (mean over the first h days at [row, h - 1]). Rebuilt
        when the catalog or the version changes, so a request is a vectorized look-up."""
        key = (id(self.catalog), id(self.version))
        if getattr(self, "_lookup_key", None) != key:
            cat, v = self.catalog, self.version
            rows = np.full(len(cat.offers), -1, dtype=np.int64)
            shift = np.ones(len(cat.offers))
            means = np.zeros((0, MAX_HORIZON_DAYS))
            if v is not None:
                last = np.array([r["last"] for r in v.meta["series"]], dtype=float)
                price = v.arrays["price"]
                means = np.cumsum(price, axis=1) / np.arange(1, price.shape[1] + 1)
                for i, o in enumerate(cat.offers):
                    r = v.index.get(o["offer_id"])
                    if r is not None:
                        rows[i] = r
                        shift[i] = cat.price[i] / last[r] if last[r] else 1.0
            self._lookup_cache, self._lookup_key = (rows, shift, means), key
        return self._lookup_cache

    def _hourly(self, idx: np.ndarray, scale: np.ndarray, h: int) -> np.ndarray:
        """Mean forecast price per hour over h days of each candidate offer (persistence where no model)."""
        rows, shift, means = self._lookup()
        r = rows[idx]
        out = self.catalog.price[idx].astype(float)
        has = r >= 0
        if has.any():
            out[has] = means[r[has], h - 1] * shift[idx[has]]
        return out * scale

    # --- the answer --------------------------------------------------------------------------------------
    def forecast(self, req: ForecastRequest) -> ForecastResponse:
        """The forecast of the cheapest matching series, the workload's cost, and the other series' prices."""
        h = req.horizon_days
        idx, scale = self._candidates(req)
        hourly = self._hourly(idx, scale, h)
        best = int(np.argmin(hourly))
        i, k = int(idx[best]), float(scale[best])
        s = self._series(i, h)
        o, cat = self.catalog.offers[i], self.catalog
        hours = req.hours if req.hours is not None else 24.0 * h
        start = s["as_of"] + timedelta(days=1)
        series = [ForecastPoint(date=start + timedelta(days=d), price=round(float(s["price"][d]) * k, 6),
                                lo80=round(float(s["lo80"][d]) * k, 6), hi80=round(float(s["hi80"][d]) * k, 6),
                                lo95=round(float(s["lo95"][d]) * k, 6), hi95=round(float(s["hi95"][d]) * k, 6))
                  for d in range(h)]
        mean = float(np.mean(s["price"])) * k
        seen: dict[tuple, float] = {}
        for j in np.argsort(hourly, kind="stable"):
            if j == best:
                continue
            ii = int(idx[j])
            key = (cat.provider[ii], cat.offers[ii]["region"], cat.pricing[ii])
            seen.setdefault(key, float(hourly[j]))
        alternatives = [Alternative(provider=p, region=r, pricing=pr, hourly=round(v, 6))
                        for (p, r, pr), v in list(seen.items())[:10]]
        return ForecastResponse(
            gpu_type=o["gpu_type"], provider=o["provider"], region=o["region"], pricing=o["pricing"],
            instance=o["instance"], gpu_count=req.gpu_count or float(o["gpu_count"]), horizon_days=h, hours=hours,
            series=series, hourly=round(mean, 6), daily=round(mean * 24, 6), total_for_hours=round(mean * hours, 4),
            ci_low=round(float(np.mean(s["lo80"])) * k * hours, 4), ci_high=round(float(np.mean(s["hi80"])) * k * hours, 4),
            currency=o.get("currency") or "USD", model=s["model"], interval_method=s["interval"],
            trained_at=s["trained_at"], model_version=s["version"], as_of=s["as_of"],
            history_points=cat.history_points.get(o["offer_id"], 0), backtest=s["backtest"],
            alternatives=alternatives, warning=s["warning"])

    def history_of(self, resp: ForecastResponse, days: int = 180) -> tuple[list[date], list[float]]:
        """The daily history behind an answer (for the chart), last `days` days."""
        cat = self.catalog
        for i, o in enumerate(cat.offers):
            if o["provider"] == resp.provider and o["region"] == resp.region and o["pricing"] == resp.pricing \
                    and o["instance"] == resp.instance:
                v = cat.history.get(o["offer_id"])
                if v is None or cat.as_of is None:
                    return [], []
                v = v[-days:]
                axis = cat.axes[o["provider"]][-v.size:]
                scale = resp.gpu_count / float(o["gpu_count"]) if resp.gpu_count else 1.0
                return [from_day_index(d) for d in axis], [float(x) * scale for x in v]
        return [], []
