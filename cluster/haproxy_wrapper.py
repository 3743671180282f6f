#!/usr/bin/env python3
"""Serve's HAProxy, started through this wrapper: the config Serve renders, with our edge rules added.

Serve (2.60) renders its HAProxy config from a fixed template: the stats and Prometheus frontends bind
every interface (`bind *:8404`, `bind :9101`), there is no `timeout http-request` (a client sending
headers slowly holds a connection for `timeout client`, an hour), and HAProxy's own errors (a header or
query over `tune.bufsize`, 16 KB) are its HTML pages. None of that is configurable through
RAY_SERVE_HAPROXY_* variables. What Serve does support is `RAY_SERVE_HAPROXY_BINARY_PATH`: the
executable it runs as `<binary> -db -f <config> [-dR] [-sf <pids> -x <socket>]`, at start and at each
reload. `cluster.ray_env` points it here; this script writes `<config>.edge.cfg` (Serve's config with the
edits below) and `exec`s the real HAProxy on it, so the process Serve manages is HAProxy itself.

Edits (each one checked on the running system by tests/test_request_limits.py, and X-Forwarded-For by
tests/test_client_address.py):
- `option forwardfor` in the HTTP frontend: the client's address reaches the replicas;
- stats and Prometheus frontends bind 127.0.0.1 only;
- `timeout http-request` = GPUBROKER_HAPROXY_REQUEST_TIMEOUT_S: headers that do not arrive within it get
  408 and the connection is closed;
- a request line (path + query) or header block over 16 KB is answered 414 / 431 in the API's JSON error
  format. HAProxy 2.8 answers its own parsing errors (a request beyond `tune.bufsize`, a 408) from the
  connection layer with its built-in HTML pages, ignoring `errorfile` and `http-error` (haproxy/haproxy
  issue #3032), so `cluster.ray_env` raises `tune.bufsize` to 64 KB (RAY_SERVE_HAPROXY_TUNE_BUFSIZE) and
  these rules answer everything between 16 and ~63 KB; beyond that the HTML 400 remains;
- HAProxy's 500/502/503/504 answers (no replica reachable, replica closed or timed out) are the JSON error
  format; Serve's errorfiles that turn 502/503/504 into a plain-text 500 are dropped (an unreachable
  replica is a 503 with Retry-After, not a 500).
"""
from __future__ import annotations

import os
import re
import sys

REAL_BINARY_ENV = "GPUBROKER_HAPROXY_BINARY"
TIMEOUT_ENV = "GPUBROKER_HAPROXY_REQUEST_TIMEOUT_S"
RETRY_AFTER_S = 2

REQUEST_PART_LIMIT = 16 * 1024  # bytes of request line, and of the header block
_ERRORS = {
    500: ("internal_error", "internal server error"),
    502: ("bad_gateway", "the API replica closed the connection; retry later"),
    503: ("unavailable", "no API replica is available; retry later"),
    504: ("timeout", "the API replica did not answer in time"),
}
_BIND = re.compile(r"^(\s*bind\s+)(?:\*|0\.0\.0\.0|::|\[::\])?(:\d+)(.*)$")


def _json(code: str, message: str) -> str:
    """The error format as an HAProxy log-format string, with a fresh 32-hex-digit trace id."""
    return ('"{\\"error\\":{\\"code\\":\\"%s\\",\\"message\\":\\"%s\\",\\"trace_id\\":'
            '\\"%%[uuid(4),regsub(-,,g)]\\"}}"' % (code, message))


def _http_error(status: int) -> str:
    extra = f" hdr Retry-After {RETRY_AFTER_S}" if status == 503 else ""
    return f"    http-error status {status} content-type application/json{extra} lf-string {_json(*_ERRORS[status])}"


_SIZE_RULES = [
    f"    http-request return status 414 content-type application/json lf-string "
    f"{_json('uri_too_long', f'request line longer than {REQUEST_PART_LIMIT} bytes')} "
    f"if {{ url,length gt {REQUEST_PART_LIMIT} }}",
    f"    http-request return status 431 content-type application/json lf-string "
    f"{_json('headers_too_large', f'request headers larger than {REQUEST_PART_LIMIT} bytes')} "
    f"if {{ req.hdrs,length gt {REQUEST_PART_LIMIT} }}",
]


def patch_config(text: str, request_timeout_s: int) -> str:
    """Serve's rendered config with loopback-only admin frontends, a header timeout and JSON errors."""
    out: list[str] = []
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if line and not line[0].isspace():
            if section == "defaults":  # leaving defaults: add ours at its end
                out.append(f"    timeout http-request {request_timeout_s}s")
                out.extend(_http_error(s) for s in _ERRORS)
            section = stripped
        if section == "defaults" and re.match(r"errorfile\s+50[234]\s", stripped):
            continue
        if section == "defaults" and stripped.startswith("timeout http-request"):
            continue
        if section in ("frontend prometheus", "listen stats"):
            m = _BIND.match(line)
            if m:
                line = f"{m.group(1)}127.0.0.1{m.group(2)}{m.group(3)}"
        out.append(line)
        if section == "frontend http_frontend" and stripped.startswith("bind "):
            out.extend(_SIZE_RULES)
            # the address HAProxy accepted the connection from, appended to X-Forwarded-For: without it every
            # request reaches the replicas from 127.0.0.1 and per-address throttles count all clients as one
            # (gateway.http.client_address believes it from trusted proxies only)
            out.append("    option forwardfor")
    if section == "defaults":
        out.append(f"    timeout http-request {request_timeout_s}s")
        out.extend(_http_error(s) for s in _ERRORS)
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> None:
    real = os.environ.get(REAL_BINARY_ENV)
    if not real:
        sys.exit(f"{REAL_BINARY_ENV} is not set: cluster.ray_env sets it to the HAProxy binary")
    args = list(argv[1:])
    if "-f" in args:
        i = args.index("-f") + 1
        with open(args[i]) as f:
            patched = patch_config(f.read(), int(os.environ.get(TIMEOUT_ENV, "10")))
        edge = args[i] + ".edge.cfg"
        with open(edge + ".tmp", "w") as f:
            f.write(patched)
        os.replace(edge + ".tmp", edge)
        args[i] = edge
    os.execv(real, [real, *args])


if __name__ == "__main__":
    main(sys.argv)
