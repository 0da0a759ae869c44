"""Guessing secrets over HTTP (organiser key, performer tokens, stream keys) is rate-limited per
address; the right key from another address, and requests without a secret, go on as before."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from lampio_stream.config import Config
from signaling.guard import FAILURES_ALLOWED
from tests.nodes import ORGANISER_KEY, create, error_of, make_config


async def test_wrong_secrets_are_rate_limited_per_address(client: TestClient) -> None:  # type: ignore[type-arg]
    show = await create(client)
    wrong = {"Authorization": "Bearer not-the-organiser-key"}
    for _ in range(FAILURES_ALLOWED):
        response = await client.post("/api/shows", json={"title": "x"}, headers=wrong)
        assert await error_of(response) == (403, "forbidden")
    limited = await client.get("/api/staff-keys", headers=wrong)
    assert await error_of(limited) == (429, "rate_limited")
    assert int(limited.headers["Retry-After"]) > 0
    # Once limited, even the right key waits from this address: guessing cannot go on.
    right = {"Authorization": f"Bearer {ORGANISER_KEY}"}
    assert (await client.post("/api/shows", json={"title": "y"}, headers=right)).status == 429
    # Nothing without a secret is slowed down: the programme stays open to everyone.
    assert (await client.get("/api/shows")).status == 200
    # Another address (127.0.0.2 is loopback too) is not affected.
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as other:
        url = client.make_url("/api/shows")
        async with other.post(url, json={"title": "z"}, headers=right) as response:
            assert response.status == 201
    # Other kinds of secret have buckets of their own: the performer's link still opens the show.
    performer = {"Authorization": f"Bearer {show['performer_token']}"}
    assert (await client.get(f"/api/shows/{show['id']}", headers=performer)).status == 200


async def test_wrong_stream_keys_do_not_lock_the_organiser_out(client: TestClient) -> None:  # type: ignore[type-arg]
    """A care home's or a city office's shared address: someone mistypes OBS's stream key ten
    times; the organiser at the next desk still creates shows, and the limit holds for keys."""
    sdp = {"Content-Type": "application/sdp"}
    for _ in range(FAILURES_ALLOWED):
        response = await client.post(
            "/whip", data="v=0\r\n", headers={"Authorization": "Bearer wrong-key", **sdp}
        )
        assert await error_of(response) == (403, "forbidden")
    again = await client.post(
        "/whip", data="v=0\r\n", headers={"Authorization": "Bearer wrong-key", **sdp}
    )
    assert await error_of(again) == (429, "rate_limited")
    right = {"Authorization": f"Bearer {ORGANISER_KEY}"}
    assert (
        await client.post("/api/shows", json={"title": "Konsertti"}, headers=right)
    ).status == 201


def test_a_chosen_organiser_key_must_not_be_short() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        make_config(organiser_key="secret")
    assert Config(organiser_key="x" * 16).organiser_key
