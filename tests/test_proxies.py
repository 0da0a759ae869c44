"""Behind a reverse proxy the operator names (--trusted-proxies), code guessing is limited per
client, not per proxy; a client cannot forge its way past the limit; untrusted peers' headers are
ignored."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from clients.client import ProtocolError, Session
from lampio_stream.app import create_app
from rooms.bus_memory import MemoryBus
from signaling.proxies import client_address, parse_networks
from tests.nodes import create, error_of, make_config

PROXY = "127.0.0.0/8"  # the test client connects from loopback: it plays the proxy


@pytest.fixture
async def behind_proxy() -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    app = create_app(make_config(trusted_proxies=(PROXY,)), bus=MemoryBus())
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


def test_the_client_is_the_first_untrusted_hop_from_the_right() -> None:
    trusted = parse_networks(["10.0.0.0/8", "127.0.0.1"])
    # The client wrote a fake first hop; the proxies appended what they saw.
    hops = ["198.51.100.7, 203.0.113.9", "10.1.2.3"]
    assert client_address("127.0.0.1", hops, trusted) == "203.0.113.9"
    # Not from a trusted proxy: the header means nothing.
    assert client_address("192.0.2.44", hops, trusted) == "192.0.2.44"
    assert client_address("127.0.0.1", ["2001:db8::1"], trusted) == "2001:db8::1"
    with pytest.raises(ValueError, match="not an address"):
        parse_networks(["10.0.0.0/33"])
    with pytest.raises(ValueError, match="trusted_proxies"):
        make_config(trusted_proxies=("proxy.example",))


async def guess(client: TestClient, code: str, client_ip: str) -> tuple[int, str | None]:  # type: ignore[type-arg]
    response = await client.get(
        f"/api/shows/by-code/{code}", headers={"X-Forwarded-For": client_ip}
    )
    if response.status == 200:
        return 200, None
    return await error_of(response)


async def test_each_client_behind_the_proxy_has_its_own_limit(behind_proxy: TestClient) -> None:  # type: ignore[type-arg]
    show = await create(behind_proxy)
    wrong = "000000" if show["code"] != "000000" else "000001"
    for _ in range(5):
        assert await guess(behind_proxy, wrong, "203.0.113.5") == (404, "show_not_found")
    assert await guess(behind_proxy, wrong, "203.0.113.5") == (429, "rate_limited")
    # Everyone else behind the same proxy still gets in.
    assert await guess(behind_proxy, show["code"], "203.0.113.6") == (200, None)
    # The guesser cannot dodge by writing another address in front of the proxy's.
    assert await guess(behind_proxy, show["code"], "198.51.100.1, 203.0.113.5") == (
        429,
        "rate_limited",
    )
    garbage = await behind_proxy.get(
        f"/api/shows/by-code/{show['code']}", headers={"X-Forwarded-For": "not-an-ip"}
    )
    assert await error_of(garbage) == (400, "invalid_forwarded_for")


async def test_websocket_code_guessing_counts_per_forwarded_client(
    behind_proxy: TestClient,  # type: ignore[type-arg]
) -> None:
    show = await create(behind_proxy)
    wrong = "000000" if show["code"] != "000000" else "000001"
    url = str(behind_proxy.make_url("")).rstrip("/")

    async def session_from(address: str) -> Session:
        return await Session.connect(url, headers={"X-Forwarded-For": address})

    guesser, neighbour = await session_from("203.0.113.5"), await session_from("203.0.113.6")
    try:
        codes = []
        for _ in range(6):
            with pytest.raises(ProtocolError) as refused:
                await guesser.request("show.lookup", code=wrong)
            codes.append(refused.value.code)
        assert codes == ["show_not_found"] * 5 + ["rate_limited"]
        found = await neighbour.request("show.lookup", code=show["code"])
        assert found["show"]["id"] == show["id"]
    finally:
        await guesser.close()
        await neighbour.close()
