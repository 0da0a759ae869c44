"""The interaction bench's plan, shared by the conductor and its viewer workers.

Every process computes the same plan from the same arguments and seed, so the conductor never
ships schedules around: viewer ``i`` sits in planned lobby ``i // size`` (seat ``i % size``; seat 0
opens the lobby) and lives in worker ``i % workers``; chat message ``k`` is sent at
``start + (k + 0.5) / rate`` by a random viewer; a random set of clappers each clap once every
``clap_interval`` seconds at a random phase. Times are ``time.monotonic()``: CLOCK_MONOTONIC is
system-wide on Linux, so every process on the machine reads the same clock.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

CHAT_PREFIX = "ib-"  # client_id prefix of the bench's chat messages


@dataclass(frozen=True)
class Plan:
    viewers: int
    lobby_size: int
    workers: int
    seconds: float
    chat_rate: float  # messages per second, all viewers together
    clappers: float  # fraction of viewers that clap
    clap_interval: float  # seconds between one clapper's claps
    seed: int

    @property
    def lobbies(self) -> int:
        return math.ceil(self.viewers / self.lobby_size)

    def lobby_of(self, viewer: int) -> int:
        return viewer // self.lobby_size

    def worker_of(self, viewer: int) -> int:
        return viewer % self.workers

    def members(self, lobby: int) -> list[int]:
        first = lobby * self.lobby_size
        return list(range(first, min(first + self.lobby_size, self.viewers)))

    def mine(self, worker: int) -> list[int]:
        return list(range(worker, self.viewers, self.workers))

    def chat(self) -> list[tuple[float, int, str]]:
        """(offset from start in s, sender, client_id) of every chat message."""
        rng = random.Random(self.seed)
        count = math.floor(self.seconds * self.chat_rate)
        return [
            ((k + 0.5) / self.chat_rate, rng.randrange(self.viewers), f"{CHAT_PREFIX}{k}")
            for k in range(count)
        ]

    def claps(self) -> list[tuple[float, int]]:
        """(offset from start in s, viewer) of every planned clap, in time order."""
        rng = random.Random(self.seed + 1)
        clappers = rng.sample(range(self.viewers), round(self.clappers * self.viewers))
        out = []
        for viewer in clappers:
            at = rng.uniform(0, self.clap_interval)
            while at < self.seconds:
                out.append((at, viewer))
                at += self.clap_interval
        out.sort()
        return out

    def args(self) -> list[str]:
        """The command-line arguments that rebuild this plan in a worker."""
        return [
            f"--viewers={self.viewers}",
            f"--lobby-size={self.lobby_size}",
            f"--workers={self.workers}",
            f"--seconds={self.seconds}",
            f"--chat-rate={self.chat_rate}",
            f"--clappers={self.clappers}",
            f"--clap-interval={self.clap_interval}",
            f"--seed={self.seed}",
        ]


def percentile(values: list[float], quantile: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = quantile * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def reaction_latencies(
    clicks: list[float], seen: list[tuple[float, int]]
) -> tuple[list[float], int]:
    """Click → the first ``reactions`` event whose running total includes it, in seconds.

    ``clicks``: the send times of the clicks the node accepted; ``seen``: (arrival, count) of the
    observer's ``reactions`` events (count = the event's totals added up). Counts are matched in
    order: the k-th click (by send time) is in the first event at which the observer's running
    total reaches k. Returns the latencies and how many clicks were never covered.
    """
    clicks = sorted(clicks)
    latencies: list[float] = []
    running = 0
    k = 0
    for arrival, count in sorted(seen):
        running += count
        while k < len(clicks) and k < running:
            latencies.append(arrival - clicks[k])
            k += 1
    return latencies, len(clicks) - k
