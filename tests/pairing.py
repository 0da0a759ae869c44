"""A care-home screen paired for real (staff key, pairing code, the phone's confirmation), for
tests that need a room watching: only a paired screen may watch for more than one."""

from __future__ import annotations

import aiohttp

from clients.client import Session
from tests.nodes import ORGANISER_KEY


async def staff_key(url: str, label: str = "Hoivakoti") -> str:
    """A new staff key of the organiser, as care-home staff get it."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/api/staff-keys",
            json={"label": label},
            headers={"Authorization": f"Bearer {ORGANISER_KEY}"},
        ) as response,
    ):
        assert response.status == 201
        key: str = (await response.json())["key"]
        return key


async def paired_screen(
    url: str, head_count: int, name: str = "Olohuone"
) -> tuple[Session, Session]:
    """A screen paired by a phone of a new staff key, its room set to ``head_count``, said hello
    as paired; returns (screen, phone), both open."""
    key = await staff_key(url)
    screen = await Session.connect(url)
    phone = await Session.connect(url)
    hello = await screen.request("screen.hello")
    await phone.request("remote.open", key=key)
    paired = (await phone.request("screen.pair", code=hello["code"], name=name))["screen"]
    await phone.request("remote.control", screen=paired["id"], head_count=head_count)
    await screen.request("screen.hello", token=hello["token"])
    return screen, phone
