"""FrameAssembler: frames complete on their last packet, in order, whatever the packets' order."""

from __future__ import annotations

from media.assembler import MAX_WAIT_FRAMES, FrameAssembler, Piece


def video_frame(seq: int, timestamp: int, parts: list[bytes]) -> list[Piece]:
    """One frame's packets from ``seq`` on, the marker bit on the last."""
    return [
        Piece((seq + i) % 65536, timestamp, i == len(parts) - 1, part)
        for i, part in enumerate(parts)
    ]


def feed(assembler: FrameAssembler, pieces: list[Piece]) -> list[list[tuple[int, bytes]]]:
    """What each packet completed, packet by packet."""
    out = []
    for piece in pieces:
        pli, frames = assembler.add(piece)
        assert not pli
        out.append(frames)
    return out


def test_a_frame_is_complete_at_its_marker_without_waiting_for_the_next() -> None:
    assembler = FrameAssembler(video=True)
    assert feed(assembler, video_frame(10, 3000, [b"a", b"b", b"c"])) == [[], [], [(3000, b"abc")]]
    assert feed(assembler, video_frame(13, 6000, [b"d"])) == [[(6000, b"d")]]


def test_reordered_packets_complete_the_frame_when_the_last_missing_one_arrives() -> None:
    assembler = FrameAssembler(video=True)
    first, second, third = video_frame(100, 0, [b"a", b"b", b"c"])
    # The marker packet first: nothing is complete while the middle one is missing.
    assert feed(assembler, [first, third, second]) == [[], [], [(0, b"abc")]]


def test_a_gap_holds_the_frames_behind_it_until_the_retransmission_fills_it() -> None:
    assembler = FrameAssembler(video=True)
    one = video_frame(1, 3000, [b"a", b"b"])
    two = video_frame(3, 6000, [b"c", b"d"])
    three = video_frame(5, 9000, [b"e"])
    assert feed(assembler, [one[0], *two, *three]) == [[], [], [], []]
    # The lost packet comes back (after a NACK): three frames at once, oldest first.
    assert feed(assembler, [one[1]]) == [[(3000, b"ab"), (6000, b"cd"), (9000, b"e")]]
    # A second copy of it, late, is dropped.
    assert feed(assembler, [one[1]]) == [[]]


def test_sequence_numbers_wrap() -> None:
    assembler = FrameAssembler(video=True)
    pieces = video_frame(65534, 3000, [b"a", b"b", b"c", b"d"])
    assert feed(assembler, pieces)[-1] == [(3000, b"abcd")]
    assert feed(assembler, video_frame(2, 6000, [b"e"])) == [[(6000, b"e")]]


def test_without_a_marker_a_frame_ends_where_the_next_timestamp_starts() -> None:
    assembler = FrameAssembler(video=True)
    unmarked = [Piece(1, 3000, False, b"a"), Piece(2, 3000, False, b"b")]
    assert feed(assembler, [*unmarked, Piece(3, 6000, True, b"c")]) == [
        [],
        [],
        [(3000, b"ab"), (6000, b"c")],
    ]


def test_padding_between_frames_makes_no_frame() -> None:
    assembler = FrameAssembler(video=True)
    feed(assembler, video_frame(1, 3000, [b"a"]))
    padding = [Piece(2, 3000, False, b""), Piece(3, 3000, False, b"")]
    assert feed(assembler, [*padding, *video_frame(4, 6000, [b"b"])]) == [[], [], [(6000, b"b")]]


def test_a_gap_that_never_closes_is_given_up_with_a_keyframe_request() -> None:
    assembler = FrameAssembler(video=True, capacity=16)
    feed(assembler, video_frame(0, 0, [b"a"]))
    # Packet 1 is lost for good; the packets after it wait until the window is full.
    assert feed(assembler, video_frame(2, 3000, [b"b", b"c"])) == [[], []]
    pli, frames = assembler.add(Piece(17, 6000, False, b"x"))  # may be mid-frame: not handed on
    assert (pli, frames) == (True, [])
    assert assembler.add(Piece(18, 6000, True, b"y")) == (False, [])
    assert feed(assembler, video_frame(19, 9000, [b"z"])) == [[(9000, b"z")]]


def test_a_restarted_sequence_is_followed_with_a_keyframe_request() -> None:
    assembler = FrameAssembler(video=True)
    feed(assembler, video_frame(5000, 0, [b"a"]))
    assert assembler.add(Piece(100, 9000, True, b"b")) == (True, [(9000, b"b")])


def test_audio_packets_go_on_as_they_come_and_a_late_one_is_dropped() -> None:
    assembler = FrameAssembler(video=False)
    # The marker bit starts a talkspurt in audio: it ends nothing.
    assert assembler.add(Piece(7, 960, True, b"a")) == (False, [(960, b"a")])
    assert assembler.add(Piece(9, 2880, False, b"c")) == (False, [(2880, b"c")])
    assert assembler.add(Piece(8, 1920, False, b"b")) == (False, [])
    assert assembler.add(Piece(10, 3840, False, b"d")) == (False, [(3840, b"d")])


def test_a_gap_whose_retransmission_never_comes_is_given_up_after_some_frames() -> None:
    assembler = FrameAssembler(video=True)
    assembler.add(Piece(65535, 0, True, b"z"))  # the frame before, whole: the stream's start
    broken = video_frame(0, 3000, [b"a", b"b"])
    assert assembler.add(broken[1]) == (False, [])  # the lost first packet never comes
    waiting = MAX_WAIT_FRAMES - 1  # frames behind the broken one before it is given up
    whole = [video_frame(2 + n, 3000 * (n + 2), [bytes([65 + n])])[0] for n in range(waiting)]
    for piece in whole[:-1]:
        assert assembler.add(piece) == (False, [])  # they wait, for the resend
    asked, frames = assembler.add(whole[-1])
    assert asked  # a keyframe is asked for: the broken frame is dropped, those behind go on
    assert frames == [(p.timestamp, p.data) for p in whole]
    assert assembler.add(broken[0]) == (False, [])  # its resend, too late: nothing
    after = video_frame(2 + waiting, 99000, [b"!"])[0]
    assert assembler.add(after) == (False, [(99000, b"!")])


def test_a_frame_whose_last_packet_never_comes_costs_that_frame_only() -> None:
    assembler = FrameAssembler(video=True)
    assembler.add(Piece(65535, 0, True, b"z"))
    broken = video_frame(0, 3000, [b"a", b"b"])  # its marker packet (seq 1) never comes
    assert assembler.add(broken[0]) == (False, [])
    whole = [
        video_frame(2 + n, 3000 * (n + 2), [bytes([65 + n])])[0] for n in range(MAX_WAIT_FRAMES)
    ]
    results = [assembler.add(piece) for piece in whole]
    assert any(asked for asked, _ in results)  # given up, with a keyframe asked for
    assert [f for r in results for f in r[1]] == [(p.timestamp, p.data) for p in whole]
