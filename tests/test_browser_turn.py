"""The Watch page in headless Chromium on a network that lets only TURN through: the page's peer
connection is made relay-only and given TURN over TCP, or over TLS, to a real coturn on loopback,
and decodes the show's frames over the relayed pair."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import chromium, needs_chromium, open_tab, received
from tests.coturn import RELAY_PORTS, Coturn, coturn, needs_coturn
from tests.helpers import eventually
from tests.nodes import serve, start_performer

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
    needs_coturn,
    pytest.mark.usefixtures("loopback_ice"),
]

# Stands in for a care home's network that blocks UDP: every peer connection the page makes
# gathers relayed candidates only. The page itself never asks for this (ICE finds the relayed
# pair by itself when nothing else connects; docs/operations.md, "TURN").
RELAY_ONLY = """(() => {
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(config = {}, ...rest) {
      super({...config, iceTransportPolicy: 'relay'}, ...rest);
    }
  };
})();"""

# The candidate pair the page's peer connection uses now, as getStats names it.
SELECTED_PAIR = """async () => {
  const pc = window.lampio.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((r) => {
    if (r.type === 'transport' && r.selectedCandidatePairId) {
      pair = stats.get(r.selectedCandidatePairId);
    }
  });
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId);
  const remote = stats.get(pair.remoteCandidateId);
  return {local: local.candidateType, relayProtocol: local.relayProtocol ?? null,
          address: local.address, port: local.port, remote: remote.candidateType,
          remoteAddress: remote.address};
}"""


@pytest.fixture
async def turn(tmp_path: Path) -> AsyncIterator[Coturn]:
    async with coturn(tmp_path) as server:
        yield server


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_relay_only_page_watches_through_turn(turn: Coturn, transport: str) -> None:
    if transport == "tcp":
        url, args = f"turn:127.0.0.1:{turn.port}?transport=tcp", ()
    else:
        # Chromium checks a TURN server's certificate (without this flag it never connects to
        # this run's coturn); the flag trusts exactly that certificate's key, nothing else.
        url = f"turns:127.0.0.1:{turn.tls_port}?transport=tcp"
        args = (f"--ignore-certificate-errors-spki-list={turn.spki_hash()}",)
    async with serve(public=True, ice_servers=(url,), turn_secret=turn.secret) as node:
        show = await node.create_show()
        performer = await start_performer(node, show, "video/VP8")
        try:
            async with chromium(*args) as browser:
                viewer = await open_tab(browser, show["viewer_url"], init_script=RELAY_ONLY)

                async def decoding() -> dict[str, Any]:
                    now = await received(viewer)
                    return now if now["frames"] >= 20 and now["width"] > 0 else {}

                try:
                    await eventually(decoding, 30, f"frames through {url}", interval=0.2)
                except AssertionError as error:
                    raise AssertionError(
                        f"{error}\nconsole:\n{viewer.console()}\ncoturn:\n{turn.log()[-3000:]}"
                    ) from None
                pair = await viewer.eval(SELECTED_PAIR)
                assert pair is not None
                assert (pair["local"], pair["relayProtocol"]) == ("relay", transport), pair
                assert pair["address"] == "127.0.0.1" and pair["port"] in RELAY_PORTS, pair
                assert (pair["remote"], pair["remoteAddress"]) == ("host", "127.0.0.1"), pair
        finally:
            await performer.stop()
            await performer.session.close()
