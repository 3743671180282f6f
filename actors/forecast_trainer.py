"""`ForecastTrainer`: the Ray actor that trains forecasts on a schedule (idle between runs, `num_cpus=0`).

It trains at once when no model version exists (a fresh `gpubroker up`), then every
`forecast_train_interval_s`. Model fits run as Ray tasks (actors/forecast_train.py); replicas load the new
version on their next refresh. A failed run (no history yet, PostgreSQL down) is retried after a minute.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from cluster.ray_env import actor_runtime_env
from cluster.settings import Settings

TRAINER_NAME = "forecast-trainer"


class ForecastTrainer:
    def __init__(self, settings: Settings):
        from cluster.logs import configure_logging

        configure_logging(settings.log_level)
        self.settings = settings
        self.last: dict[str, Any] | None = None
        self.error: str | None = None
        self.running = False
        self._lock = asyncio.Lock()
        self._loop: asyncio.Task | None = None

    async def start(self) -> bool:
        """Start the schedule (idempotent)."""
        if self._loop is None or self._loop.done():
            self._loop = asyncio.get_running_loop().create_task(self._schedule())
        return True

    async def _schedule(self) -> None:
        from cluster.forecast_store import load_latest

        version = await asyncio.to_thread(load_latest, self.settings.state_dir)
        age = time.time() - version.trained_at.timestamp() if version else None
        delay = 0.0 if age is None else max(0.0, self.settings.forecast_train_interval_s - age)
        while True:
            await asyncio.sleep(delay)
            result = await self.train_now()
            delay = self.settings.forecast_train_interval_s if result.get("version") else 60.0

    async def train_now(self) -> dict[str, Any]:
        """Train once now (waits for a run in progress first). Returns the new version's summary or the error."""
        from actors.forecast_train import train

        async with self._lock:
            self.running = True
            try:
                self.last = await train(self.settings)
                self.error = None
                return self.last
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                return {"error": self.error}
            finally:
                self.running = False

    async def status(self) -> dict[str, Any]:
        return {"running": self.running, "last": self.last, "error": self.error}


def start_trainer(settings: Settings, detached: bool = True):
    """The trainer actor (created once; `get_if_exists`), with its schedule started."""
    import ray

    opts: dict[str, Any] = dict(name=TRAINER_NAME, num_cpus=0, get_if_exists=True, max_concurrency=4,
                                runtime_env=actor_runtime_env(settings))
    if detached:
        opts["lifetime"] = "detached"
    handle = ray.remote(ForecastTrainer).options(**opts).remote(settings)
    ray.get(handle.start.remote())
    return handle
