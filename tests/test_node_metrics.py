"""Metrics across nodes: each node's exporter (`cluster.node_metrics`) sums the processes of its own folder,
Prometheus sums the nodes; a process whose node lacks the folder creates it, or keeps its metrics in memory,
and never fails. Real processes write real multiprocess files; the exporters are scraped over HTTP."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from cluster.ports import free_port

REPO = Path(__file__).resolve().parent.parent
WRITER = """
import sys, time
from gateway.http.metrics import HTTP_REQUESTS, HTTP_IN_FLIGHT, render
HTTP_REQUESTS.labels("GET", "/providers", "200").inc(int(sys.argv[1]))
HTTP_IN_FLIGHT.inc(int(sys.argv[1]))
sys.stdout.write(render()[0].decode())
sys.stdout.flush()
if sys.argv[2] == "stay":
    time.sleep(600)
"""


def _env(directory: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PROMETHEUS_MULTIPROC_DIR": str(directory)}


def _write(directory: Path, n: int) -> str:
    out = subprocess.run([sys.executable, "-c", WRITER, str(n), "exit"], env=_env(directory), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _values(text: str) -> dict[str, float]:
    got = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "gpubroker_http_requests_total" and s.labels.get("route") == "/providers":
                got["requests"] = s.value
            if s.name == "gpubroker_http_in_flight_requests":
                got["in_flight"] = s.value
    return got


def test_a_node_without_the_folder_creates_it(tmp_path):
    missing = tmp_path / "node-b" / "state" / "metrics"
    text = _write(missing, 3)
    assert _values(text)["requests"] == 3.0
    assert any(f.name.startswith("counter_") for f in missing.iterdir())  # written to the new folder


def test_a_folder_that_cannot_be_made_leaves_metrics_in_memory(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    text = _write(blocker / "metrics", 4)  # mkdir fails: the process still counts, in memory
    assert _values(text)["requests"] == 4.0


def test_one_scrape_target_per_node_sums_that_nodes_processes(tmp_path):
    node_a, node_b = tmp_path / "a", tmp_path / "b"
    _write(node_a, 3)
    _write(node_a, 4)
    _write(node_b, 5)
    staying = subprocess.Popen([sys.executable, "-c", WRITER, "2", "stay"], env=_env(node_a),
                               stdout=subprocess.PIPE, text=True)
    port_a, port_b = free_port(), free_port()
    exporters = [subprocess.Popen([sys.executable, "-m", "cluster.node_metrics", "--port", str(port), "--dir", str(d)],
                                  env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL)
                 for port, d in ((port_a, node_a), (port_b, node_b))]
    try:
        staying.stdout.readline()  # its metrics are written
        a, b = _scrape(port_a), _scrape(port_b)
        # counters: every process of the node, ended or not; live gauges: only the processes still running
        assert a == {"requests": 9.0, "in_flight": 2.0}, a
        assert b["requests"] == 5.0 and b.get("in_flight", 0.0) == 0.0, b
        assert a["requests"] + b["requests"] == 14.0  # what Prometheus's sum over the targets gives
        staying.kill()
        staying.wait(10)
        after = _scrape(port_a)
        assert after["requests"] == 9.0 and after.get("in_flight", 0.0) == 0.0, after
    finally:
        staying.kill()
        for p in exporters:
            p.terminate()
            p.wait(10)


def _scrape(port: int) -> dict[str, float]:
    deadline = time.monotonic() + 30
    while True:
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            return _values(r.text)
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
