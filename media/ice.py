"""ICE settings: which host addresses aioice offers and which STUN/TURN servers aiortc uses."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer, RTCIceTransportPolicy

from .seams import host_addresses_now, offer_host_addresses


def use_host_addresses(addresses: Sequence[str] | None) -> None:
    """Make aioice offer exactly these host addresses (process-wide setting); None restores."""
    if addresses is None:
        offer_host_addresses(None)
        return
    parsed = [ipaddress.ip_address(address) for address in addresses]  # ValueError on a typo

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [
            str(address)
            for address in parsed
            if (address.version == 4 and use_ipv4) or (address.version == 6 and use_ipv6)
        ]

    offer_host_addresses(get_host_addresses)


def host_addresses() -> list[str]:
    """Host addresses aioice would offer now, IPv4 and IPv6."""
    return host_addresses_now()


def rtc_configuration(
    ice_servers: Sequence[RTCIceServer] = (), *, max_bundle: bool = False, relay_only: bool = False
) -> RTCConfiguration:
    """RTCConfiguration with an explicit server list: aiortc never falls back to public STUN.

    ``max_bundle`` puts every transceiver on one transport from the start. The stage needs it when
    it answers an offer with transceivers it made itself: under aiortc's default (balanced) policy
    a second transceiver of one kind shares the first one's *own* transport, is marked bundled,
    and is then skipped when the answer moves bundled media onto the primary transport, so it never
    connects (aiortc 1.16; see :mod:`media.seams` for what to re-check on an upgrade).

    ``relay_only`` gathers relayed candidates alone (``iceTransportPolicy: relay``), as a peer
    behind a network that lets nothing but its TURN server through. aiortc (aioice) uses only the
    first TURN URL it finds in ``ice_servers``.
    """
    policy = RTCBundlePolicy.MAX_BUNDLE if max_bundle else RTCBundlePolicy.BALANCED
    transport = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    return RTCConfiguration(
        iceServers=list(ice_servers), bundlePolicy=policy, iceTransportPolicy=transport
    )
