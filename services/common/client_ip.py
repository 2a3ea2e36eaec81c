"""The client's address: the peer, or, behind a trusted reverse proxy, what it forwarded.

``SHOPFDS_TRUSTED_PROXIES`` (comma-separated addresses or CIDR ranges, default none) names the
proxies whose ``X-Forwarded-For`` is believed; the client is the right-most address in that
header that is not itself a trusted proxy. Without it the header is ignored, so a client cannot
choose the IP address the FDS scores.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from fastapi import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def parse_networks(spec: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip())


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_ip(request: Request) -> str:
    """The client address as text; a non-IP peer (unix socket, some test clients) is 0.0.0.0."""
    peer = _ip(request.client.host if request.client else "")
    trusted = parse_networks(request.app.state.settings.trusted_proxies)
    if peer is not None and trusted and any(peer in net for net in trusted):
        forwarded = request.headers.get("x-forwarded-for", "")
        for hop in reversed([h for h in forwarded.split(",") if h.strip()]):
            address = _ip(hop)
            if address is None:
                break  # a malformed hop: stop believing the chain here
            if not any(address in net for net in trusted):
                return str(address)
    return str(peer) if peer is not None else "0.0.0.0"
