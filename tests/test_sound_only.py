"""Sound only: a viewer asks for the show's sound without its picture (``watch.quality``, or
``watch.start``'s ``video``), and for the picture again, on the same peer connection."""

from __future__ import annotations

import pytest
from aiortc import RTCRtpReceiver
from aiortc.stats import RTCInboundRtpStreamStats

from clients.client import ProtocolError, Session, Watcher
from tests.helpers import eventually
from tests.nodes import Node, start_performer, start_viewer

pytestmark = pytest.mark.usefixtures("loopback_ice")


async def inbound(receiver: RTCRtpReceiver) -> RTCInboundRtpStreamStats:
    """The receiver's one inbound RTP stream."""
    (stats,) = [s for s in (await receiver.getStats()).values() if s.type == "inbound-rtp"]
    assert isinstance(stats, RTCInboundRtpStreamStats)
    return stats


def video_receiver(watcher: Watcher) -> RTCRtpReceiver:
    assert watcher.pc is not None
    (transceiver,) = [t for t in watcher.pc.getTransceivers() if t.kind == "video"]
    return transceiver.receiver


async def test_sound_only_and_back_on_the_same_stream(node: Node) -> None:
    show = await node.create_show()
    performer = await start_performer(node, show, "video/VP8")
    viewer = await start_viewer(node, show["code"])
    try:
        await eventually(lambda: viewer.video.frames >= 10 and viewer.audio.frames >= 10, 20)
        before = await inbound(video_receiver(viewer))
        assert await viewer.quality(video=False) == {"video": False}
        (session,) = node.stage._viewers
        (output, _) = (track.output for track in session.viewer.tracks)
        assert output is not None
        sent = output.sent_packets
        video, audio = viewer.video.frames, viewer.audio.frames
        # The sound goes on, the picture stops (a frame on its way may still come).
        await eventually(lambda: viewer.audio.frames >= audio + 50, 10)
        assert viewer.video.frames <= video + 1 and output.sent_packets <= sent + 10
        paused_at = output.sent_packets
        assert await viewer.quality(video=True) == {"video": True}
        await eventually(lambda: viewer.video.frames >= video + 20, 10, "the picture back")
        after = await inbound(video_receiver(viewer))
        # One RTP stream throughout: same SSRC, sequence numbers without a gap (nothing lost
        # on loopback), and the timestamps of the show's own clock.
        assert after.ssrc == before.ssrc
        assert after.packetsLost == 0 and after.packetsReceived > paused_at - 10
    finally:
        await viewer.close()
        await viewer.session.close()
        await performer.stop()
        await performer.session.close()


async def test_a_viewer_can_start_with_the_sound_alone(node: Node) -> None:
    show = await node.create_show()
    performer = await start_performer(node, show, "video/VP8")
    watcher = Watcher(await Session.connect(node.url), decode=False)
    try:
        await watcher.join(show["code"])
        await watcher.start(video=False)
        await eventually(lambda: watcher.audio.frames >= 50, 20)
        assert watcher.video.frames == 0
        assert await watcher.quality(video=True) == {"video": True}
        await eventually(lambda: watcher.video.frames >= 10, 10, "the picture")
    finally:
        await watcher.close()
        await watcher.session.close()
        await performer.stop()
        await performer.session.close()


async def test_quality_needs_a_seat_and_a_bool(node: Node) -> None:
    session = await Session.connect(node.url)
    try:
        with pytest.raises(ProtocolError) as refused:
            await session.request("watch.quality", video=False)
        assert refused.value.code == "invalid_input"
        show = await node.create_show()
        await session.request("watch.join", code=show["code"])
        with pytest.raises(ProtocolError) as refused:
            await session.request("watch.quality", video="no")
        assert refused.value.code == "invalid_input"
        # Before any media the choice is kept for the next watch.start.
        assert await session.request("watch.quality", video=False) == {"video": False}
    finally:
        await session.close()
