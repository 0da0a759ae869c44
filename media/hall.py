"""The audience sound: the hall's applause, laughter and bravos, made from reaction totals.

A performer on stage should hear the audience. The show's reaction totals drive a small
synthesiser (:class:`HallSynth`): every clapping viewer is a clapper whose claps are short bursts of
noise, so the sound swells with the number of people clapping (uncorrelated sources add up in
power); laughter is a pulsing, voiced "ha-ha"; a bravo is a short vowel-like call. Everything is
generated here, nothing is downloaded. The mix is encoded to Opus once per show
(:class:`HallSound`) and forwarded like any other audio, however many listen.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import struct
from array import array
from collections import deque
from collections.abc import Callable

import structlog

from media.frame import EncodedFrame

log = structlog.get_logger(__name__)

RATE = 48_000
FRAME = 960  # 20 ms
FRAME_SECONDS = FRAME / RATE
WINDOW = 2.0  # seconds of reactions that make "now"
CLAPS_PER_SECOND = 3.0  # how often one person claps
CLICKS_PER_CLAPPER = 1.5  # clicks a second one clapping viewer sends (the limit is 2)
MAX_CLAP_EVENTS = 8  # per frame: beyond this the crowd is a roar and gain takes over
PEAK = 28_000


def _clap_shape(rng: random.Random) -> array[float]:
    """One hand clap: a bright noise burst with a fast attack and a ~25 ms decay."""
    length = int(0.02 * RATE)
    samples = array("f")
    previous = 0.0
    for i in range(length):
        white = rng.uniform(-1.0, 1.0)
        bright = white - 0.6 * previous  # a little high-pass: claps are bright
        previous = white
        samples.append(bright * math.exp(-i / (0.006 * RATE)))
    return samples


def _voice(
    pitch: float, seconds: float, vowel: tuple[float, float], pulse_hz: float
) -> array[float]:
    """A voiced, vowel-like sound (two formant partials over a pitch), optionally pulsed."""
    length = int(seconds * RATE)
    out = array("f")
    f1, f2 = vowel
    for i in range(length):
        t = i / RATE
        envelope = min(1.0, t / 0.02) * min(1.0, (seconds - t) / 0.05)
        if pulse_hz:
            envelope *= max(0.0, math.sin(math.pi * pulse_hz * t)) ** 2
        tone = 0.0
        for harmonic in range(1, 12):
            frequency = pitch * harmonic
            weight = math.exp(-(((frequency - f1) / 250) ** 2)) + 0.6 * math.exp(
                -(((frequency - f2) / 400) ** 2)
            )
            tone += weight * math.sin(2 * math.pi * frequency * t)
        out.append(0.35 * envelope * tone)
    return out


class HallSynth:
    """Turns reaction rates into 20 ms frames of the hall's sound (mono, 16-bit)."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)
        self._claps = [_clap_shape(self._rng) for _ in range(8)]
        self._laugh = _voice(210.0, 0.9, (800.0, 1200.0), 4.5)
        self._bravo = _voice(150.0, 0.7, (700.0, 1100.0), 0.0)
        self._tail = array("f")  # sound that spills into the next frames
        self.clappers = 0.0
        self.laughers = 0.0
        self.bravos = 0.0

    def set_rates(self, applause: float, laughter: float, bravo: float) -> None:
        """Reactions a second (clicks) of each kind over the recent window."""
        self.clappers = applause / CLICKS_PER_CLAPPER
        self.laughers = laughter / CLICKS_PER_CLAPPER
        self.bravos = bravo / CLICKS_PER_CLAPPER

    def frame(self) -> bytes:
        """The next 20 ms: s16 little-endian mono PCM."""
        mix = array("f", self._tail)  # what earlier sounds still owe this and later frames
        if len(mix) < FRAME:
            mix.extend(array("f", bytes(4 * (FRAME - len(mix)))))
        rng = self._rng
        # Clapping: each clapper claps CLAPS_PER_SECOND; events this frame ~ Poisson.
        expected = self.clappers * CLAPS_PER_SECOND * FRAME_SECONDS
        events = _poisson(rng, min(expected, MAX_CLAP_EVENTS))
        # Past the cap, a larger crowd is louder, not busier: power grows with the headcount.
        gain = math.sqrt(expected / MAX_CLAP_EVENTS) if expected > MAX_CLAP_EVENTS else 1.0
        for _ in range(events):
            shape = self._claps[rng.randrange(len(self._claps))]
            _add(mix, shape, rng.randrange(FRAME), gain * rng.uniform(0.25, 0.45))
        for rate, sound in ((self.laughers, self._laugh), (self.bravos, self._bravo)):
            for _ in range(_poisson(rng, min(rate * FRAME_SECONDS / 1.5, 6.0))):
                _add(mix, sound, rng.randrange(FRAME), rng.uniform(0.3, 0.5))
        self._tail = mix[FRAME:]
        return struct.pack(
            f"<{FRAME}h", *(max(-32768, min(32767, int(PEAK * v))) for v in mix[:FRAME])
        )


def _add(mix: array[float], sound: array[float], start: int, level: float) -> None:
    end = start + len(sound)
    if end > len(mix):
        mix.extend(array("f", bytes(4 * (end - len(mix)))))
    for i, value in enumerate(sound):
        mix[start + i] += level * value


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    # Knuth's method: fine for the small means here.
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class HallSound:
    """One show's hall sound: reaction totals in, Opus frames out, encoded once for everyone."""

    def __init__(
        self,
        push: Callable[[EncodedFrame], None],
        seed: int | None = None,
        listeners: Callable[[], int] | None = None,
    ) -> None:
        import av

        self._push = push
        self._listeners = listeners
        self.synth = HallSynth(seed)
        self.muted = False
        self.frames = 0
        self._recent: deque[tuple[float, dict[str, int]]] = deque()
        self._encoder = av.CodecContext.create("libopus", "w")
        self._encoder.sample_rate = RATE
        self._encoder.layout = "mono"
        self._encoder.format = "s16"
        self._encoder.bit_rate = 64_000
        self._task: asyncio.Task[None] | None = None
        self._pts = 0

    def add(self, counts: dict[str, int], now: float) -> None:
        """Reaction totals that arrived at ``now`` (loop time)."""
        self._recent.append((now, counts))

    def _rates(self, now: float) -> tuple[float, float, float]:
        while self._recent and self._recent[0][0] < now - WINDOW:
            self._recent.popleft()
        totals = {"applause": 0, "laughter": 0, "bravo": 0}
        for _, counts in self._recent:
            for kind in totals:
                totals[kind] += counts.get(kind, 0)
        return totals["applause"] / WINDOW, totals["laughter"] / WINDOW, totals["bravo"] / WINDOW

    def start(self) -> None:
        """Produce a frame every 20 ms until closed."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="hall-sound")

    async def _run(self) -> None:
        import av

        loop = asyncio.get_running_loop()
        started = loop.time()
        count = 0
        while True:
            now = loop.time()
            if self._listeners is not None and self._listeners() == 0:
                # Nobody hears the hall (the performer left): make and encode nothing.
                count += 1
                await asyncio.sleep(max(0.0, started + count * FRAME_SECONDS - loop.time()))
                continue
            self.synth.set_rates(*self._rates(now))
            pcm = bytes(2 * FRAME) if self.muted else self.synth.frame()
            frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME)
            frame.planes[0].update(pcm)
            frame.sample_rate = RATE
            frame.pts = self._pts
            self._pts += FRAME
            for packet in self._encoder.encode(frame):
                self.frames += 1
                self._push(
                    EncodedFrame(
                        kind="audio",
                        mime_type="audio/opus",
                        data=bytes(packet),
                        pts=packet.pts or 0,
                        clock_rate=RATE,
                        keyframe=True,
                    )
                )
            count += 1
            await asyncio.sleep(max(0.0, started + count * FRAME_SECONDS - loop.time()))

    async def close(self) -> None:
        """Stop producing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def rms(pcm: bytes) -> float:
    """Root mean square of s16 little-endian samples (for measuring the hall's level)."""
    count = len(pcm) // 2
    if not count:
        return 0.0
    values = struct.unpack(f"<{count}h", pcm[: 2 * count])
    return math.sqrt(sum(v * v for v in values) / count)
