"""PostgreSQL, Redis and NATS instances of our own, on free ports, that a fault test may stop and start.

The machine's shared services are never touched: PostgreSQL is a fresh cluster (initdb + pg_ctl, in a
temporary directory, run as the `postgres` user when we are root), Redis and nats-server are child
processes. Each keeps its data across a restart like a production deployment would (PostgreSQL's data
directory, Redis's append-only file, JetStream's store directory), so a restart is an outage, not a wipe.
Used by tests/test_faults.py and benchmarks/faults.py.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from cluster.ports import free_port

_PG_BIN = next((d for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)




def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _wait_port(port: int, up: bool, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while _port_open(port) != up:
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port} did not go {'up' if up else 'down'} in {timeout:.0f} s")
        time.sleep(0.05)


class IsolatedServices:
    """`start()`, then `stop(name)` / `restart(name)` for name in postgres, redis, nats; `close()` at the end."""

    NAMES = ("postgres", "redis", "nats")

    def __init__(self, root: Path | None = None):
        self.root = Path(root or tempfile.mkdtemp(prefix="gpb-faults-"))
        self.ports = {n: free_port() for n in self.NAMES}
        self.procs: dict[str, subprocess.Popen] = {}
        self._as_postgres = os.geteuid() == 0  # initdb and postgres refuse to run as root

    # --- addresses ------------------------------------------------------------------------------------
    def urls(self, database: str = "gpubroker_faults") -> dict[str, str]:
        return {"database_url": f"postgresql://postgres@127.0.0.1:{self.ports['postgres']}/{database}",
                "redis_url": f"redis://127.0.0.1:{self.ports['redis']}/1",
                "nats_url": f"nats://127.0.0.1:{self.ports['nats']}"}

    # --- PostgreSQL -----------------------------------------------------------------------------------
    def _pg(self, *args: str) -> None:
        if _PG_BIN is None:
            raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
        cmd = [str(_PG_BIN / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def _pg_init(self) -> None:
        data = self.root / "pg"
        data.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            for p in (self.root, data):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self._pg("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def _pg_start(self) -> None:
        opts = (f"-p {self.ports['postgres']} -c listen_addresses=127.0.0.1 -k {self.root / 'pg'} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._pg("pg_ctl", "-D", str(self.root / "pg"), "-l", str(self.root / "pg" / "log"), "-o", opts, "-w",
                 "start")

    # --- Redis and NATS -------------------------------------------------------------------------------
    def _spawn(self, name: str) -> None:
        port = str(self.ports[name])
        if name == "redis":
            (self.root / "redis").mkdir(exist_ok=True)
            cmd = [shutil.which("redis-server") or "redis-server", "--port", port, "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.root / "redis")]
        else:
            cmd = [shutil.which("nats-server") or "/usr/sbin/nats-server", "-a", "127.0.0.1", "-p", port, "-js",
                   "-sd", str(self.root / "nats")]
        self.procs[name] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # --- lifecycle ------------------------------------------------------------------------------------
    def start(self, name: str | None = None) -> "IsolatedServices":
        for n in ([name] if name else self.NAMES):
            if n == "postgres":
                if not (self.root / "pg" / "PG_VERSION").exists():
                    self._pg_init()
                self._pg_start()
            else:
                self._spawn(n)
            _wait_port(self.ports[n], up=True)
        return self

    def stop(self, name: str) -> None:
        if name == "postgres":
            self._pg("pg_ctl", "-D", str(self.root / "pg"), "-m", "fast", "-w", "stop")
        else:
            proc = self.procs.pop(name)
            proc.terminate()
            proc.wait(timeout=30)
        _wait_port(self.ports[name], up=False)

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        if _port_open(self.ports["postgres"]):
            try:
                self.stop("postgres")
            except Exception:
                pass
        shutil.rmtree(self.root, ignore_errors=True)
