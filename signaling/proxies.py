"""Behind a reverse proxy: the client's address from ``X-Forwarded-For``, trusted only from the
proxies the operator names (``--trusted-proxies``).

Rate limits (wrong show codes, pairing codes) count per client address; behind a proxy every
request would otherwise come from the proxy and one guesser would lock everyone out. The header is
read from the right: each trusted proxy appends the address it saw, so the first address that is
not a trusted proxy is the client as the outermost proxy saw it. Whatever a client writes into the
header itself stays to the left of that and is never believed. (aiohttp-remotes'
``XForwardedStrict`` refuses every request that does not come through a proxy, health checks
included, and wants ``X-Forwarded-Proto`` from each hop; this is the one rule needed here.)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from signaling.errors import ApiError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parse_networks(texts: Sequence[str]) -> tuple[Network, ...]:
    """Addresses or networks (``10.0.0.0/8``, ``::1``); ValueError names a bad one."""
    networks = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not an address or network: {text!r}") from exc
    return tuple(networks)


def client_address(peer: str | None, forwarded: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client's address given the TCP peer and the ``X-Forwarded-For`` header values."""
    if peer is None or not _trusted(peer, trusted):
        return peer or "unknown"
    hops = [hop.strip() for value in forwarded for hop in value.split(",")]
    for hop in reversed(hops):
        if not hop:
            continue
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            raise ApiError(
                400, "invalid_forwarded_for", "X-Forwarded-For holds something not an address"
            ) from None
        if not any(address in network for network in trusted):
            return str(address)
    return hops[0] if hops and hops[0] else peer  # every hop a proxy: the first one asked


def _trusted(peer: str, trusted: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in trusted)


def forwarded_for(trusted: Sequence[Network]) -> Middleware:
    """Middleware giving handlers ``request.remote`` = the client behind the trusted proxies."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        forwarded = request.headers.getall(hdrs.X_FORWARDED_FOR, [])
        if forwarded:
            remote = client_address(request.remote, forwarded, trusted)
            if remote != request.remote:
                request = request.clone(remote=remote)
        return await handler(request)

    return middleware
