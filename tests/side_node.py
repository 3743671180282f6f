"""A second Ray node on this machine, joined to the test session's Ray, that a test can kill like a lost
machine: `ray start --address` with its own ports and a custom resource, in a session of its own so every
process of that node (raylet, agents, log monitor, workers) can be found and killed at once, and only those
(never `ray stop`, which would end every Ray on the machine)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cluster.ports import free_port


class SideNode:
    def __init__(self, gcs_address: str, log_path: Path, resources: dict[str, float], num_cpus: int = 1):
        self.gcs_address, self.log_path, self.resources, self.num_cpus = gcs_address, log_path, resources, num_cpus
        self.proc: subprocess.Popen | None = None
        self.node_id: str | None = None

    def start(self, timeout_s: float = 90.0) -> "SideNode":
        import ray

        ports = ["--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port"]
        cmd = [str(Path(sys.executable).with_name("ray")), "start", "--block", "--address", self.gcs_address,
               "--node-ip-address", "127.0.0.1", "--num-cpus", str(self.num_cpus),
               "--resources", json.dumps(self.resources), "--disable-usage-stats"]
        for p in ports:
            cmd += [p, str(free_port())]
        # a worker node joining a head on this machine must allow a same-machine cluster
        env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="1")
        env.pop("RAY_ADDRESS", None)
        # `ray start` hangs when its output is a pipe nobody reads: it goes to a file
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        key = next(iter(self.resources))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            alive = [n for n in ray.nodes() if n["Alive"] and key in n["Resources"]]
            if alive:
                self.node_id = alive[0]["NodeID"]
                self._wait_schedulable(deadline - time.monotonic())
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"side node did not join in {timeout_s:.0f} s: {self.log_path.read_text()[-2000:]}")

    def _wait_schedulable(self, timeout_s: float) -> None:
        """Alive in the GCS is not yet known to the scheduler: a soft node affinity placed in between goes to
        another node. A task pinned to the node (hard affinity) runs only once the scheduler sees it."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = ray.remote(num_cpus=0)(_node_of_this_process).options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(self.node_id, soft=False))
        assert ray.get(probe.remote(), timeout=max(1.0, timeout_s)) == self.node_id

    def pids(self) -> list[int]:
        """Every process of this node: `ray start` began a session, and everything it started stays in it
        (workers get a process group of their own, not a session)."""
        if self.proc is None:
            return []
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if os.getsid(int(d.name)) == self.proc.pid:
                        out.append(int(d.name))
                except (ProcessLookupError, PermissionError):
                    pass
        return out

    def kill(self) -> None:
        """SIGKILL every process of the node at once, as a lost machine would stop."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            self.proc.wait(10)
        deadline = time.monotonic() + 10
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.05)


def _node_of_this_process() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()
