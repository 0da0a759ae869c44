"""Viewers on weak links: a Python viewer in a network namespace (tests/netns.py) whose link is
limited, lossy or both, watching a show from the node on the host."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest
from aiortc.codecs.opus import OpusEncoder

from clients.client import Performer, Session
from media.ice import use_host_addresses
from media.seams import nominated_pairs
from tests.helpers import eventually
from tests.media.helpers import AUDIO_RATE, AUDIO_SAMPLES, FPS, MovingPatternTrack, ToneTrack
from tests.netns import IP, Namespace, NamespaceViewer, namespace
from tests.nodes import Node, serve, start_performer

LIMIT_KBIT = 100  # a link too weak for the picture, enough for the sound
BROWSER_OPUS_BPS = 32_000
LOSS_PERCENT = 5
LOSS_SECONDS = 10


@pytest.fixture
def ns() -> Iterator[Namespace]:
    """A namespace for the viewer; the node offers ICE candidates on loopback (the performer's)
    and on the host's end of the namespace's link (the viewer's) only."""
    with namespace() as made:
        use_host_addresses(["127.0.0.1", made.host_address])
        try:
            yield made
        finally:
            use_host_addresses(None)


@pytest.fixture
async def node(ns: Namespace) -> AsyncIterator[Node]:
    """The node listening on the host's end of the namespace's link."""
    async with serve(host=ns.host_address) as running:
        yield running


@pytest.fixture
async def performer(node: Node) -> AsyncIterator[tuple[dict[str, str], Performer]]:
    """A live show: a moving pattern with a box of noise (every frame several packets) and a
    tone, from the Python performer on the host."""
    show = await node.create_show()
    performing = await start_performer(node, show, "video/VP8")
    try:
        yield show, performing
    finally:
        await performing.stop()
        await performing.session.close()


async def test_a_viewer_in_a_namespace_watches_through_its_link(
    ns: Namespace, node: Node, performer: tuple[dict[str, str], Performer]
) -> None:
    show, _ = performer
    viewer = NamespaceViewer(ns, node.url, show["code"])
    await viewer.start()
    try:
        await eventually(lambda: viewer.report.video >= 20 and viewer.report.audio >= 50, 20)
        (pc,) = node.viewer_peers(show["id"])
        (pair,) = nominated_pairs(pc)
        assert (pair.local.host, pair.remote.host) == (ns.host_address, ns.address)
    finally:
        await viewer.close()


def test_the_namespace_and_its_link_go_even_after_a_failure() -> None:
    made: list[Namespace] = []
    with pytest.raises(RuntimeError), namespace() as ns:
        made.append(ns)
        ns.shape(rate_kbit=100, loss=5)
        raise RuntimeError("the test failed")
    (ns,) = made
    assert (
        ns.name not in subprocess.run([IP, "netns", "list"], capture_output=True, text=True).stdout
    )
    links = subprocess.run([IP, "-o", "link"], capture_output=True, text=True).stdout
    assert ns.host_dev not in links


@pytest.fixture
def browser_opus(monkeypatch: pytest.MonkeyPatch) -> None:
    """The performer's sound at 32 kbit/s, a browser's default for Opus (aiortc's encoder makes
    96 kbit/s stereo, more than a weak link carries with its headers)."""
    original = OpusEncoder.__init__

    def init(self: OpusEncoder) -> None:
        original(self)
        self.codec.bit_rate = BROWSER_OPUS_BPS

    monkeypatch.setattr(OpusEncoder, "__init__", init)


@pytest.fixture
async def noisy_show(
    node: Node, browser_opus: None
) -> AsyncIterator[tuple[dict[str, str], Performer]]:
    """A live show whose picture needs a few hundred kbit/s (a box of fresh noise every frame),
    its sound as a browser sends it."""
    show = await node.create_show()
    session = await Session.connect(node.url)
    performing = Performer(session)
    await performing.start(
        show["id"], show["performer_token"], [MovingPatternTrack(noise=True), ToneTrack()],
        "video/VP8",
    )  # fmt: skip
    try:
        yield show, performing
    finally:
        await performing.stop()
        await session.close()


async def test_sound_only_keeps_the_sound_on_a_link_too_weak_for_the_picture(
    ns: Namespace, node: Node, noisy_show: tuple[dict[str, str], Performer]
) -> None:
    show, _ = noisy_show
    viewer = NamespaceViewer(ns, node.url, show["code"])
    await viewer.start()
    try:
        await eventually(lambda: viewer.report.video >= 10, 20, "video on the free link")
        ns.shape(rate_kbit=LIMIT_KBIT)
        # The whole show does not fit: the picture stalls (and the sound with it).
        first, last = await viewer.window(4)
        video_rate = (last.video - first.video) / (last.t - first.t)
        print(f"full viewer at {LIMIT_KBIT} kbit/s: {video_rate:.1f} video frames/s")
        assert video_rate < FPS / 2
        assert await viewer.request("watch.quality", video=False) == {"video": False}
        await viewer.window(1)  # what was queued on the link drains
        first, last = await viewer.window(10)
        audio = last.audio - first.audio
        expected = (last.t - first.t) * AUDIO_RATE / AUDIO_SAMPLES
        print(f"sound only at {LIMIT_KBIT} kbit/s: {audio} of {expected:.0f} audio frames")
        assert audio >= 0.9 * expected
        assert last.video - first.video <= 1
        ns.unshape()
        assert await viewer.request("watch.quality", video=True) == {"video": True}
        before = viewer.report.video
        await eventually(lambda: viewer.report.video >= before + 20, 10, "the picture back")
    finally:
        await viewer.close()


async def test_retransmission_keeps_whole_frames_on_a_link_losing_5_percent(
    ns: Namespace, node: Node, noisy_show: tuple[dict[str, str], Performer]
) -> None:
    show, _ = noisy_show
    # Before the viewer comes, so that every frame it is sent crosses the lossy link; its NACKs
    # are lost as often.
    ns.shape(loss=LOSS_PERCENT, upstream_loss=LOSS_PERCENT)
    viewer = NamespaceViewer(ns, node.url, show["code"])
    await viewer.start()
    try:
        await eventually(lambda: viewer.report.video >= 1, 20, "the first frame")
        await viewer.window(LOSS_SECONDS)
        # Stop the picture, let the last retransmissions land, then count.
        await viewer.request("watch.quality", video=False)
        await viewer.window(1.5)
        (session,) = node.stage._viewers
        output = session.viewer.video.output
        assert output is not None
        sent, completed = output.sent_frames, viewer.report.video
        lost = (sent - completed) / sent
        print(
            f"{LOSS_PERCENT} % loss: {completed} of {sent} frames whole ({lost:.1%} lost), "
            f"{output.retransmitted} of {output.sent_packets} packets sent again"
        )
        assert sent >= LOSS_SECONDS * FPS * 0.8
        assert output.retransmitted > 0
        assert lost <= 0.02
    finally:
        await viewer.close()
