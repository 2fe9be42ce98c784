"""How the HTTP app is put on a socket: uvicorn's settings that decide who a client is.

uvicorn believes ``X-Forwarded-For`` from 127.0.0.1 by default, so any client of a same-host
reverse proxy, or anyone who reaches the port from loopback, could name itself any address
and pass the visitors' rate limit. Here forwarding headers are believed only from the proxies
a person names (`Settings.trusted_proxies`); with none named, a client is its own address.
"""

from __future__ import annotations

import ipaddress
from typing import Any


def trusted(proxies: str) -> list[str]:
    """The addresses (or networks) in ``SANDLOOP_TRUSTED_PROXIES``, each checked."""
    named = [p.strip() for p in proxies.split(",") if p.strip()]
    for proxy in named:
        ipaddress.ip_network(proxy, strict=False)  # ValueError names a bad one
    return named


def uvicorn_config(app: Any, host: str, port: int, proxies: str = "") -> Any:
    import uvicorn

    believed = trusted(proxies)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=bool(believed),
        forwarded_allow_ips=believed or None,
        server_header=False,
    )


def beyond_loopback(host: str) -> bool:
    """Whether listening on ``host`` lets other machines in (a name counts as beyond)."""
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host != "localhost"
