"""A viewer's picture on the wire: ``watch.quality {picture}`` chooses the original or the
show's smallest rendition, and ``watch.picture`` says which picture the viewer gets and why."""

from __future__ import annotations

import asyncio
import time

import pytest

from clients.client import ProtocolError
from tests.helpers import eventually
from tests.nodes import Node, start_performer, start_viewer

pytestmark = pytest.mark.usefixtures("loopback_ice")


async def test_a_viewer_chooses_the_low_picture_and_the_best_again(node: Node) -> None:
    show = await node.create_show()
    performer = await start_performer(node, show, "video/VP8")  # 320×240
    viewer = await start_viewer(node, show["code"])
    other = await start_viewer(node, show["code"])
    try:
        await eventually(lambda: viewer.video.frames >= 10 and other.video.frames >= 10, 20)
        assert viewer.video.sizes == {(320, 240)}
        told = asyncio.get_running_loop().create_task(
            viewer.session.next_event("watch.picture", timeout=10)
        )
        asked = time.monotonic()
        assert await viewer.quality(picture="low") == {"video": True, "picture": "low"}
        event = await told
        print(f"switch to the rendition: {(time.monotonic() - asked) * 1000:.0f} ms")
        # 360p is no smaller than the original: the smallest is 180p.
        assert (event["picture"], event["reason"]) == ("180p", "chosen")
        await eventually(lambda: (320, 180) in viewer.video.sizes, 10, "the small picture")
        viewer.video.longest_gap = 0.0
        frames = viewer.video.frames
        await eventually(lambda: viewer.video.frames >= frames + 20, 10)
        told = asyncio.get_running_loop().create_task(
            viewer.session.next_event("watch.picture", timeout=10)
        )
        asked = time.monotonic()
        assert await viewer.quality(picture="best") == {"video": True, "picture": "best"}
        assert (await told)["picture"] == "original"
        print(f"switch to the original: {(time.monotonic() - asked) * 1000:.0f} ms")
        viewer.video.sizes.clear()
        await eventually(lambda: (320, 240) in viewer.video.sizes, 10, "the original again")
        assert viewer.video.longest_gap < 1.0
        assert other.video.sizes == {(320, 240)}
        (broadcast,) = node.stage._broadcasts.values()
        assert broadcast.rendition("180p") is None  # nobody needs it now
        with pytest.raises(ProtocolError) as refused:
            await viewer.quality(picture="huge")
        assert refused.value.code == "invalid_input"
    finally:
        for watcher in (viewer, other):
            await watcher.close()
            await watcher.session.close()
        await performer.stop()
        await performer.session.close()
