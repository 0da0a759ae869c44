"""Live captions through the real server on both bus engines: the studio's helper types a line and
every viewer of the show sees it; viewers cannot caption; long lines and floods are refused."""

from __future__ import annotations

import pytest

from clients.client import ProtocolError, Session
from rooms.captions import CAPTION_BURST, CAPTION_MAX
from tests.nodes import Node


async def test_a_caption_reaches_every_viewer_and_clears(node: Node) -> None:
    show = await node.create_show()
    other = await node.create_show("Toinen esitys")
    host, other_host = await Session.connect(node.url), await Session.connect(node.url)
    viewers = [await Session.connect(node.url) for _ in range(2)]
    elsewhere = await Session.connect(node.url)
    try:
        await host.request("perform.host", show=show["id"], token=show["performer_token"])
        for viewer in viewers:
            await viewer.request("watch.join", code=show["code"])
        await elsewhere.request("watch.join", code=other["code"])

        sent = await host.request("caption.send", text="  Hyvää\niltaa,   ystävät!  ")
        assert sent == {"text": "Hyvää iltaa, ystävät!"}  # one line, spaces tidied
        for viewer in viewers:
            event = await viewer.next_event("caption")
            assert event == {"type": "caption", "show": show["id"], "text": "Hyvää iltaa, ystävät!"}
        assert (await host.next_event("caption"))["text"] == "Hyvää iltaa, ystävät!"

        await host.request("caption.send", text="")  # clears the line
        assert (await viewers[0].next_event("caption"))["text"] == ""
        # Another show's viewers see nothing of it: their first caption is their own show's, sent
        # after these (the bus hands messages on in the order they were sent).
        await other_host.request("perform.host", show=other["id"], token=other["performer_token"])
        await other_host.request("caption.send", text="Toisen esityksen teksti")
        event = await elsewhere.next_event("caption")
        assert event == {"type": "caption", "show": other["id"], "text": "Toisen esityksen teksti"}
    finally:
        for session in (host, other_host, *viewers, elsewhere):
            await session.close()


async def test_only_the_performer_captions_and_within_limits(node: Node) -> None:
    show = await node.create_show()
    viewer = await Session.connect(node.url)
    host = await Session.connect(node.url)
    try:
        await viewer.request("watch.join", code=show["code"])
        with pytest.raises(ProtocolError) as caught:
            await viewer.request("caption.send", text="Minäkin haluan tekstittää")
        assert caught.value.code == "forbidden"

        await host.request("perform.host", show=show["id"], token=show["performer_token"])
        with pytest.raises(ProtocolError) as caught:
            await host.request("caption.send", text="x" * (CAPTION_MAX + 1))
        assert caught.value.code == "caption_too_long"
        assert (await host.request("caption.send", text="x" * CAPTION_MAX))["text"]
        with pytest.raises(ProtocolError) as caught:
            await host.request("caption.send", text=7)
        assert caught.value.code == "invalid_input"

        codes = []
        for n in range(CAPTION_BURST + 4):
            try:
                await host.request("caption.send", text=f"rivi {n}")
                codes.append("ok")
            except ProtocolError as exc:
                codes.append(exc.code)
                assert exc.details.get("retry_after", 0) > 0
        assert "rate_limited" in codes and codes.count("ok") <= CAPTION_BURST + 1
    finally:
        await viewer.close()
        await host.close()
