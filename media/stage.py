"""This node's stage: a broadcast per show, and the peer connections of performers and viewers.

Signaling hands SDP in and out; everything WebRTC stays here. Performers offer and the stage
answers; for viewers the stage offers (it knows the performer's codec) and the viewer answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiortc import RTCIceServer, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc import sdp as aiortc_sdp

from media.adaptation import PictureChooser
from media.codecs import prefer_codec
from media.direct import DirectOutput, ViewerRtcp
from media.forward import Broadcast, Ingest, Viewer
from media.frame import EncodedFrame
from media.hall import HallSound
from media.ice import rtc_configuration
from media.recorder import Recorder, Written
from media.rendition import ORIGINAL
from media.seams import drop_empty_datagrams, release_peer, take_rtcp
from rooms.bus import Message
from rooms.relay import EventRelay, Unfollow
from rooms.supervise import retrying
from rooms.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

# A peer that has not connected by then is closed: an offer without usable candidates would
# otherwise keep its sockets (and a viewer's place in the audience) for ever.
CONNECT_TIMEOUT = 30.0
FORWARDABLE = {"video/vp8": "video/VP8", "video/h264": "video/H264", "audio/opus": "audio/opus"}
MAX_SDP_BYTES = 32 * 1024
# The sound alone tries the original again only after this long clean: a failed try is heard.
SOUND_UP_AFTER = 30.0


class StageError(Exception):
    """A publish or watch request that cannot be served (signaling/errors.py names it)."""


class InvalidSdp(StageError):
    """The SDP could not be parsed or has the wrong shape."""


class UnsupportedMedia(StageError):
    """Codecs or tracks this service cannot forward (e.g. AV1, HEVC, three video tracks)."""


class NotLive(StageError):
    """Nobody is performing on this show right now."""


async def close_peer(pc: RTCPeerConnection) -> None:
    """Close a peer connection even if the caller is cancelled meanwhile.

    aiortc's ``close()`` makes later callers await one shared future; a caller cancelled while
    waiting cancels that future, the first ``close()`` then fails and every later one waits forever.
    Shielding keeps a cancelled caller from reaching into aiortc's state. Once closed, the peer
    is freed at once rather than by the cyclic collector (:func:`media.seams.release_peer`).
    """
    await asyncio.shield(pc.close())
    release_peer(pc)


def _weakly(method: Callable[..., object]) -> Callable[..., None]:
    """A bound method held weakly, so what the viewer's peer keeps makes no cycle through the
    session (freed by reference counting, not the cyclic collector)."""
    ref = weakref.WeakMethod(method)

    def call(*args: object) -> None:
        if (bound := ref()) is not None:
            bound(*args)

    return call


def parse_offer(text: str) -> aiortc_sdp.SessionDescription:
    """Parse an SDP offer, refusing what is malformed or oversized."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidSdp("the offer is empty")
    if len(text.encode()) > MAX_SDP_BYTES:
        raise InvalidSdp("the offer is too large")
    try:
        parsed = aiortc_sdp.SessionDescription.parse(text)
    except Exception as exc:
        raise InvalidSdp("the offer is not valid SDP") from exc
    if not parsed.media:
        raise InvalidSdp("the offer has no media")
    for media in parsed.media:
        # aiortc would accept these and fail later, out of sight, when it connects.
        if media.kind in ("audio", "video") and media.port != 0:
            if media.dtls is None or not media.dtls.fingerprints:
                raise InvalidSdp("the offer has no DTLS fingerprint")
            if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
                raise InvalidSdp("the offer has no ICE credentials")
    # A bundle naming a section the offer does not have (a mangled m= line, say) leaves aiortc
    # with a transceiver without transport: it fails when it connects, and again when closed.
    mids = {media.rtp.muxId for media in parsed.media}
    for group in parsed.group:
        if group.semantic == "BUNDLE" and any(mid not in mids for mid in group.items):
            raise InvalidSdp("the offer's BUNDLE group names a media section it does not have")
    return parsed


def check_publish_offer(offer: aiortc_sdp.SessionDescription) -> dict[str, str]:
    """The codec the performer will send per kind; UnsupportedMedia if we cannot forward it."""
    chosen: dict[str, str] = {}
    halls = 0
    for media in offer.media:
        if _is_hall(media):
            halls += 1
            if halls > 1:
                raise UnsupportedMedia("only one receive-only audio section (the audience sound)")
            continue
        if media.kind not in ("audio", "video"):
            continue
        if media.direction not in (None, "sendonly", "sendrecv"):
            # a player's offer on the performer's way in: nothing would come to forward
            raise UnsupportedMedia(f"the offer's {media.kind} is {media.direction}: send it")
        if media.kind in chosen:
            raise UnsupportedMedia(f"only one {media.kind} track can be published")
        usable = [
            FORWARDABLE[c.mimeType.lower()]
            for c in media.rtp.codecs
            if c.mimeType.lower() in FORWARDABLE and c.mimeType.lower().startswith(media.kind)
        ]
        if not usable:
            offered = sorted({c.mimeType for c in media.rtp.codecs if "rtx" not in c.mimeType})
            want = "VP8 or H.264" if media.kind == "video" else "Opus"
            raise UnsupportedMedia(f"{media.kind} must be {want}; offered {', '.join(offered)}")
        chosen[media.kind] = usable[0]
    if not chosen:
        raise UnsupportedMedia("the offer has no audio or video")
    return chosen


def _is_hall(media: aiortc_sdp.MediaDescription) -> bool:
    """A receive-only audio section in a performer's offer asks for the audience sound."""
    return media.kind == "audio" and media.direction == "recvonly"


def check_watch_offer(offer: aiortc_sdp.SessionDescription, codecs: dict[str, str]) -> None:
    """A viewer's offer must take one video and one audio track in the performer's codecs."""
    kinds = [m.kind for m in offer.media if m.kind in ("audio", "video")]
    if sorted(kinds) != ["audio", "video"]:
        raise UnsupportedMedia("offer one video and one audio track to receive")
    for media in offer.media:
        want = codecs.get(media.kind)
        if want and not any(c.mimeType.lower() == want.lower() for c in media.rtp.codecs):
            raise UnsupportedMedia(f"this show sends {media.kind} as {want}; the offer lacks it")


@dataclass(eq=False)
class Publication:
    """A performer's session feeding a show's broadcast: a peer connection (browser, WHIP) or
    frames pushed by an ingest of ours (RTMP, the demo)."""

    show_id: str
    pc: RTCPeerConnection | None
    ingest: Ingest
    codecs: dict[str, str]
    answer_sdp: str = ""
    on_state: Callable[[Publication, str], None] | None = None
    on_warning: Callable[[Publication, str, str], None] | None = None
    closed: bool = False
    hall: Viewer | None = None  # the audience sound sent back to the performer, if asked for

    def push(self, frame: EncodedFrame) -> None:
        """One encoded frame from an ingest that is not a peer connection."""
        self.ingest.push(frame)

    def warn(self, code: str, message: str) -> None:
        """Something the performer must fix (e.g. B-frames from the encoder)."""
        if self.on_warning is not None:
            self.on_warning(self, code, message)

    async def close(self) -> None:
        """End this performer session (viewers stay and wait for the next one)."""
        if self.closed:
            return
        self.closed = True
        self.ingest.close()
        if self.hall is not None:
            self.hall.close()
        if self.pc is not None:
            await close_peer(self.pc)
        elif self.on_state is not None:
            self.on_state(self, "closed")


@dataclass(eq=False)
class ViewerSession:
    """A viewer's peer connection receiving a show's broadcast."""

    show_id: str
    pc: RTCPeerConnection
    viewer: Viewer
    player: bool = False  # a standard player (WHEP), not seated in a lobby
    edge: bool = False  # another node of the deployment, pulling the show for its viewers
    hall: Viewer | None = None  # the audience sound, for viewers who asked for it
    offer_sdp: str = ""
    answer_sdp: str = ""
    closed: bool = field(default=False)
    rtcp: ViewerRtcp | None = None  # the viewer's RTCP, when sent to directly
    # The picture: "auto" (chosen from the viewer's reports), "best" (the original always) or
    # "low" (the smallest rendition); told of each switch with its reason.
    picture_mode: str = "auto"
    on_picture: Callable[[str, str], object] | None = None
    chooser: PictureChooser | None = None
    _reason: str = "chosen"
    _sent: tuple[float, int] | None = None  # (when, bytes) at the last report
    # The sound, while the viewer listens to it alone in ``auto``: the original, or a lighter
    # one made once per show when the link cannot carry even the original sound.
    on_sound: Callable[[str, str], object] | None = None
    sound_chooser: PictureChooser | None = None
    _sound_reason: str = "chosen"
    _sent_sound: tuple[float, int] | None = None

    PICTURE_MODES = ("auto", "best", "low")
    # The original's rates until the performer's are measured (docs/benchmarks.md's stream).
    VIDEO_RATE_GUESS = 1_500_000.0
    AUDIO_RATE_GUESS = 64_000.0

    def __post_init__(self) -> None:
        self.viewer.on_picture = _weakly(self._picture_changed)
        self.viewer.on_sound = _weakly(self._sound_changed)

    @property
    def sound(self) -> str:
        """The sound sent now: ``original`` or the lighter sound's name."""
        return self.viewer.sound

    def _sound_changed(self, layer: str) -> None:
        if self.on_sound is not None:
            self.on_sound(layer, self._sound_reason)

    @property
    def picture(self) -> str:
        """The picture sent now: ``original`` or a rendition's name."""
        return self.viewer.picture

    def choose_picture(self, mode: str) -> None:
        """``auto``, ``best`` or ``low`` (ValueError for anything else)."""
        if mode not in self.PICTURE_MODES:
            raise ValueError(f"no picture mode {mode!r}")
        self.picture_mode = mode
        self.chooser = None
        layers = self.viewer.broadcast.layers()
        self._reason = "chosen"
        if mode == "best":
            self.viewer.choose_picture(ORIGINAL)
        elif mode == "low":
            self.viewer.choose_picture(layers[-1])

    def _picture_changed(self, layer: str) -> None:
        if self.on_picture is not None:
            self.on_picture(layer, self._reason)

    def adapt(self, output: DirectOutput) -> None:
        """A receiver report of one of this viewer's outputs: in ``auto``, the picture follows
        what the link carries (media/adaptation.py)."""
        video = self.viewer.video
        if self.edge:
            return  # another node's feed carries the original for all of its viewers
        now = asyncio.get_running_loop().time()
        if output is self.viewer.audio.output:
            self._adapt_sound(output, now)
            return
        if output is not video.output:
            return
        last, self._sent = self._sent, (now, output.sent_bytes)
        if self.picture_mode != "auto" or not video.sending or last is None or now <= last[0]:
            return
        broadcast = self.viewer.broadcast
        layers = broadcast.layers()
        if len(layers) < 2:
            return
        if self.chooser is None or len(self.chooser.bitrates) != len(layers):
            original = broadcast.bitrate("video") or self.VIDEO_RATE_GUESS
            rates = [original] + [float(broadcast.ladder[name].bitrate) for name in layers[1:]]
            start = layers.index(video.target) if video.target in layers else 0
            self.chooser = PictureChooser(rates, start=start)
        before = self.chooser.current
        rung = _reported(self.chooser, output, now, last)
        if rung is not None:
            self._reason = "weak_link" if rung > before else "link_recovered"
            log.info("stage.picture", show=self.show_id, picture=layers[rung], reason=self._reason)
            self.viewer.choose_picture(layers[rung])

    def _adapt_sound(self, output: DirectOutput, now: float) -> None:
        """The sound alone on a link too weak for it steps down to the lighter sound, and back
        up by trying, as the picture does (the picture on again brings the original back)."""
        last, self._sent_sound = self._sent_sound, (now, output.sent_bytes)
        broadcast = self.viewer.broadcast
        if self.picture_mode != "auto" or self.viewer.video_on or not broadcast.sounds:
            return
        if last is None or now <= last[0]:
            return
        layers = [ORIGINAL, *broadcast.sounds]
        if self.sound_chooser is None:
            original = broadcast.bitrate("audio") or self.AUDIO_RATE_GUESS
            rates = [original] + [float(broadcast.sounds[name].bitrate) for name in layers[1:]]
            target = self.viewer.audio.target
            start = layers.index(target) if target in layers else 0
            self.sound_chooser = PictureChooser(rates, start=start, up_after=SOUND_UP_AFTER)
        before = self.sound_chooser.current
        rung = _reported(self.sound_chooser, output, now, last)
        if rung is not None:
            self._sound_reason = "weak_link" if rung > before else "link_recovered"
            reason = self._sound_reason
            log.info("stage.sound", show=self.show_id, sound=layers[rung], reason=reason)
            self.viewer.choose_sound(layers[rung])

    @property
    def video(self) -> bool:
        """Whether the viewer gets the picture (False: the show's sound only)."""
        return self.viewer.video_on

    def send_video(self, on: bool) -> None:
        """The picture and the sound, or the sound alone; the picture resumes at a keyframe on
        the same RTP stream (its sequence numbers continue), so nothing is negotiated again.
        With the picture the original sound comes back too."""
        self.viewer.send_video(on)
        if on:
            self.sound_chooser = None
            self._sent_sound = None
            if self.viewer.audio.target != ORIGINAL:
                self._sound_reason = "chosen"
                self.viewer.choose_sound(ORIGINAL)

    async def accept(self, answer_sdp: str) -> None:
        """Apply the viewer's answer."""
        if not isinstance(answer_sdp, str) or not answer_sdp.strip():
            raise InvalidSdp("the answer is empty")
        try:
            aiortc_sdp.SessionDescription.parse(answer_sdp)
            await self.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))
        except StageError:
            raise
        except Exception as exc:
            raise InvalidSdp(f"the answer was refused: {exc}") from exc

    async def close(self) -> None:
        """Stop forwarding to this viewer and close its peer connection."""
        if self.closed:
            return
        self.closed = True
        self.viewer.close()
        if self.hall is not None:
            self.hall.close()
        await close_peer(self.pc)


def _reported(
    chooser: PictureChooser, output: DirectOutput, now: float, last: tuple[float, int]
) -> int | None:
    """One receiver report of ``output`` to ``chooser``, with the rate sent since the last one
    (``last``: when, and the bytes sent by then); the rung to switch to, if any."""
    sent_bps = (output.sent_bytes - last[1]) * 8 / (now - last[0])
    return chooser.report(
        now, fraction_lost=output.fraction_lost / 256, remb_bps=output.remb_bps, sent_bps=sent_bps
    )


@dataclass(eq=False)
class Feed:
    """This node's one copy of a show whose media enters another node (its origin): a peer that
    receives the show's video and audio there, feeding this node's broadcast as a performer's
    session would, for every viewer of this node."""

    show_id: str
    pc: RTCPeerConnection
    codecs: dict[str, str]
    origin: str  # the origin node's id
    offer_sdp: str = ""
    publication: Publication | None = None  # once the origin's answer is in
    closed: bool = False

    @property
    def frames(self) -> int:
        """Video frames received from the origin so far."""
        if self.publication is None:
            return 0
        receivers = self.publication.ingest.receivers
        return sum(r.frames for r in receivers if r.kind == "video")

    @property
    def failed(self) -> bool:
        """Whether the link to the origin is gone (closed, failed or refused)."""
        return self.closed or self.pc.connectionState in ("failed", "closed")

    async def close(self) -> None:
        """Stop pulling: the ingest ends (viewers stay and wait), the peer closes."""
        if self.closed:
            return
        self.closed = True
        if self.publication is not None:
            await self.publication.close()
        else:
            await close_peer(self.pc)


class _HallFeed:
    """The show's reaction totals to its audience sound."""

    def __init__(self, sound: HallSound) -> None:
        self.sound = sound

    def deliver(self, event: Message, text: str) -> None:
        if event.get("type") == "reactions":
            self.sound.add(event.get("counts", {}), asyncio.get_running_loop().time())


class _CaptionFeed:
    """The show's caption lines to its recording, at the recording's time."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def deliver(self, event: Message, text: str) -> None:
        if event.get("type") == "caption":
            self.recorder.caption(str(event.get("text", "")))


def direct_output(
    transceiver: RTCRtpTransceiver, offer: aiortc_sdp.SessionDescription
) -> DirectOutput:
    """A direct output for a viewer transceiver, with what our offer negotiated for it."""
    media = next(m for m in offer.media if m.rtp.muxId == transceiver.mid)
    payload_type = media.rtp.codecs[0].payloadType
    if payload_type is None:
        raise InvalidSdp("our offer has no payload type")  # cannot happen with aiortc's offers
    return DirectOutput(
        transceiver.sender,
        mid=transceiver.mid or "",
        payload_type=payload_type,
        extension_ids={ext.uri: ext.id for ext in media.rtp.headerExtensions},
    )


class Stage:
    """Every broadcast of this node, and the peer connections attached to them."""

    def __init__(
        self,
        ice_servers: Sequence[RTCIceServer] = (),
        *,
        direct: bool = True,
        relay: EventRelay | None = None,
    ) -> None:
        self._ice_servers = list(ice_servers)
        # The show's events on this node: the audience sound follows its reaction totals.
        self._relay = relay
        self._hall_feeds: dict[str, asyncio.Task[Unfollow]] = {}
        # Direct output (media/direct.py) sends viewers' packets without aiortc's sender loop.
        self._direct = direct
        self._broadcasts: dict[str, Broadcast] = {}
        self._publications: dict[str, Publication] = {}
        self._feeds: dict[str, Feed] = {}  # shows pulled from their origin node
        self._viewers: set[ViewerSession] = set()
        self._peers: set[RTCPeerConnection] = set()
        self._halls: dict[str, tuple[Broadcast, HallSound]] = {}
        self._deadlines: set[asyncio.Task[None]] = set()
        self._recorders: dict[str, tuple[Recorder, asyncio.Task[Unfollow] | None]] = {}

    def record(self, show_id: str, directory: Path, retention: float) -> Recorder | None:
        """Record the show from now on (once per show, whoever performs; pauses cut), with the
        captions typed meanwhile; None if nobody performs it here."""
        entry = self._recorders.get(show_id)
        if entry is not None:
            return entry[0]
        codecs = self.codecs(show_id)
        if codecs is None or show_id not in self._publications:
            return None
        broadcast = self.broadcast(show_id)
        recorder = Recorder(
            directory, codecs, request_keyframe=broadcast.request_keyframe, retention=retention
        )
        recorder.start()
        broadcast.recorder = recorder
        task = None
        relay = self._relay
        if relay is not None:
            feed = _CaptionFeed(recorder)
            follow = retrying(
                lambda: relay.follow_show(show_id, feed, performer=True),
                "stage.caption_feed",
                show=show_id,
            )
            task = asyncio.get_running_loop().create_task(follow, name=f"captions-{show_id}")
        self._recorders[show_id] = (recorder, task)
        log.info("stage.recording", show=show_id, media=recorder.media)
        return recorder

    @property
    def recording(self) -> set[str]:
        """Shows being recorded on this node."""
        return set(self._recorders)

    async def stop_recording(self, show_id: str) -> Written | None:
        """Finish the show's recording (its file and captions complete); None if there is none."""
        entry = self._recorders.pop(show_id, None)
        if entry is None:
            return None
        recorder, task = entry
        broadcast = self._broadcasts.get(show_id)
        if broadcast is not None and broadcast.recorder is recorder:
            broadcast.recorder = None
        if task is not None:
            if not task.done():
                await cancel_and_wait(task)
            elif not task.cancelled() and task.exception() is None:
                await task.result()()
        written = await recorder.close()
        log.info(
            "stage.recorded",
            show=show_id,
            seconds=round(written.duration_s, 1),
            dropped=written.dropped,
            failed=written.failed,
        )
        return written

    def hall(self, show_id: str) -> Broadcast:
        """The show's audience sound: one synthesiser and encoder, fanned out to its listeners."""
        entry = self._halls.get(show_id)
        if entry is None:
            broadcast = Broadcast()
            ingest = broadcast.open_ingest()
            sound = HallSound(ingest.push, listeners=lambda: broadcast.viewers)
            sound.start()
            entry = self._halls[show_id] = (broadcast, sound)
            relay = self._relay
            if relay is not None:
                # Whoever hears the hall (the studio, viewers who asked for it, a performer on
                # OBS or RTMP), every node's reaction totals drive it while the show has one; if
                # following fails (the bus away), it is retried until it works.
                feed = _HallFeed(sound)
                follow = retrying(
                    lambda: relay.follow_show(show_id, feed, performer=True),
                    "stage.hall_feed",
                    show=show_id,
                )
                task = asyncio.get_running_loop().create_task(follow, name=f"hall-feed-{show_id}")
                self._hall_feeds[show_id] = task
        return entry[0]

    async def _stop_hall_feed(self, show_id: str) -> None:
        task = self._hall_feeds.pop(show_id, None)
        if task is None:
            return
        if not task.done():  # still retrying: nothing followed yet
            await cancel_and_wait(task)
        if task.cancelled():
            return
        if task.exception() is not None:
            log.error("stage.hall_feed_failed", show=show_id, exc_info=task.exception())
            return
        await task.result()()

    def hall_mute(self, show_id: str, muted: bool) -> bool:
        """Silence (or bring back) the show's audience sound; False if the show has none."""
        entry = self._halls.get(show_id)
        if entry is None:
            return False
        entry[1].muted = muted
        return True

    def hall_sound(self, show_id: str) -> HallSound | None:
        """The show's audience sound, if it has one (tests and metrics)."""
        entry = self._halls.get(show_id)
        return None if entry is None else entry[1]

    def broadcast(self, show_id: str) -> Broadcast:
        """The show's broadcast on this node, made on first use."""
        broadcast = self._broadcasts.get(show_id)
        if broadcast is None:
            broadcast = self._broadcasts[show_id] = Broadcast()
        return broadcast

    def viewers(self, show_id: str) -> int:
        """Viewers of the show on this node."""
        broadcast = self._broadcasts.get(show_id)
        return 0 if broadcast is None else broadcast.viewers

    def players(self, show_id: str) -> int:
        """Viewers of the show on this node that watch with a standard player (WHEP), once their
        media connects (an offer that never connects counts for nobody)."""
        return sum(
            1
            for v in self._viewers
            if v.show_id == show_id and v.player and v.pc.connectionState == "connected"
        )

    def live(self, show_id: str) -> bool:
        """Whether a performer is connected to the show on this node."""
        return show_id in self._publications

    def codecs(self, show_id: str) -> dict[str, str] | None:
        """The codecs the show's performer sends, while one is publishing here or a feed from
        the show's origin node brings its media."""
        publication = self._publications.get(show_id)
        if publication is not None:
            return dict(publication.codecs)
        feed = self._feeds.get(show_id)
        if feed is not None and feed.publication is not None and not feed.failed:
            return dict(feed.codecs)
        return None

    @property
    def watched(self) -> set[str]:
        """Shows with viewers on this node (other nodes pulling a show are no viewers)."""
        return {s.show_id for s in self._viewers if not s.edge and not s.closed}

    def watching(self, show_id: str) -> int:
        """Viewers of the show on this node (other nodes pulling it are no viewers)."""
        return sum(1 for s in self._viewers if s.show_id == show_id and not s.edge and not s.closed)

    def feed(self, show_id: str) -> Feed | None:
        """The feed of the show from its origin node, if this node pulls it."""
        return self._feeds.get(show_id)

    @property
    def feeds(self) -> list[Feed]:
        """Every show this node pulls from another node."""
        return list(self._feeds.values())

    @property
    def edge_stream_total(self) -> int:
        """Streams to other nodes pulling shows from this one, every show together."""
        return sum(1 for s in self._viewers if s.edge and not s.closed)

    def edge_streams(self, show_id: str) -> int:
        """How many other nodes pull the show from this one (one stream each)."""
        return sum(1 for s in self._viewers if s.show_id == show_id and s.edge and not s.closed)

    async def pull(self, show_id: str, codecs: dict[str, str], origin: str) -> Feed:
        """A feed of the show from its origin node: this node's offer to receive the show's video
        and audio once (``feed.offer_sdp``, answered by the origin as a player's); media flows
        into this node's broadcast once :meth:`feed_from` applies the answer."""
        pc = self._new_peer()
        try:
            for kind in ("video", "audio"):
                mime_type = codecs.get(kind)
                if mime_type is None:
                    raise UnsupportedMedia(f"the show's origin names no {kind} codec")
                prefer_codec(pc.addTransceiver(kind, direction="recvonly"), mime_type)
            await pc.setLocalDescription(await pc.createOffer())
            drop_empty_datagrams(pc)
        except Exception:
            await close_peer(pc)
            raise
        return Feed(show_id, pc, dict(codecs), origin, offer_sdp=pc.localDescription.sdp)

    async def feed_from(self, feed: Feed, answer_sdp: str) -> None:
        """Apply the origin's answer: the feed replaces whatever fed the broadcast before (an
        older feed), unless a performer publishes on this node now."""
        try:
            aiortc_sdp.SessionDescription.parse(answer_sdp)
            await feed.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))
        except Exception as exc:
            await feed.close()
            raise InvalidSdp(f"the origin's answer was refused: {exc}") from exc
        if feed.closed or feed.show_id in self._publications:
            await feed.close()  # the performer came to this node meanwhile
            return
        # No await from here until the taps are in (media cannot flow before DTLS completes).
        previous = self._feeds.get(feed.show_id)
        ingest = self.broadcast(feed.show_id).open_ingest()
        for transceiver in feed.pc.getTransceivers():
            ingest.attach(transceiver.receiver)
        feed.publication = Publication(feed.show_id, feed.pc, ingest, feed.codecs)
        self._feeds[feed.show_id] = feed
        if previous is not None and previous is not feed:
            await previous.close()

    async def stop_feed(self, feed: Feed) -> None:
        """Stop pulling the show (no viewer left here, or its origin moved)."""
        if self._feeds.get(feed.show_id) is feed:
            del self._feeds[feed.show_id]
        await feed.close()

    @property
    def viewer_total(self) -> int:
        """Viewers of every show on this node (other nodes pulling a show are not viewers)."""
        edges = sum(1 for s in self._viewers if s.edge and not s.closed)
        return sum(b.viewers for b in self._broadcasts.values()) - edges

    @property
    def live_count(self) -> int:
        """Shows with a performer on this node."""
        return len(self._publications)

    @property
    def peer_count(self) -> int:
        """Open peer connections (for metrics and leak checks)."""
        return len(self._peers)

    def _new_peer(self) -> RTCPeerConnection:
        # max-bundle: every section on one transport (see media.ice.rtc_configuration)
        pc = RTCPeerConnection(rtc_configuration(self._ice_servers, max_bundle=True))
        self._peers.add(pc)
        connected = False

        async def deadline() -> None:
            await asyncio.sleep(CONNECT_TIMEOUT)
            if not connected and pc.connectionState != "closed":
                log.info("stage.peer_never_connected", state=pc.connectionState)
                await close_peer(pc)  # its owner cleans up on "closed", as for any other close

        task = asyncio.get_running_loop().create_task(deadline(), name="peer-connect-deadline")
        self._deadlines.add(task)
        task.add_done_callback(self._deadlines.discard)

        @pc.on("connectionstatechange")
        async def forget() -> None:
            nonlocal connected
            if pc.connectionState == "connected":
                connected = True
                task.cancel()
            elif pc.connectionState == "closed":
                self._peers.discard(pc)
                release_peer(pc)  # however it closed (aiortc closes it when the far end does)
                if task is not asyncio.current_task():
                    task.cancel()

        return pc

    async def publish(
        self,
        show_id: str,
        offer_sdp: str,
        on_state: Callable[[Publication, str], None] | None = None,
    ) -> Publication:
        """Answer a performer's offer; a newer performer replaces the current one (only once
        the new offer is answered: a bad offer never cuts off the performer on air)."""
        codecs = check_publish_offer(parse_offer(offer_sdp))
        pc = self._new_peer()
        hall: Viewer | None = None
        receiving = []
        try:
            # Transceivers in the offer's order, as aiortc pairs them with its sections by kind.
            # Only the chosen codec per kind: the performer then sends exactly what viewers get.
            for media in parse_offer(offer_sdp).media:
                if _is_hall(media):
                    hall = self.hall(show_id).add_viewer()
                    hall.video.stop()  # the hall is sound only
                    prefer_codec(pc.addTransceiver(hall.audio, direction="sendonly"), "audio/opus")
                elif media.kind in codecs:
                    transceiver = pc.addTransceiver(media.kind, direction="recvonly")
                    prefer_codec(transceiver, codecs[media.kind])
                    receiving.append(transceiver)
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            drop_empty_datagrams(pc)
            if any(t.receiver.track is None for t in receiving):
                # checked before the current performer is replaced: tapping would fail after
                raise UnsupportedMedia("the offer sends nothing on a section it offers")
        except Exception as exc:
            if hall is not None:
                hall.close()
            await close_peer(pc)
            if isinstance(exc, StageError):
                raise
            raise InvalidSdp(f"the offer cannot be answered: {exc}") from exc
        # No await from here until the taps are in: media cannot flow before DTLS completes.
        previous = self._publications.pop(show_id, None)
        ingest = self.broadcast(show_id).open_ingest()
        for transceiver in receiving:
            ingest.attach(transceiver.receiver)  # nothing of the performer's gets decoded
        feed = self._feeds.pop(show_id, None)  # the show's media enters here now
        publication = Publication(show_id, pc, ingest, codecs, hall=hall)
        publication.answer_sdp = pc.localDescription.sdp
        self._publications[show_id] = publication

        @pc.on("connectionstatechange")
        async def state_changed() -> None:
            state = pc.connectionState
            if state in ("failed", "closed") and self._publications.get(show_id) is publication:
                del self._publications[show_id]
                publication.ingest.close()
                if state == "failed":
                    await close_peer(pc)
            if on_state is not None:
                on_state(publication, state)

        if previous is not None:
            log.info("stage.performer_replaced", show=show_id)
            await previous.close()
        if feed is not None:
            await feed.close()
        return publication

    async def publish_frames(
        self,
        show_id: str,
        codecs: dict[str, str],
        on_state: Callable[[Publication, str], None] | None = None,
        on_warning: Callable[[Publication, str, str], None] | None = None,
    ) -> Publication:
        """A publication fed with encoded frames (RTMP); it is live at once."""
        previous = self._publications.pop(show_id, None)
        if previous is not None:
            log.info("stage.performer_replaced", show=show_id)
            await previous.close()
        feed = self._feeds.pop(show_id, None)  # the show's media enters here now
        if feed is not None:
            await feed.close()
        ingest = self.broadcast(show_id).open_ingest()
        publication = Publication(show_id, None, ingest, codecs, "", on_state, on_warning)
        publication.on_state = self._forget_on_close(publication, on_state)
        self._publications[show_id] = publication
        if on_state is not None:
            on_state(publication, "connected")
        return publication

    def _forget_on_close(
        self, publication: Publication, on_state: Callable[[Publication, str], None] | None
    ) -> Callable[[Publication, str], None]:
        def state(p: Publication, value: str) -> None:
            if value == "closed" and self._publications.get(p.show_id) is publication:
                del self._publications[p.show_id]
            if on_state is not None:
                on_state(p, value)

        return state

    async def unpublish(self, publication: Publication) -> None:
        """The performer stops; viewers keep their tracks for when they come back."""
        if self._publications.get(publication.show_id) is publication:
            del self._publications[publication.show_id]
        await publication.close()

    async def watch(
        self,
        show_id: str,
        offer_sdp: str | None = None,
        *,
        hall: bool = False,
        edge: bool = False,
        video: bool = True,
    ) -> ViewerSession:
        """A new viewer of a live show, in the performer's codecs.

        Without ``offer_sdp`` the stage makes the offer (``session.offer_sdp``; the viewer answers
        through :meth:`ViewerSession.accept`); with ``hall`` it has a third section carrying the
        audience sound; without ``video`` the picture is not sent until
        :meth:`ViewerSession.send_video` (the video section is negotiated all the same). With a
        viewer's receive-only offer (WHEP) the stage answers it (``session.answer_sdp``); with
        ``edge`` that offer is another node's feed of the show.
        """
        codecs = self.codecs(show_id)
        if codecs is None:
            raise NotLive("the show is not live right now")
        if offer_sdp is not None:
            check_watch_offer(parse_offer(offer_sdp), codecs)
        broadcast = self.broadcast(show_id)
        viewer = broadcast.add_viewer(direct=self._direct)
        viewer.send_video(video)
        pc = self._new_peer()
        player = offer_sdp is not None and not edge
        session = ViewerSession(show_id, pc, viewer, player=player, edge=edge)
        try:
            pictures = pc.addTransceiver(viewer.video, direction="sendonly")
            prefer_codec(pictures, codecs.get("video", "video/VP8"))
            sound = pc.addTransceiver(viewer.audio, direction="sendonly")
            prefer_codec(sound, "audio/opus")
            viewer.forward_keyframe_requests(pictures.sender)
            sections = [(broadcast, pictures, viewer.video), (broadcast, sound, viewer.audio)]
            if hall and offer_sdp is None:
                hall_broadcast = self.hall(show_id)
                session.hall = hall_broadcast.add_viewer(direct=self._direct)
                session.hall.video.stop()  # the hall is sound only
                hall_audio = pc.addTransceiver(session.hall.audio, direction="sendonly")
                prefer_codec(hall_audio, "audio/opus")
                sections.append((hall_broadcast, hall_audio, session.hall.audio))
            if offer_sdp is None:
                await pc.setLocalDescription(await pc.createOffer())
                session.offer_sdp = pc.localDescription.sdp
            else:
                await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
                await pc.setLocalDescription(await pc.createAnswer())
                session.answer_sdp = pc.localDescription.sdp
            drop_empty_datagrams(pc)
            if self._direct:
                ours = aiortc_sdp.SessionDescription.parse(pc.localDescription.sdp)
                outputs = []
                for source, transceiver, track in sections:
                    outputs.append(direct_output(transceiver, ours))
                    source.attach_direct(track, outputs[-1])
                # The viewer only receives: its RTCP is all about these outputs.
                session.rtcp = ViewerRtcp(
                    outputs, viewer.keyframe_requests(), _weakly(session.adapt)
                )
                take_rtcp(pc, session.rtcp.handle)
        except StageError:
            await session.close()
            raise
        except Exception as exc:
            await session.close()
            if offer_sdp is None:
                raise
            raise UnsupportedMedia(f"the offer cannot be answered: {exc}") from exc
        self._viewers.add(session)

        @pc.on("connectionstatechange")
        async def state_changed() -> None:
            if pc.connectionState in ("failed", "closed"):
                self._viewers.discard(session)
                await session.close()

        return session

    async def leave(self, session: ViewerSession) -> None:
        """A viewer leaves."""
        self._viewers.discard(session)
        await session.close()

    async def end(self, show_id: str) -> None:
        """The show is over: close its performer and viewers and forget its broadcast."""
        await self.stop_recording(show_id)
        publication = self._publications.pop(show_id, None)
        if publication is not None:
            await publication.close()
        for session in [v for v in self._viewers if v.show_id == show_id]:
            self._viewers.discard(session)
            await session.close()
        broadcast = self._broadcasts.pop(show_id, None)
        if broadcast is not None:
            broadcast.close()
        hall = self._halls.pop(show_id, None)
        if hall is not None:
            await self._stop_hall_feed(show_id)
            hall[0].close()
            await hall[1].close()

    async def close(self) -> None:
        """Close every peer connection of this node (shutdown)."""
        for task in list(self._deadlines):
            task.cancel()
        for show_id in list(self._recorders):
            await self.stop_recording(show_id)
        for session in list(self._viewers):
            await session.close()
        for publication in list(self._publications.values()):
            await publication.close()
        for feed in list(self._feeds.values()):
            await feed.close()
        self._feeds.clear()
        for broadcast in self._broadcasts.values():
            broadcast.close()
        for show_id in list(self._hall_feeds):
            await self._stop_hall_feed(show_id)
        for hall, sound in self._halls.values():
            hall.close()
            await sound.close()
        self._halls.clear()
        peers = list(self._peers)
        with contextlib.suppress(Exception):
            await asyncio.gather(*(close_peer(pc) for pc in peers), return_exceptions=True)
        self._viewers.clear()
        self._publications.clear()
        self._broadcasts.clear()
        self._peers.clear()
