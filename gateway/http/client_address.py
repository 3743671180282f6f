"""The client's real address behind proxies, and the key its throttles count under.

Serve's HAProxy connects to the replicas itself, so every request arrives from 127.0.0.1. Our HAProxy
wrapper (`cluster/haproxy_wrapper.py`) makes it append the address it saw to `X-Forwarded-For`. The address
of a request is found by walking that header from the right, the peer first: each hop that is one of
`trusted_proxies` (default loopback: our HAProxy, or a proxy on this machine) is skipped, and the first
address that is not is the client. A client cannot forge its way past this: whatever it writes into the
header stands to the LEFT of what the trusted hops appended. A proxy in front must therefore append
(nginx `proxy_add_x_forwarded_for`, HAProxy `option forwardfor`) and be listed in `trusted_proxies`
when it is not on this machine.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any, Iterable

_Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def _networks(trusted: tuple[str, ...]) -> tuple[_Net, ...]:
    return tuple(ipaddress.ip_network(t, strict=False) for t in trusted)


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    v = value.strip()
    if v.startswith("[") and "]" in v:  # [v6]:port
        v = v[1:v.index("]")]
    elif v.count(":") == 1:  # v4:port
        v = v.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(v)
    except ValueError:
        return None
    return addr.ipv4_mapped or addr if isinstance(addr, ipaddress.IPv6Address) else addr


def real_client(peer: str | None, forwarded_for: Iterable[str], trusted: Iterable[str]) -> str | None:
    """The first address from the right of [X-Forwarded-For..., peer] that is not a trusted proxy.
    `forwarded_for`: every X-Forwarded-For header value, in the order received."""
    nets = _networks(tuple(trusted))
    hops = [h for value in forwarded_for for h in value.split(",") if h.strip()]
    current = _parse(peer) if peer else None
    if current is None:
        return peer
    while any(current in n for n in nets) and hops:
        nxt = _parse(hops.pop())
        if nxt is None:  # garbage in the header: stop at the last hop we can vouch for
            break
        current = nxt
    return str(current)


def scope_client(scope: dict[str, Any], trusted: Iterable[str]) -> str | None:
    """`real_client` of an ASGI scope (HTTP or WebSocket)."""
    peer = scope.get("client")
    xff = [v.decode("latin-1") for k, v in scope.get("headers") or () if k == b"x-forwarded-for"]
    return real_client(peer[0] if peer else None, xff, trusted)


def throttle_key(ip: str | None) -> str:
    """What per-address throttles count under: the address, or its /64 for IPv6 (one subscriber's
    allocation, so rotating within it does not buy a fresh budget)."""
    if not ip:
        return "-"
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "-"
    if addr.version == 6:
        return str(ipaddress.ip_network(f"{addr}/64", strict=False).network_address) + "/64"
    return str(addr)
