"""The choice of a viewer's picture from its reports (media/adaptation.py), on a fake clock."""

from __future__ import annotations

from media.adaptation import PictureChooser

LADDER = [1_500_000, 500_000, 150_000]  # original, 360p, 180p


def feed(
    chooser: PictureChooser, start: float, end: float, **report: float
) -> list[tuple[float, int]]:
    """Reports once a second from ``start`` to ``end``; the switches they caused."""
    switches = []
    t = start
    while t <= end:
        if (rung := chooser.report(t, **report)) is not None:
            switches.append((t, rung))
        t += 1.0
    return switches


def test_heavy_loss_steps_down_within_two_reports_to_what_the_link_delivered() -> None:
    chooser = PictureChooser(LADDER)
    # 1.5 Mbit/s sent, 70 % lost: the link carries ~450 kbit/s, so 180p (500k does not fit).
    assert feed(chooser, 0, 3, fraction_lost=0.7, sent_bps=1_500_000) == [(1, 2)]


def test_a_falling_estimate_steps_down_one_that_fits() -> None:
    chooser = PictureChooser(LADDER)
    assert feed(chooser, 0, 2, remb_bps=700_000, sent_bps=1_500_000) == [(1, 1)]


def test_a_single_bad_report_does_not_step_down() -> None:
    chooser = PictureChooser(LADDER)
    assert chooser.report(0, fraction_lost=0.5) is None
    assert chooser.report(1, fraction_lost=0.0) is None
    assert chooser.report(2, fraction_lost=0.5) is None
    assert chooser.current == 0


def test_up_after_ten_clean_seconds_one_rung_at_a_time_faster_once_a_try_held() -> None:
    chooser = PictureChooser(LADDER, start=2)
    switches = feed(chooser, 0, 30, fraction_lost=0.0, sent_bps=150_000)
    assert switches == [(10, 1), (14, 0)]  # 10 s clean, then 4 s on 360p held


def test_a_failed_try_doubles_the_wait() -> None:
    chooser = PictureChooser(LADDER, start=1)
    assert feed(chooser, 0, 10, sent_bps=500_000) == [(10, 0)]
    # The original does not fit: down again at once, and the next try waits 20 s.
    assert feed(chooser, 11, 13, fraction_lost=0.3, sent_bps=1_500_000) == [(12, 1)]
    assert chooser.wait == 20
    assert feed(chooser, 13, 33, sent_bps=500_000) == [(33, 0)]
    assert feed(chooser, 34, 36, fraction_lost=0.3, sent_bps=1_500_000) == [(35, 1)]
    assert chooser.wait == 40


def test_the_lowest_rung_stays_however_bad() -> None:
    chooser = PictureChooser(LADDER, start=2)
    assert feed(chooser, 0, 5, fraction_lost=0.9, sent_bps=150_000) == []


def test_the_sound_waits_longer_before_trying_the_original_again() -> None:
    # The sound alone (media/stage.py, SOUND_UP_AFTER): a failed try is heard, so fewer tries.
    chooser = PictureChooser([90_000, 24_000], up_after=30)
    assert feed(chooser, 0, 2, fraction_lost=0.3, sent_bps=90_000) == [(1, 1)]
    assert feed(chooser, 2, 32, fraction_lost=0.0) == [(32, 0)]  # 30 s clean from 2
    # The try fails: the next waits twice as long (60 s, the most).
    assert feed(chooser, 33, 34, fraction_lost=0.3, sent_bps=90_000) == [(34, 1)]
    assert feed(chooser, 35, 95, fraction_lost=0.0) == [(95, 0)]
