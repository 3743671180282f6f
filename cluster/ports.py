"""Free TCP ports for the servers a test or benchmark starts beside the running system.

A port taken by binding port 0 comes from the kernel's ephemeral range (32768-60999 here), the same
range outgoing connections draw their local ports from: between choosing it and HAProxy binding it
minutes later, a connection to PostgreSQL or a Ray worker can hold it and HAProxy exits with "Address
already in use" (seen in CI: one collision errored 239 tests). So ports are drawn at random below the
ephemeral range and above Ray's worker ports (10002-19999), and checked on every interface.
"""
from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

_RAY_WORKER_PORTS_END = 19999
_handed_out: set[int] = set()
_lock = threading.Lock()
_random = random.SystemRandom()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port nothing listens on or connects from now, outside the ranges the kernel and Ray hand out."""
    low, high = _RAY_WORKER_PORTS_END + 1, _ephemeral_start() - 1
    with _lock:
        if high - low >= 1000:
            for _ in range(200):
                port = _random.randint(low, high)
                if port not in _handed_out and _bindable(port):
                    _handed_out.add(port)
                    return port
        with socket.socket() as s:  # an unusual port range: let the kernel choose
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        _handed_out.add(port)
        return port
