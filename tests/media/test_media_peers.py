"""End to end on loopback: a performer's encoded media reaches viewers through the Broadcast."""

from __future__ import annotations

import asyncio
import gc
import itertools
import weakref

import pytest
from aiortc import RTCRtpReceiver
from helpers import (
    HEIGHT,
    WIDTH,
    GatedTrack,
    MovingPatternTrack,
    ShowRig,
    ToneTrack,
    ViewerRig,
    eventually,
)

from media.frame import EncodedFrame
from media.receiver import EncodedReceiver
from media.seams import decoded_backlog, send_pli, sender_ssrc
from media.stage import close_peer

VIEWERS = 5


def decoded(rig: ViewerRig, video: int, audio: int) -> bool:
    return (
        rig.video is not None
        and rig.audio is not None
        and rig.video.frames >= video
        and rig.audio.frames >= audio
    )


@pytest.mark.parametrize(
    ("codec", "direct"),
    [("video/VP8", True), ("video/H264", True), ("video/VP8", False)],
    ids=["VP8", "H264", "VP8-aiortc-sender"],
)
async def test_viewers_decode_forwarded_media(codec: str, direct: bool) -> None:
    # The aiortc-sender case keeps `--media-sender aiortc`, the comparison path, working.
    show = ShowRig(codec)
    publisher = await show.start_publisher()
    viewers = list(await asyncio.gather(*(show.add_viewer(direct=direct) for _ in range(VIEWERS))))
    try:
        await eventually(lambda: all(decoded(v, 20, 50) for v in viewers), 20, "media decoded")
        for rig in viewers:
            assert rig.video is not None
            assert rig.video.sizes == {(WIDTH, HEIGHT)}
            assert [o.sent_packets > 0 for o in rig.outputs] == ([True, True] if direct else [])
        assert show.broadcast.codec("video") == codec
        (video_in,) = [r for r in publisher.ingest.receivers if r.kind == "video"]
        assert video_in.frames > 0
    finally:
        for rig in viewers:
            await show.remove_viewer(rig)
        await show.stop_publisher(publisher)


def assert_monotonic(pts: list[int], clock_rate: int) -> None:
    steps = [b - a for a, b in itertools.pairwise(pts)]
    assert steps, "no timestamps"
    # Strictly growing, and no jump beyond a few seconds (a backwards RTP step would unwrap
    # in aiortc's TimestampMapper into a jump of 2**32 ticks).
    assert min(steps) > 0, steps
    assert max(steps) < 5 * clock_rate, steps


async def test_ingest_decodes_nothing() -> None:
    show = ShowRig("video/VP8")
    publisher = await show.start_publisher()
    try:
        await eventually(lambda: all(r.frames >= 20 for r in publisher.ingest.receivers), 10)
        for transceiver in publisher.server.getTransceivers():
            # Decoded frames would pile up in the remote track's queue, since nobody reads it.
            assert decoded_backlog(transceiver.receiver) == 0
    finally:
        await show.stop_publisher(publisher)


async def test_tap_installed_after_connection_also_works() -> None:
    show = ShowRig("video/VP8")
    publisher = await show.start_publisher(tap_late=True)
    rig = await show.add_viewer()
    try:
        receivers = [t.receiver for t in publisher.server.getTransceivers()]
        await eventually(lambda: decoded(rig, 5, 10), 15)
        # Frames decoded before the tap stay queued (bounded); none are decoded after it.
        decoded_before_tap = [decoded_backlog(receiver) for receiver in receivers]
        assert sum(decoded_before_tap) > 0
        await eventually(lambda: decoded(rig, 25, 60), 15)
        assert [decoded_backlog(receiver) for receiver in receivers] == decoded_before_tap
    finally:
        await show.remove_viewer(rig)
        await show.stop_publisher(publisher)


async def test_new_performer_resumes_viewers_without_renegotiation() -> None:
    show = ShowRig("video/VP8")
    first = await show.start_publisher()
    viewers = [await show.add_viewer() for _ in range(2)]
    try:
        await eventually(lambda: all(decoded(v, 10, 25) for v in viewers), 15, "first performer")
        offers = [rig.client.remoteDescription.sdp for rig in viewers]
        await show.stop_publisher(first)
        at_switch = [(v.video.frames, v.audio.frames) for v in viewers if v.video and v.audio]

        second = await show.start_publisher()
        try:
            await eventually(
                lambda: all(
                    decoded(v, video + 20, audio + 50)
                    for v, (video, audio) in zip(viewers, at_switch, strict=True)
                ),
                15,
                "second performer",
            )
        finally:
            await show.stop_publisher(second)
        for rig, sdp in zip(viewers, offers, strict=True):
            assert rig.client.remoteDescription.sdp == sdp
            assert rig.client.signalingState == "stable"
            assert rig.video is not None and rig.audio is not None
            assert rig.video.sizes == {(WIDTH, HEIGHT)}
            assert_monotonic(rig.video.pts, 90000)
            assert_monotonic(rig.audio.pts, 48000)
    finally:
        for rig in viewers:
            await show.remove_viewer(rig)


@pytest.mark.parametrize("kind", ["video", "audio"])
async def test_each_frame_crosses_two_ingests_before_the_next_is_sent(kind: str) -> None:
    # Performer → origin broadcast → a feed as an edge pulls it → edge broadcast → a viewer who
    # taps her frames undecoded (as bench/cluster.py's do): three receivers, each of which held
    # a frame until the next one's first packet arrived. Nothing more is sent until the frame is
    # at the viewer, so under that rule this would wait for ever.
    video, audio = GatedTrack(MovingPatternTrack(noise=True)), GatedTrack(ToneTrack())
    origin, edge = ShowRig("video/VP8"), ShowRig("video/VP8")
    publisher = await origin.start_publisher(video=video, audio=audio)
    feed_ingest = edge.broadcast.open_ingest()
    feed = await origin.add_viewer(tap=feed_ingest.attach)
    frames: dict[str, list[EncodedFrame]] = {"video": [], "audio": []}
    taps: list[EncodedReceiver] = []

    def watch(receiver: RTCRtpReceiver) -> None:
        taps.append(EncodedReceiver(receiver, on_frame=lambda f: frames[f.kind].append(f)))

    viewer = await edge.add_viewer(tap=watch)
    try:
        peers = (publisher.server, feed.client, viewer.client)
        await eventually(lambda: all(pc.connectionState == "connected" for pc in peers), 10)
        track = video if kind == "video" else audio
        for sent in range(1, 6):
            track.release()
            await eventually(
                lambda sent=sent: len(frames[kind]) == sent, 5, f"{kind} frame {sent} at the viewer"
            )
        assert frames[kind][0].keyframe
        (fed,) = [r for r in feed_ingest.receivers if r.kind == kind]
        assert fed.frames == 5
    finally:
        for tap in taps:
            tap.close()
        await edge.remove_viewer(viewer)
        await origin.remove_viewer(feed)
        feed_ingest.close()
        await origin.stop_publisher(publisher)


async def test_viewer_keyframe_request_reaches_performer() -> None:
    show = ShowRig("video/VP8")
    publisher = await show.start_publisher()
    rig = await show.add_viewer()
    try:
        await eventually(lambda: decoded(rig, 10, 10), 15)
        (video_in,) = [r for r in publisher.ingest.receivers if r.kind == "video"]
        before = video_in.keyframe_requests
        client_video = next(t for t in rig.client.getTransceivers() if t.kind == "video")
        server_video = next(t for t in rig.server.getTransceivers() if t.kind == "video")
        await send_pli(client_video.receiver, sender_ssrc(server_video.sender))
        await eventually(lambda: video_in.keyframe_requests > before, 5, "PLI passed up")
    finally:
        await show.remove_viewer(rig)
        await show.stop_publisher(publisher)


async def test_removed_viewers_leave_no_tasks() -> None:
    show = ShowRig("video/VP8")
    publisher = await show.start_publisher()
    try:
        await eventually(lambda: all(r.frames >= 5 for r in publisher.ingest.receivers), 10)
        before = len(asyncio.all_tasks())
        viewers = [await show.add_viewer() for _ in range(3)]
        await eventually(lambda: all(decoded(v, 5, 10) for v in viewers), 15)
        assert len(asyncio.all_tasks()) > before
        for rig in viewers:
            await show.remove_viewer(rig)
        assert show.broadcast.viewers == 0
        await eventually(lambda: len(asyncio.all_tasks()) <= before, 10, "tasks left behind")
    finally:
        await show.stop_publisher(publisher)


async def test_a_viewer_who_left_is_freed_without_the_cyclic_collector() -> None:
    """Closed the stage's way (``close_peer``), a viewer's peer connection, with its transports,
    DTLS and SRTP state and its direct outputs' packet history, is freed by reference counting:
    the node runs full collections rarely, and a departed viewer's ~75 kB piled up until one came
    (bench/soak.py)."""
    show = ShowRig("video/VP8")
    publisher = await show.start_publisher()

    async def watch_and_leave() -> list[weakref.ref[object]]:
        rig = await show.add_viewer()
        await eventually(lambda: decoded(rig, 5, 10), 15)
        held: list[weakref.ref[object]] = [weakref.ref(rig.server)]
        held += [weakref.ref(output) for output in rig.outputs]
        show.broadcast.remove_viewer(rig.viewer)
        await close_peer(rig.server)
        await close_peer(rig.client)
        for consumer in rig.consumers:
            await consumer.stop()
        return held

    try:
        gc.collect()
        gc.disable()
        try:
            held = await watch_and_leave()
            assert len(held) == 3
            await eventually(lambda: all(ref() is None for ref in held), 5, "the peer is freed")
        finally:
            gc.enable()
    finally:
        await show.stop_publisher(publisher)
