"""Summarise a py-spy ``--format raw`` profile (collapsed stacks) of the server under test.

py-spy attached with ``--nonblocking`` does not always see that the event loop's thread sleeps in
``epoll_wait``: samples whose leaf is the selector's ``select`` are counted as idle and left out
(checked: the remaining samples match the CPU time /proc reports for the same window).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")

# Where a sample's time goes: the first area (in this order) with a marker anywhere in the stack.
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("per-viewer send: media/direct.py", ("DirectOutput.send", "DirectOutput._retransmit")),
    ("per-viewer send: aiortc RTCRtpSender", ("RTCRtpSender._run_rtp", "RTCRtpSender._retransmit")),
    ("fan-out bookkeeping (once per frame)", ("Broadcast._fan_out", "EncodedReceiver._deliver")),
    ("ingest receive (performer's packets)", ("RTCRtpReceiver._handle_rtp_packet",)),
    ("RTCP, all peers", ("_run_rtcp", "_handle_rtcp_data", "_send_rtcp")),
    ("ICE/DTLS/UDP receive, all peers", ("aioice/", "_read_ready", "rtcdtlstransport.py")),
    ("signaling, HTTP, WebSocket", ("aiohttp/", "signaling/", "rooms/")),
    ("event loop itself", ("base_events.py", "events.py")),
)
# Inside the per-viewer send: the operation nearest the leaf.
OPERATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SRTP protect (pylibsrtp)", ("Session.protect",)),
    ("UDP sendto (asyncio + kernel)", (".sendto",)),
    ("clocks (abs-send-time, NTP)", ("abs_send_time", "ntp_time")),
)


def _short(frame: str) -> str:
    """'send (aiortc/rtcrtpsender.py:12)' -> 'aiortc/rtcrtpsender.py:send' (lines merged)."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    return f"{match['file']}:{match['func']}"


def _idle(leaf: str) -> bool:
    return leaf.startswith("selectors.py:") and leaf.endswith(".select")


@dataclass
class Profile:
    samples: int = 0
    idle: int = 0
    self_time: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    areas: Counter[str] = field(default_factory=Counter)
    send_operations: Counter[str] = field(default_factory=Counter)


def _area(frames: list[str]) -> str:
    for name, markers in AREAS:
        if any(marker in frame for frame in frames for marker in markers):
            return name
    return "other"


def _operation(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, markers in OPERATIONS:
            if any(marker in frame for marker in markers):
                return name
    return "Python: header, history, counters"


def load_profile(path: Path) -> Profile:
    """Read collapsed stacks: 'root;…;leaf COUNT' per line (py-spy lists the leaf last)."""
    profile = Profile()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if f.strip()]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        if _idle(frames[-1]):
            profile.idle += count
            continue
        profile.samples += count
        profile.self_time[frames[-1]] += count
        for frame in set(frames):
            profile.inclusive[frame] += count
        area = _area(frames)
        profile.areas[area] += count
        if area.startswith("per-viewer send"):
            profile.send_operations[_operation(frames)] += count
    return profile


def report(profile: Profile, cpu_seconds: float, packets: float, top: int = 15) -> str:
    """Areas, send operations and top functions: % of busy samples and µs CPU per packet sent."""
    if profile.samples == 0:
        return "profile: no samples"
    per_packet = 1e6 * cpu_seconds / packets if packets else 0.0

    def row(count: int, name: str) -> str:
        share = count / profile.samples
        return f"  {share * 100:5.1f} %  {share * per_packet:6.2f} µs  {name}"

    lines = [
        f"profile: {profile.samples} busy samples ({profile.idle} idle in epoll left out); "
        f"server CPU {cpu_seconds:.2f} s for {packets:.0f} RTP packets sent to viewers = "
        f"{per_packet:.1f} µs per packet, everything included",
        "where it goes (share of busy samples, µs per packet sent):",
    ]
    lines += [row(count, name) for name, count in profile.areas.most_common()]
    lines.append("inside the per-viewer send:")
    lines += [row(count, name) for name, count in profile.send_operations.most_common()]
    lines.append("top functions by self time:")
    lines += [row(count, name) for name, count in profile.self_time.most_common(top)]
    return "\n".join(lines)
