"""Viewers on networks that block UDP watch through coturn: TURN over TCP and over TLS, with the
node's time-limited credentials, against a real ``turnserver`` on loopback. The viewer offers
relayed candidates alone (``iceTransportPolicy: relay``), as on a network where nothing but the
TURN server's TCP port gets through; each test checks that decoded frames arrive and that the
candidate pair ICE chose is the relayed one, over the transport asked for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiortc import RTCIceServer, RTCPeerConnection

from media.ice import rtc_configuration
from media.seams import nominated_pairs
from signaling.iceservers import client_ice_servers
from tests.coturn import RELAY_PORTS, Coturn, coturn, needs_coturn
from tests.helpers import eventually
from tests.nodes import serve, start_performer, start_viewer

pytestmark = [pytest.mark.usefixtures("loopback_ice"), needs_coturn]


@pytest.fixture
async def turn(tmp_path: Path) -> AsyncIterator[Coturn]:
    async with coturn(tmp_path) as server:
        yield server


async def watch_through(turn: Coturn, url: str) -> None:
    """A show watched by a relay-only viewer through ``url``: frames decoded, the pair relayed
    over the URL's transport, through this coturn."""
    async with serve(ice_servers=(url,), turn_secret=turn.secret) as node:
        show = await node.create_show()
        performer = await start_performer(node, show, "video/VP8")
        watcher = await start_viewer(node, show["code"], relay_only=True)
        try:
            await eventually(
                lambda: watcher.video.frames >= 20 and watcher.audio.frames >= 20,
                30,
                f"frames through {url}",
            )
            assert watcher.video.sizes  # decoded pictures, not only packets
            assert watcher.pc is not None
            (pair,) = nominated_pairs(watcher.pc)
            assert (pair.local.type, pair.local.host) == ("relay", "127.0.0.1"), pair
            assert pair.local.port in RELAY_PORTS  # an allocation of coturn's
            assert pair.turn_transport == ("tls" if url.startswith("turns:") else "tcp"), pair
            assert "lampio" in turn.log()  # coturn took the node's credentials
        except AssertionError as error:
            raise AssertionError(f"{error}\ncoturn's log:\n{turn.log()[-3000:]}") from None
        finally:
            await watcher.close()
            await watcher.session.close()
            await performer.stop()
            await performer.session.close()


async def test_relay_only_viewer_watches_through_turn_over_tcp(turn: Coturn) -> None:
    await watch_through(turn, f"turn:127.0.0.1:{turn.port}?transport=tcp")


async def test_relay_only_viewer_watches_through_turn_over_tls(
    turn: Coturn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aioice opens turns: with asyncio's default TLS context, which verifies the server's
    # certificate against the system's trust store (and the URL's host against it); OpenSSL reads
    # SSL_CERT_FILE each time a context loads it, so this run's CA stands in for that store.
    monkeypatch.setenv("SSL_CERT_FILE", str(turn.ca_file))
    await watch_through(turn, f"turns:127.0.0.1:{turn.tls_port}?transport=tcp")


async def relayed_candidates(url: str, secret: str) -> list[str]:
    """The candidates a relay-only peer gathers through ``url`` with credentials from ``secret``."""
    (server,) = client_ice_servers((url,), secret)
    pc = RTCPeerConnection(rtc_configuration([RTCIceServer(**server)], relay_only=True))
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return [
            line for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate")
        ]
    finally:
        await pc.close()


async def test_no_relay_with_a_certificate_nobody_vouches_for_or_a_wrong_secret(
    turn: Coturn, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = f"turns:127.0.0.1:{turn.tls_port}?transport=tcp"
    tcp = f"turn:127.0.0.1:{turn.port}?transport=tcp"
    assert await relayed_candidates(tls, turn.secret) == []  # the test CA is not trusted
    assert await relayed_candidates(tcp, "not-the-secret") == []  # coturn refuses the credentials
    monkeypatch.setenv("SSL_CERT_FILE", str(turn.ca_file))
    (candidate,) = await relayed_candidates(tls, turn.secret)
    assert " typ relay " in candidate
