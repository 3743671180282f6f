"""Trained forecast models on disk: one directory per version under <state_dir>/forecast/versions/.

A version holds `meta.json` (trained_at, as_of, horizon, models, backtest summary, per-series choice and
scores) and `series.npz` (per series: the chosen model's forecast from `as_of` with its 80/95 % bands).
The replicas serve these numbers, so a model reloaded in another process answers exactly as trained.
`LATEST` names the current version and is replaced atomically; older versions beyond `keep` are removed.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ModelVersion", "save_version", "load_latest", "latest_name", "store_root"]

ARRAYS = ("price", "lo80", "hi80", "lo95", "hi95")


def store_root(state_dir: Path) -> Path:
    return Path(state_dir) / "forecast"


@dataclass
class ModelVersion:
    name: str
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]    # ARRAYS -> (n_series, horizon)
    index: dict[str, int]            # series key (offer id) -> row

    @property
    def trained_at(self) -> datetime:
        return datetime.fromisoformat(self.meta["trained_at"])

    def series(self, key: str) -> dict[str, Any] | None:
        """Forecast and scores of one series, or None when this version does not hold it."""
        row = self.index.get(key)
        if row is None:
            return None
        out = dict(self.meta["series"][row])
        out.update({a: self.arrays[a][row] for a in ARRAYS})
        return out


def save_version(state_dir: Path, meta: dict[str, Any], rows: list[dict[str, Any]], keep: int = 5) -> str:
    """Write a new version (rows: per series 'key', scores, and the ARRAYS) and make it the latest."""
    root = store_root(state_dir) / "versions"
    root.mkdir(parents=True, exist_ok=True)
    name = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    tmp = root / f".{name}.tmp"
    tmp.mkdir()
    arrays = {a: np.stack([np.asarray(r[a], float) for r in rows]) if rows else np.zeros((0, 0)) for a in ARRAYS}
    np.savez(tmp / "series.npz", **arrays)
    body = dict(meta, version=name, series=[{k: v for k, v in r.items() if k not in ARRAYS} for r in rows])
    (tmp / "meta.json").write_text(json.dumps(body, default=str, allow_nan=False))
    tmp.rename(root / name)
    latest = store_root(state_dir) / "LATEST"
    t = latest.with_suffix(".tmp")
    t.write_text(name)
    os.replace(t, latest)
    for old in sorted(p for p in root.iterdir() if not p.name.startswith("."))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return name


def latest_name(state_dir: Path) -> str | None:
    p = store_root(state_dir) / "LATEST"
    try:
        return p.read_text().strip() or None
    except FileNotFoundError:
        return None


def load_latest(state_dir: Path) -> ModelVersion | None:
    """The current version, or None before any training."""
    name = latest_name(state_dir)
    if name is None:
        return None
    d = store_root(state_dir) / "versions" / name
    meta = json.loads((d / "meta.json").read_text())
    with np.load(d / "series.npz") as z:
        arrays = {a: z[a] for a in ARRAYS}
    index = {s["key"]: i for i, s in enumerate(meta["series"])}
    return ModelVersion(name, meta, arrays, index)
