"""Whole encoded frames out of RTP packets, each handed on the moment its last packet is in.

aiortc's jitter buffer completes a video frame only when the first packet of the next frame
arrives, which holds every frame for one frame interval at each ingest (performer → node, and
again origin → edge); for audio it waits for four more packets. A forwarder has no playout to
smooth, so :class:`FrameAssembler` completes a video frame as soon as every packet from the
frame's first to the one carrying the marker bit (RFC 3550: the last packet of a frame) is in,
and hands an audio packet on as it comes, in order. Packets stay in sequence: a video frame with a
packet missing waits for it (a retransmission after a NACK), and frames behind it wait too, until
:data:`MAX_WAIT_FRAMES` frames' ends are in beyond the gap: then the broken frame is dropped and
the stream goes on from the next frame (with a keyframe asked for).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FrameAssembler", "Piece"]

SEQ_MOD = 1 << 16
# A packet this far behind the next one expected is taken for a restarted sequence, not a late one
# (aiortc's jitter buffer uses the same figure).
MAX_MISORDER = 100
# Frames' last packets in beyond a gap (the broken frame's own among them) before the gap is given
# up: its frame is dropped and a keyframe asked for. At 30 fps ten frames are 0.3 s: time for a
# retransmission, and for a second NACK when the first or its answer was lost too (aiortc's
# receiver asks again for every packet still missing when it finds a new loss); frames behind a
# gap only wait, they are not lost. Waiting on (aiortc's buffer: up to 512 packets, seconds)
# would hold every frame behind one whose retransmissions never came.
MAX_WAIT_FRAMES = 10


@dataclass(slots=True)
class Piece:
    """One RTP packet's share of a frame: its depacketised payload."""

    seq: int
    timestamp: int
    marker: bool
    data: bytes


class FrameAssembler:
    """Frames (RTP timestamp, data) from packets in any order, in sequence order; video frames on
    their marker bit, audio packets one by one."""

    def __init__(self, *, video: bool, capacity: int = 512) -> None:
        self.video = video
        self.capacity = capacity
        self._pieces: dict[int, Piece] = {}
        self._origin: int | None = None  # first packet of the frame being assembled
        self._head = 0  # first packet not yet known to follow the origin without a gap
        self._cut = False  # the frame at the origin may have lost its first packets
        self._behind = 0  # frames' last packets in, waiting behind a gap

    def add(self, piece: Piece) -> tuple[bool, list[tuple[int, bytes]]]:
        """Take one packet; whether to ask for a keyframe (video whose packets had to be dropped)
        and the frames it completed, oldest first."""
        if self._origin is None:
            self._restart(piece.seq, cut=False)
        origin = self._origin
        assert origin is not None
        ahead = (piece.seq - origin) % SEQ_MOD
        lost_sync = False
        if ahead >= SEQ_MOD // 2:  # behind the origin
            if SEQ_MOD - ahead < MAX_MISORDER:
                return False, []  # late or repeated: its frame went on (or was given up) already
            self._restart(piece.seq, cut=False)
            lost_sync = True
        elif ahead >= self.capacity:
            # The gap never closed: what waited behind it is given up; the stream goes on from
            # here, once a frame starts.
            self._restart(piece.seq, cut=True)
            lost_sync = True
        if not self.video:
            self._origin = (piece.seq + 1) % SEQ_MOD
            return False, [(piece.timestamp, piece.data)]
        self._pieces[piece.seq] = piece
        if piece.seq == self._head:
            frames = self._complete()
            self._behind = sum(1 for p in self._pieces.values() if p.marker)
            return lost_sync, frames
        if piece.marker:
            self._behind += 1
            if self._behind >= MAX_WAIT_FRAMES:
                return True, self._skip_gap()
        return lost_sync, []

    def _skip_gap(self) -> list[tuple[int, bytes]]:
        """Give up the frame a lost packet broke: drop what is in of it, up to the first frame's
        end after the head, and go on from the frame after."""
        pieces = self._pieces
        seq = self._origin  # the broken frame's first packet (the head is where the gap is)
        assert seq is not None
        broken: int | None = None  # the broken frame's timestamp, once a packet of it is seen
        for _ in range(self.capacity):
            piece = pieces.get(seq)
            if piece is not None:
                if broken is not None and piece.timestamp != broken:
                    break  # the next frame starts here (the broken one's last packet was lost)
                broken = piece.timestamp
                del pieces[seq]
            seq = (seq + 1) % SEQ_MOD
            if piece is not None and piece.marker:
                break
        self._origin = self._head = seq
        self._cut = False  # the next frame starts here, whole
        frames = self._complete()
        self._behind = sum(1 for p in pieces.values() if p.marker)
        return frames

    def _restart(self, seq: int, *, cut: bool) -> None:
        self._pieces.clear()
        self._origin = self._head = seq
        self._cut = cut
        self._behind = 0

    def _complete(self) -> list[tuple[int, bytes]]:
        # Walk on from the head over packets that are in, closing a frame at its marker bit, or at
        # a packet of another timestamp (a sender that sets no marker: aiortc's rule, kept).
        frames: list[tuple[int, bytes]] = []
        pieces = self._pieces
        origin = self._origin
        assert origin is not None
        head = self._head
        while (piece := pieces.get(head)) is not None:
            if head != origin and piece.timestamp != pieces[origin].timestamp:
                self._take(origin, head, frames)
                origin = head
                continue
            head = (head + 1) % SEQ_MOD
            if piece.marker:
                self._take(origin, head, frames)
                origin = head
        self._origin, self._head = origin, head
        return frames

    def _take(self, start: int, end: int, frames: list[tuple[int, bytes]]) -> None:
        pieces = self._pieces
        parts = []
        timestamp = pieces[start].timestamp
        seq = start
        while seq != end:
            parts.append(pieces.pop(seq).data)
            seq = (seq + 1) % SEQ_MOD
        data = b"".join(parts)
        if self._cut:
            self._cut = False  # a frame without its start: the next one is whole
        elif data:  # padding-only packets between frames make no frame
            frames.append((timestamp, data))
