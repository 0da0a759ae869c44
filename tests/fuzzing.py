"""What the fuzz tests share: one repeatable hypothesis profile, hostile values, SDP offers and
their mutations (kept to loopback), the documented error codes and the server's log.

The fuzz tests run in ``make test``: each is sized to a few seconds, derandomized and without an
example database, so CI runs the same examples every time (a failure found once is then kept as an
explicit regression example next to the test).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog
from aiortc import RTCPeerConnection
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from media.ice import rtc_configuration

ROOT = Path(__file__).resolve().parent.parent


def fuzz_settings(max_examples: int) -> settings:
    """The fuzz profile: the same examples on every run, none remembered between runs."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=False,
        # No shrinking: each step of it reruns an example against the node, for minutes. A failure
        # prints its example as found; keep it as an explicit regression example once understood.
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        # Fixtures (the node, the log) serve every example of a test on purpose: starting a node
        # per example would cost the time of the whole battery.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )


# -- the documented error codes --------------------------------------------------------------------


def documented_ws_codes() -> frozenset[str]:
    """The codes of the error table in docs/protocol.md, ``internal_error`` (a bug) left out."""
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    table = text.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    codes = set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE))
    assert {"invalid_input", "invalid_json", "rate_limited"} <= codes, "the table moved"
    return frozenset(codes - {"internal_error"})


def documented_http_errors() -> frozenset[tuple[int, str]]:
    """The (status, code) pairs docs/api.md promises: its error table, and each "`404 code`" the
    endpoints' own paragraphs name; ``internal_error`` (a bug) left out."""
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    pairs = set()
    for status, codes in re.findall(r"^\| (\d{3}) \| ([^|]+) \|", text, flags=re.MULTILINE):
        pairs |= {(int(status), code) for code in re.findall(r"`([a-z_]+)`", codes)}
    pairs |= {(int(s), code) for s, code in re.findall(r"`(\d{3}) ([a-z_]+)`", text)}
    assert {(400, "invalid_json"), (406, "unsupported_codec")} <= pairs, "the table moved"
    return frozenset(p for p in pairs if p[1] != "internal_error")


# -- hostile values --------------------------------------------------------------------------------

# Characters that broke, or could break, text handling somewhere: controls, invisible format
# characters and bidirectional overrides, lone surrogates (JSON carries them as escapes), line and
# paragraph separators, digits of other scripts, combining marks, non-characters and glob/key
# punctuation.
TRICKY_CHARS = [
    "\x00",
    "\x07",
    "\x1b",
    "\x7f",
    "\x85",
    "\t",
    "\n",
    "\r",
    "\x0b",
    "\x1c",
    "\u2028",
    "\u2029",
    "\u00ad",
    "\u200b",
    "\u200d",
    "\u200e",
    "\u200f",
    "\u202a",
    "\u202e",
    "\u2066",
    "\u2069",
    "\ufeff",
    "\u00a0",
    "\u202f",
    "\u3000",
    "\ud800",
    "\udfff",
    "\ue000",
    "\U000e0001",
    "\ufffe",
    "\uffff",
    "\ufffd",
    "\U0010ffff",
    "\U0001f600",
    "\u0301",
    "\u0663",
    "\uff11",
    "\U0001d7d9",
    "*",
    "?",
    "[",
    "]",
    "\\",
    ":",
    "-",
    "%",
    "{",
    "}",
    "/",
    ".",
    " ",
    "'",
    '"',
    "<",
    ">",
    "&",
]

# Lone surrogates are refused as a whole message (invalid_json): kept rare, so that most examples
# reach the commands.
_TRICKY = [c for c in TRICKY_CHARS if not "\ud800" <= c <= "\udfff"]
chars = st.one_of(
    st.sampled_from(_TRICKY),
    st.characters(categories=["Cc", "Cf", "Co", "Cn", "Zs", "Zl", "Zp", "Mn", "Nd"]),
    st.characters(codec="utf-8"),
)
surrogates = st.characters(categories=["Cs"])
hostile_text = st.one_of(
    st.text(alphabet=chars, max_size=40),
    st.text(alphabet=st.one_of(chars, surrogates), max_size=8),
)
# Lengths around every limit a field has (16, 32, 40, 60, 64, 128, 160, 256, 300, 500, 1200, 2000,
# 32 KiB), each run of one character (a multi-byte one too).
LENGTHS = [0, 1, 16, 17, 32, 33, 40, 41, 60, 61, 64, 65, 128, 129, 160, 161, 256, 257, 300, 301]
LENGTHS += [500, 501, 1200, 1201, 2000, 2001, 8000, 32 * 1024, 32 * 1024 + 1]
long_text = st.builds(
    lambda unit, n, tail: unit * n + tail,
    st.sampled_from(["x", "9", " ", "ä", "\u202e", "\n", "\x00", "\u0301"]),
    st.sampled_from(LENGTHS),
    st.sampled_from(["", "!", "\u200b"]),
)
BIG_INTS = [0, -1, 1, 2, 199, 200, 201, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64]
BIG_INTS += [-(2**63) - 1, 10**19, 10**20, -(10**20)]
numbers = st.one_of(
    st.sampled_from(BIG_INTS),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, -0.0, 1e308, 5e-324, 1.0, 200.0]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, hostile_text, long_text)
nested = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=8,
)


def _deep(levels: int, innermost: Any) -> Any:
    value = innermost
    for n in range(levels):
        value = [value] if n % 2 else {"a": value}
    return value


deep = st.builds(_deep, st.integers(1, 24), scalars)
any_value = st.one_of(scalars, nested, deep)


def _mutate(value: str, how: str, char: str) -> Any:
    """``value`` a little wrong: the near misses of a right value."""
    if how == "append":
        return value + char
    if how == "newline":  # a regular expression's $ matches before a final line break
        return value + "\n"
    if how == "prepend":
        return char + value
    if how == "insert":
        middle = len(value) // 2
        return value[:middle] + char + value[middle:]
    if how == "drop_last":
        return value[:-1]
    if how == "upper":
        return value.upper()
    if how == "lower":
        return value.lower()
    if how == "spaces":
        return f"  {value}\t"
    if how == "double":
        return value + value
    if how == "reverse":
        return value[::-1]
    if how == "digits":  # the same number in other digits (fullwidth), which \d matches
        return value.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})
    if how == "list":
        return [value]
    if how == "object":
        return {"value": value}
    return value


MUTATIONS = [
    "append",
    "newline",
    "prepend",
    "insert",
    "drop_last",
    "upper",
    "lower",
    "spaces",
    "double",
    "reverse",
    "digits",
    "list",
    "object",
]


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each as often as its weight says."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


def near(value: Any) -> st.SearchStrategy[Any]:
    """``value`` or a near miss of it."""
    if not isinstance(value, str):
        return st.just(value)
    return st.builds(_mutate, st.just(value), st.sampled_from(MUTATIONS), chars)


def value_for(right: list[Any]) -> st.SearchStrategy[Any]:
    """A field's value: one of the ``right`` ones, a near miss of one, or anything at all."""
    if not right:
        return any_value
    good = st.sampled_from(right)
    return weighted((1, good), (2, good.flatmap(near)), (1, any_value))


# -- SDP -------------------------------------------------------------------------------------------


async def make_offer(*sections: tuple[str, str]) -> str:
    """A real aiortc offer with ``(kind, direction)`` sections (its candidates: what the loopback
    fixture allows, so 127.0.0.1 only)."""
    pc = RTCPeerConnection(rtc_configuration(max_bundle=True))
    try:
        for kind, direction in sections:
            pc.addTransceiver(kind, direction=direction)
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


_OFFERS: dict[str, str] = {}
OFFER_SHAPES: dict[str, tuple[tuple[str, str], ...]] = {
    # a performer (or OBS through WHIP): camera and microphone
    "publish": (("video", "sendonly"), ("audio", "sendonly")),
    # a performer who also hears the audience
    "publish_hall": (("video", "sendonly"), ("audio", "sendonly"), ("audio", "recvonly")),
    # a WHEP player
    "player": (("video", "recvonly"), ("audio", "recvonly")),
    # a lobby member: microphone, then two voice slots
    "voice": (("audio", "sendonly"), ("audio", "recvonly"), ("audio", "recvonly")),
}


async def offers() -> dict[str, str]:
    """One offer of each shape, made once per test process."""
    if not _OFFERS:
        made = await asyncio.gather(*(make_offer(*shape) for shape in OFFER_SHAPES.values()))
        _OFFERS.update(zip(OFFER_SHAPES, made, strict=True))
    return dict(_OFFERS)


# Lines an SDP parser may choke on: bad numbers, unknown kinds, empty values, duplicates.
ODD_SDP_LINES = [
    "",
    "x",
    "=",
    "a=",
    "a=:",
    "m=",
    "m=video",
    "m=video 9",
    "m=video 9 UDP/TLS/RTP/SAVPF",
    "m=video 0 UDP/TLS/RTP/SAVPF 96",
    "m=video -1 UDP/TLS/RTP/SAVPF 96",
    "m=video 99999999999999999999 UDP/TLS/RTP/SAVPF 96",
    "m=audio 9 UDP/TLS/RTP/SAVPF 0 8 9 256",
    "m=audio 9 UDP/TLS/RTP/SAVPF x",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "m=text 9 RTP/AVP 98",
    "a=rtpmap:96 VP8/90000/2/x",
    "a=rtpmap:96",
    "a=rtpmap:127 opus/48000/2",
    "a=rtpmap:200 H264/90000",
    "a=rtpmap:96 opus/0",
    "a=rtpmap:96 VP8/-1",
    "a=fmtp:96 x",
    "a=fmtp:96 profile-level-id=zz;packetization-mode=9",
    "a=fmtp:x apt=",
    "a=fmtp:97 apt=999",
    "a=rtcp-fb:* nack",
    "a=rtcp-fb:96",
    "a=extmap:99999 urn:x",
    "a=extmap:x",
    "a=ssrc:4294967296 cname:x",
    "a=ssrc:x",
    "a=ssrc-group:FID 1",
    "a=ssrc-group:FID",
    "a=msid:",
    "a=mid:",
    "a=mid:0",
    "a=group:BUNDLE 0 0 9",
    "a=group:BUNDLE",
    "a=setup:holdconn",
    "a=setup:",
    "a=fingerprint:sha-1 00",
    "a=fingerprint:",
    "a=fingerprint:sha-256",
    "a=ice-ufrag:",
    "a=ice-pwd:",
    "a=ice-options:trickle renomination",
    "a=ice-lite",
    "a=sendrecv",
    "a=inactive",
    "a=recvonly",
    "a=rtcp:x",
    "a=rtcp-mux",
    "a=sctpmap:5000 webrtc-datachannel 1024",
    "a=sctp-port:x",
    "a=max-message-size:-1",
    "a=rid:h send",
    "a=simulcast:send h;m",
    "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host",
    "a=candidate:1 1 udp 2130706431 127.0.0.1 0 typ host",
    "a=candidate:1 1 udp x 127.0.0.1 y typ host",
    "a=candidate:1 1 tcp 1 127.0.0.1 9 typ host tcptype passive",
    "a=candidate:1 1 udp 1 ::1 9 typ host",
    "a=candidate:1 1 udp 1 example.invalid 9 typ host",
    "a=candidate:1 1 udp 1 127.0.0.1 9 typ prflx raddr 127.0.0.1 rport x",
    "a=candidate:1",
    "a=candidate:",
    "a=end-of-candidates",
    "c=IN IP4 300.1.1.1",
    "c=IN IP6 ::1",
    "c=IN",
    "b=AS:-1",
    "o=- x x IN IP4 127.0.0.1",
    "v=1",
    "t=x y",
]


def _sdp_edit(lines: list[str], edit: tuple[str, int, str]) -> list[str]:
    how, at, text = edit
    if not lines:
        return [text]
    i = at % len(lines)
    before, line, after = lines[:i], lines[i], lines[i + 1 :]
    if how == "drop":
        return [*before, *after]
    if how == "duplicate":
        return [*before, line, line, *after]
    if how == "swap" and after:
        return [*before, after[0], line, *after[1:]]
    if how == "replace":
        return [*before, text, *after]
    if how == "insert":
        return [*before, text, line, *after]
    if how == "truncate":
        return [*before, line[: len(line) // 2]]
    if how == "append_text":
        return [*before, line + text, *after]
    if how == "numbers":  # every number of the line made huge, negative or zero
        changed = re.sub(r"\d+", text if text.lstrip("-").isdigit() else "0", line)
        return [*before, changed, *after]
    if how == "case":
        return [*before, line.swapcase(), *after]
    return lines


sdp_edit_text = st.one_of(
    st.sampled_from(ODD_SDP_LINES),
    st.sampled_from(["99999999999999999999", "-1", "0", "4294967296", "65536"]),
    hostile_text,
)
sdp_edits = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "drop",
                "duplicate",
                "swap",
                "replace",
                "insert",
                "truncate",
                "append_text",
                "numbers",
                "case",
            ]
        ),
        st.integers(0, 200),
        sdp_edit_text,
    ),
    min_size=1,
    max_size=4,
)


def mutate_sdp(sdp: str, edits: list[tuple[str, int, str]], separator: str) -> str:
    """``sdp`` with ``edits`` applied to its lines, joined by ``separator``."""
    lines = sdp.rstrip("\r\n").split("\r\n")
    for edit in edits:
        lines = _sdp_edit(lines, edit)
    return separator.join(lines) + separator


def mutated_sdp(base: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Real offers, a few lines changed, dropped or added, possibly other line endings; only
    those whose candidates stay on loopback (a fuzzed address must never be contacted)."""
    separators = st.sampled_from(["\r\n", "\r\n", "\n", "\r", "\r\n\r\n", "\u2028"])
    return st.builds(mutate_sdp, base, sdp_edits, separators).filter(loopback_only)


_MDNS = re.compile(r"^[a-zA-Z0-9-]{1,63}\.local$")


def loopback_only(text: str) -> bool:
    """Whether every ICE candidate in ``text`` (an SDP or a trickled fragment) names loopback or
    nothing an ICE agent would contact: any address in a candidate line that is not loopback, and
    any mDNS name (resolved by multicast), makes it unsafe to send."""
    for line in text.splitlines():
        if "candidate" not in line:
            continue
        for token in line.replace(":", " : ").split() + line.split():
            if _MDNS.match(token):
                return False
            try:
                address = ipaddress.ip_address(token)
            except ValueError:
                continue
            if not address.is_loopback:
                return False
    return True


# -- the server's log ------------------------------------------------------------------------------

# Events that mean a fault of ours even where the server carried on.
FAULT_EVENTS = frozenset(
    {
        "ws.command_failed",
        "ws.release_failed",
        "ws.task_failed",
        "http.unhandled",
        "rtmp.connection_failed",
    }
)


class ServerLog:
    """What the server logged, through structlog and the standard library, as a test runs."""

    def __init__(self, entries: list[dict[str, Any]], records: list[logging.LogRecord]) -> None:
        self.entries = entries
        self.records = records
        self._seen = (0, 0)

    def faults(self) -> list[str]:
        """Errors and exceptions logged since the last call (and the faults of our own events)."""
        start_entries, start_records = self._seen
        self._seen = (len(self.entries), len(self.records))
        found = [
            f"{e.get('log_level')}: {e.get('event')} {e}"
            for e in self.entries[start_entries:]
            if e.get("event") in FAULT_EVENTS
            or e.get("log_level") in ("error", "critical", "exception")
            or e.get("exc_info")
        ]
        found += [
            f"{r.levelname}: {r.name}: {r.getMessage()}"
            for r in self.records[start_records:]
            if r.levelno >= logging.ERROR
        ]
        return found


class _Keep(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.WARNING)
        self.kept = records

    def emit(self, record: logging.LogRecord) -> None:
        self.kept.append(record)


@contextmanager
def server_log() -> Iterator[ServerLog]:
    """Capture structlog's events and the standard library's warnings and errors (aiohttp,
    asyncio, aiortc) while the block runs."""
    records: list[logging.LogRecord] = []
    handler = _Keep(records)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with structlog.testing.capture_logs() as entries:
            yield ServerLog(entries, records)
    finally:
        root.removeHandler(handler)
