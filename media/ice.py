"""ICE settings: which host addresses aioice offers and which STUN/TURN servers aiortc uses."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import aioice.ice
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer

# aioice looks `get_host_addresses` up as a module global on every gathering, so replacing it is
# the one seam that controls host candidates; keep the original to be able to restore it.
_ORIGINAL_GET_HOST_ADDRESSES = aioice.ice.get_host_addresses


def use_host_addresses(addresses: Sequence[str] | None) -> None:
    """Make aioice offer exactly these host addresses (process-wide setting); None restores."""
    if addresses is None:
        aioice.ice.get_host_addresses = _ORIGINAL_GET_HOST_ADDRESSES
        return
    parsed = [ipaddress.ip_address(address) for address in addresses]  # ValueError on a typo

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [
            str(address)
            for address in parsed
            if (address.version == 4 and use_ipv4) or (address.version == 6 and use_ipv6)
        ]

    aioice.ice.get_host_addresses = get_host_addresses


def host_addresses() -> list[str]:
    """Host addresses aioice would offer now, IPv4 and IPv6."""
    result: list[str] = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)
    return result


def rtc_configuration(
    ice_servers: Sequence[RTCIceServer] = (), *, max_bundle: bool = False
) -> RTCConfiguration:
    """RTCConfiguration with an explicit server list: aiortc never falls back to public STUN.

    ``max_bundle`` puts every transceiver on one transport from the start. The stage needs it when
    it answers an offer with transceivers it made itself: under aiortc's default (balanced) policy
    a second transceiver of one kind shares the first one's *own* transport, is marked bundled,
    and is then skipped when the answer moves bundled media onto the primary transport, so it never
    connects (aiortc 1.16, ``RTCPeerConnection.__createTransceiver`` and ``setRemoteDescription``).
    """
    policy = RTCBundlePolicy.MAX_BUNDLE if max_bundle else RTCBundlePolicy.BALANCED
    return RTCConfiguration(iceServers=list(ice_servers), bundlePolicy=policy)
