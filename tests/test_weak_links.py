"""Viewers on weak links: a Python viewer in a network namespace (tests/netns.py) whose link is
limited, lossy or both, watching a show from the node on the host."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest
from aiortc.codecs.opus import OpusEncoder

from clients.client import Performer, Session
from media.ice import use_host_addresses
from media.seams import nominated_pairs
from media.stage import ViewerSession
from tests.helpers import eventually
from tests.media.helpers import FPS, MovingPatternTrack, ToneTrack
from tests.netns import IP, Namespace, NamespaceViewer, namespace
from tests.nodes import Node, serve, start_performer, start_viewer

LIMIT_KBIT = 64  # a link too weak for the picture, and for the show's own sound with headers
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
    96 kbit/s stereo). The test's pure tone makes the encoder overshoot: ~50 kbit/s of Opus,
    ~92 kbit/s on the wire with its packets' headers (a browser's speech: ~60)."""
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
        (session,) = node.stage._viewers
        assert await viewer.request("watch.quality", video=False) == {"video": False}
        # Even the sound alone does not fit: the node steps it down to its lighter sound.
        asked = asyncio.get_running_loop().time()
        await eventually(lambda: session.sound == "low", 10, "the lighter sound")
        took = asyncio.get_running_loop().time() - asked
        await viewer.window(1)  # what was queued on the link drains
        first, last = await viewer.window(10)
        heard, elapsed = last.audio_s - first.audio_s, last.t - first.t
        print(
            f"sound only at {LIMIT_KBIT} kbit/s: lighter sound after {took:.1f} s, then "
            f"{heard:.2f} s of sound heard in {elapsed:.2f} s"
        )
        assert heard >= 0.9 * elapsed
        assert last.video - first.video <= 1
        assert session.sound == "low"  # no try of the original within its first 30 s
        ns.unshape()
        assert await viewer.request("watch.quality", video=True) == {"video": True}
        before = viewer.report.video
        await eventually(lambda: viewer.report.video >= before + 20, 10, "the picture back")
        assert session.sound == "original"  # and the original sound with it
    finally:
        await viewer.close()


async def test_retransmission_keeps_whole_frames_on_a_link_losing_5_percent(
    ns: Namespace, node: Node, noisy_show: tuple[dict[str, str], Performer]
) -> None:
    show, _ = noisy_show
    viewer = NamespaceViewer(ns, node.url, show["code"])
    await viewer.start()
    try:
        await eventually(lambda: viewer.report.video >= 1, 20, "the first frame")
        (session,) = node.stage._viewers
        output = session.viewer.video.output
        assert output is not None
        # The original alone: this is about resending what was lost, not about stepping down (a
        # lossy link's receiver reports may step the viewer to a rendition: tested below).
        await viewer.request("watch.quality", picture="best")

        async def settled() -> tuple[int, int]:
            """Frames sent and completed, with the picture stopped and the last ones landed."""
            await viewer.request("watch.quality", video=False)
            await viewer.window(1.5)
            assert output is not None
            return output.sent_frames, viewer.report.video

        # Counted from a settled start (no frames of the connection's first moments, nor the
        # viewer's report lagging behind), over a link losing 5 % towards the viewer (a weak
        # downlink). With its NACKs lost as often too, 1.0–4.4 % of frames were lost in four runs
        # (docs/benchmarks.md): a frame whose NACK and resend are both lost is given up.
        sent0, completed0 = await settled()
        retransmitted0 = output.retransmitted
        ns.shape(loss=LOSS_PERCENT)
        await viewer.request("watch.quality", video=True)
        await viewer.window(LOSS_SECONDS)
        sent1, completed1 = await settled()
        sent, completed = sent1 - sent0, completed1 - completed0
        lost = (sent - completed) / sent
        print(
            f"{LOSS_PERCENT} % loss: {completed} of {sent} frames whole ({lost:.1%} lost), "
            f"{output.retransmitted - retransmitted0} packets sent again"
        )
        assert sent >= LOSS_SECONDS * FPS * 0.8
        assert output.retransmitted > retransmitted0
        assert lost <= 0.02
    finally:
        await viewer.close()


RENDITION_LIMIT_KBIT = 400


def session_in(node: Node, ns: Namespace) -> ViewerSession:
    """The node's session of the viewer in ``ns``."""
    for session in node.stage._viewers:
        if any(pair.remote.host == ns.address for pair in nominated_pairs(session.pc)):
            return session
    raise AssertionError("no viewer session in the namespace")


async def test_a_limited_link_gets_the_lower_rendition_and_the_original_back(
    ns: Namespace, node: Node, noisy_show: tuple[dict[str, str], Performer]
) -> None:
    show, _ = noisy_show
    viewer = NamespaceViewer(ns, node.url, show["code"])
    await viewer.start()
    free = await start_viewer(node, show["code"], decode=False)  # on the host, unshaped
    try:
        await eventually(lambda: viewer.report.video >= 20 and free.video.frames >= 20, 20)
        session = session_in(node, ns)
        (other,) = [s for s in node.stage._viewers if s is not session]
        output = session.viewer.video.output
        assert output is not None
        first, last = await viewer.window(2)
        rate = output.sent_bytes
        await viewer.window(1)
        print(f"original: {(output.sent_bytes - rate) * 8 / 1000:.0f} kbit/s")
        ns.shape(rate_kbit=RENDITION_LIMIT_KBIT)
        loop = asyncio.get_running_loop()
        shaped_at = loop.time()
        await eventually(lambda: session.picture != "original", 5, "the lower rendition")
        switched = loop.time() - shaped_at
        print(f"at {RENDITION_LIMIT_KBIT} kbit/s: {session.picture} after {switched:.1f} s")
        await viewer.window(1)  # what was queued on the link before the switch drains
        sent = output.sent_bytes
        first, last = await viewer.window(4)
        print(f"sent on {session.picture}: {(output.sent_bytes - sent) * 2 / 1000:.0f} kbit/s")
        reports = [r for r in viewer.history if first.t <= r.t <= last.t]
        gap, since = 0.0, reports[0]
        for report in reports[1:]:
            if report.video > since.video:
                since = report
            gap = max(gap, report.t - since.t)
        print(f"on {session.picture}: {last.video - first.video} frames in 4 s, gap {gap:.1f} s")
        rendition = session.viewer.broadcast.rendition(session.picture)
        assert rendition is not None
        print(
            f"{session.picture}: {rendition.frames_in} frames in, {rendition.frames_out} out, "
            f"{rendition.dropped} dropped, {session.viewer.video.dropped} skipped for the viewer"
        )
        # Frames keep coming (the issue: no gap over 1 s); how many of them arrive whole varies
        # from run to run on the shared machine (33 and 76 of 80 in the last two runs; the
        # rendition sent 148-190 kbit/s of this noisy picture, its keyframes the link's peaks).
        assert gap <= 1.0 and last.video - first.video >= 4 * FPS * 0.25
        assert other.picture == "original"
        ns.unshape()
        lifted_at = loop.time()
        await eventually(lambda: session.picture == "original", 20, "the original back")
        print(f"unlimited: the original back after {loop.time() - lifted_at:.1f} s")
        assert other.picture == "original"
    finally:
        await viewer.close()
        await free.close()
        await free.session.close()
