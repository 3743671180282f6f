"""One Prometheus scrape target per node: the sum of every process of ours on this machine.

Each replica and actor writes its metrics into the node's multiprocess directory (`PROMETHEUS_MULTIPROC_DIR`,
set by `cluster.ray_env.metrics_env` in every runtime_env). A directory is per machine, so `/metrics` on an
ingress replica adds up only the node it runs on; on a cluster, Prometheus scrapes this exporter on every
node instead and sums across them (`sum by (route) (...)` in the dashboard and alerts does exactly that).
It also forgets the live gauges of processes that ended here (a restarted actor's old pid), which only a
process on the same machine can tell.

    python -m cluster.node_metrics [--host ADDR] [--port 9108] [--dir DIR]

Defaults: `GPUBROKER_NODE_METRICS_HOST` (127.0.0.1), `GPUBROKER_NODE_METRICS_PORT` (9108), the metrics folder
under `GPUBROKER_STATE_DIR`, the same path the head gives every process (keep the state dir's absolute path
the same on every node; `cluster/deploy/node/env.sh` does).
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess, start_http_server

DEFAULT_PORT = 9108
_PID = re.compile(r"_(\d+)\.db$")


class NodeCollector:
    """MultiProcessCollector over one folder that first drops the live gauges of processes no longer running."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._inner = multiprocess.MultiProcessCollector(None, path=str(self.directory))

    def collect(self):
        self.forget_dead()
        return self._inner.collect()

    def forget_dead(self) -> list[int]:
        dead = set()
        for f in self.directory.glob("gauge_live*.db"):
            m = _PID.search(f.name)
            if m and not Path(f"/proc/{m.group(1)}").exists():
                dead.add(int(m.group(1)))
        for pid in dead:
            multiprocess.mark_process_dead(pid, str(self.directory))
        return sorted(dead)


def registry_for(directory: Path) -> CollectorRegistry:
    Path(directory).mkdir(parents=True, exist_ok=True)
    registry = CollectorRegistry()
    registry.register(NodeCollector(directory))
    return registry


def serve(host: str, port: int, directory: Path):
    """Start the exporter's HTTP server in a thread; returns (server, thread)."""
    return start_http_server(port, addr=host, registry=registry_for(directory))


def main(argv: list[str] | None = None) -> int:
    from cluster.settings import load_settings
    from cluster.ray_env import metrics_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default=os.environ.get("GPUBROKER_NODE_METRICS_HOST", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(os.environ.get("GPUBROKER_NODE_METRICS_PORT", DEFAULT_PORT)))
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args(argv)
    directory = args.dir or metrics_dir(load_settings().state_dir)
    server, _thread = serve(args.host, args.port, directory)
    print(f"node metrics: http://{args.host}:{server.server_port}/metrics from {directory}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
