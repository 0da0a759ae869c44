"""Recordings ("watch again"): a show recorded by its organiser's choice, its captions as WebVTT,
and how long both are kept.

A recording's files live on the disk of the node that hosted the show's media, under
``{data_dir}/recordings/{show}/``; its record on the bus (``recording:{show}``) lists it for
every node and expires with it. Nothing is recorded unless the show says ``record``, and nothing
at all without a data directory.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rooms.bus import Bus
from rooms.errors import InvalidInput, ShowNotFound

DAY = 24 * 3600.0
RETENTION_DAYS = 30.0
CAPTIONS_DUE_DAYS = 14  # the law: a recording kept online gets captions within 14 days
VTT_BYTES_MAX = 512 * 1024  # about 10 hours of dense captions
CUE_MAX = 8.0  # seconds a live caption stays at most when no other line follows it
META = "recording.json"
CAPTIONS = "captions.vtt"
_SHOW_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class RecordingUnavailable(InvalidInput):
    """This node keeps no recordings (no ``--data-dir``)."""

    code = "recording_unavailable"


class RecordingNotFound(ShowNotFound):
    """No recording of that show (never recorded, or deleted when its time was up)."""

    code = "recording_not_found"


class InvalidCaptions(InvalidInput):
    """A WebVTT file that is not one, or too large."""

    code = "invalid_captions"


# -- WebVTT ---------------------------------------------------------------------------------------

_TIME = r"(?:(\d{2,}):)?([0-5]\d):([0-5]\d)\.(\d{3})"
_TIMING = re.compile(rf"{_TIME}[ \t]+-->[ \t]+{_TIME}(?:[ \t].*)?")


def vtt_time(seconds: float) -> str:
    """A WebVTT timestamp, ``HH:MM:SS.mmm``."""
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def _seconds(hours: str | None, minutes: str, secs: str, millis: str) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(secs) + int(millis) / 1000


def webvtt(lines: Sequence[tuple[float, str]], duration: float) -> str:
    """Live caption lines (recording time, text; '' clears) as WebVTT: each line shows until the
    next one, at most :data:`CUE_MAX` seconds, never past the end."""
    out = ["WEBVTT", ""]
    for index, (start, text) in enumerate(lines):
        if not text:
            continue
        following = lines[index + 1][0] if index + 1 < len(lines) else duration
        end = min(following, start + CUE_MAX, max(duration, start + 0.5))
        if end <= start:
            end = start + 0.5  # two lines at once: the first one still gets a moment
        out += [f"{vtt_time(start)} --> {vtt_time(end)}", text.replace("-->", "→"), ""]
    return "\n".join(out)


def parse_webvtt(data: bytes) -> tuple[str, int]:
    """The WebVTT text (UTF-8, LF line ends) and its number of cues; :class:`InvalidCaptions`
    if it is not WebVTT (W3C WebVTT: header, then blocks apart by blank lines)."""
    if len(data) > VTT_BYTES_MAX:
        raise InvalidCaptions(f"captions are at most {VTT_BYTES_MAX // 1024} KiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidCaptions("captions must be UTF-8 text") from None
    if "\x00" in text:
        raise InvalidCaptions("captions must be text")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    blocks = [b for b in re.split(r"\n{2,}", text.strip("\n")) if b.strip()]
    if not blocks or not re.fullmatch(r"WEBVTT(?:[ \t].*)?", blocks[0].split("\n")[0]):
        raise InvalidCaptions("WebVTT starts with the line WEBVTT")
    cues = 0
    last_start = 0.0
    for block in blocks[1:]:
        rows = block.split("\n")
        if rows[0].startswith(("NOTE", "STYLE", "REGION")):
            continue
        timing_at = 0 if "-->" in rows[0] else 1
        if timing_at >= len(rows):
            raise InvalidCaptions(f"a cue without times: {rows[0][:40]!r}")
        match = _TIMING.fullmatch(rows[timing_at])
        if match is None:
            raise InvalidCaptions(f"not a cue's times: {rows[timing_at][:60]!r}")
        start = _seconds(*match.groups()[:4])
        end = _seconds(*match.groups()[4:])
        if end < start:
            raise InvalidCaptions(f"a cue ends before it starts: {rows[timing_at][:60]!r}")
        if start < last_start:
            raise InvalidCaptions("cues must be in order of their start times")
        if any("-->" in row for row in rows[timing_at + 1 :]):
            raise InvalidCaptions("a cue's text may not hold '-->'")
        last_start = start
        cues += 1
    return text.rstrip("\n") + "\n", cues


# -- the registry ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recording:
    """A finished recording: the show as it was, its file and its captions."""

    show: dict[str, Any]  # the show's public view when it ended
    organiser: str
    media: str  # the file's name in the recording's directory
    media_type: str
    duration_s: float
    ended_at: datetime
    expires_at: datetime
    cues: int = 0  # caption cues in its WebVTT
    captions_edited: bool = False  # the organiser uploaded or edited them

    @property
    def show_id(self) -> str:
        return str(self.show["id"])

    @property
    def captions_due(self) -> datetime:
        return self.ended_at + timedelta(days=CAPTIONS_DUE_DAYS)

    def public(self) -> dict[str, Any]:
        """What the Watch page plays."""
        return {
            "media_url": f"/api/shows/{self.show_id}/recording/{self.media}",
            "media_type": self.media_type,
            "captions_url": f"/api/shows/{self.show_id}/captions.vtt",
            "duration_s": round(self.duration_s, 1),
            "expires_at": self.expires_at.isoformat(),
            "captioned": self.cues > 0,
        }

    def for_organiser(self, now: datetime) -> dict[str, Any]:
        """With the captions' deadline: how many days are left to caption it."""
        left = (self.captions_due - now).total_seconds() / DAY
        return {
            **self.public(),
            "cues": self.cues,
            "captions_edited": self.captions_edited,
            "captions_due": self.captions_due.isoformat(),
            "captions_days_left": max(0, int(left + 0.999)),
        }

    def to_record(self) -> dict[str, Any]:
        return {
            "show": self.show,
            "organiser": self.organiser,
            "media": self.media,
            "media_type": self.media_type,
            "duration_s": self.duration_s,
            "ended_at": self.ended_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "cues": self.cues,
            "captions_edited": self.captions_edited,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Recording:
        return cls(
            show=dict(record["show"]),
            organiser=str(record["organiser"]),
            media=str(record["media"]),
            media_type=str(record["media_type"]),
            duration_s=float(record["duration_s"]),
            ended_at=datetime.fromisoformat(record["ended_at"]),
            expires_at=datetime.fromisoformat(record["expires_at"]),
            cues=int(record.get("cues", 0)),
            captions_edited=bool(record.get("captions_edited", False)),
        )


class Recordings:
    """Where recordings are written, how long they are kept, and the list of them on the bus.

    The methods that touch the disk block: callers on the event loop run them in a thread."""

    def __init__(
        self, bus: Bus, data_dir: Path | None, retention_days: float = RETENTION_DAYS
    ) -> None:
        self._bus = bus
        self.data_dir = data_dir
        self.retention = retention_days * DAY  # seconds

    @property
    def enabled(self) -> bool:
        """Whether this node may record (it has a data directory)."""
        return self.data_dir is not None

    def check(self, fields: dict[str, Any]) -> None:
        """Refuse ``record: true`` on a node that cannot keep recordings."""
        if fields.get("record") is True and not self.enabled:
            raise RecordingUnavailable(
                "this service keeps no recordings: it needs a data directory "
                "(--data-dir, LAMPIO_DATA_DIR) to record shows"
            )

    def directory(self, show_id: str) -> Path:
        """The directory of the show's recording (made when its first frame is written)."""
        if self.data_dir is None:
            raise RecordingUnavailable("this node keeps no recordings (no --data-dir)")
        if not _SHOW_ID.fullmatch(show_id):
            raise RecordingNotFound("no such recording")
        return self.data_dir / "recordings" / show_id

    async def add(
        self,
        show: dict[str, Any],
        organiser: str,
        media: str,
        media_type: str,
        duration_s: float,
        cues: int,
        *,
        now: float | None = None,
    ) -> Recording:
        """List a finished recording until its time is up."""
        ended = datetime.fromtimestamp(time.time() if now is None else now, UTC)
        recording = Recording(
            show=show,
            organiser=organiser,
            media=media,
            media_type=media_type,
            duration_s=duration_s,
            ended_at=ended,
            expires_at=ended + timedelta(seconds=self.retention),
            cues=cues,
        )
        await self._bus.set(
            f"recording:{recording.show_id}", recording.to_record(), ttl=self.retention
        )
        return recording

    async def get(self, show_id: str) -> Recording:
        """The show's recording, or :class:`RecordingNotFound`."""
        record = await self._bus.get(f"recording:{show_id}")
        if record is None:
            raise RecordingNotFound("no recording of this show")
        return Recording.from_record(record)

    async def all(
        self, *, organiser: str | None = None, listed_only: bool = True
    ) -> list[Recording]:
        """Recordings, newest first: the listed ones, or every one of an organiser (None: all)."""
        found = []
        for key in await self._bus.keys("recording:"):
            record = await self._bus.get(key)
            if record is None:
                continue
            recording = Recording.from_record(record)
            if listed_only and not recording.show.get("listed", True):
                continue
            if organiser is not None and recording.organiser != organiser:
                continue
            found.append(recording)
        return sorted(found, key=lambda r: r.ended_at, reverse=True)

    async def captions_changed(self, recording: Recording, cues: int) -> Recording:
        """Note the organiser's captions (the file is written by :meth:`write_captions`)."""
        changed = Recording(**{**_fields(recording), "cues": cues, "captions_edited": True})
        left = (recording.expires_at - datetime.now(UTC)).total_seconds()
        await self._bus.set(f"recording:{recording.show_id}", changed.to_record(), ttl=max(left, 1))
        return changed

    def write_captions(self, show_id: str, text: str) -> None:
        """Replace the recording's WebVTT file (whole or not at all). Blocks."""
        directory = self.directory(show_id)
        if not directory.is_dir():
            raise RecordingNotFound("this recording's files are not on this node")
        partial = directory / (CAPTIONS + ".new")
        partial.write_text(text, encoding="utf-8")
        partial.replace(directory / CAPTIONS)

    def sweep(self, now: float, keep: Iterable[str] = ()) -> list[str]:
        """Delete the recordings whose time is up (by their ``recording.json``; one never
        finished, by its files' age), except those in ``keep`` (being recorded). Blocks."""
        if self.data_dir is None:
            return []
        root = self.data_dir / "recordings"
        if not root.is_dir():
            return []
        kept = set(keep)
        removed = []
        for directory in root.iterdir():
            if directory.name in kept or not directory.is_dir():
                continue
            if _expires(directory, self.retention) <= now:
                shutil.rmtree(directory, ignore_errors=True)
                removed.append(directory.name)
        return removed


def _fields(recording: Recording) -> dict[str, Any]:
    return {name: getattr(recording, name) for name in Recording.__slots__}


def write_meta(directory: Path, meta: dict[str, Any], retention: float) -> None:
    """The recording's own note of when it expires, beside its files (for the sweep)."""
    meta = {**meta, "expires": time.time() + retention}
    (directory / META).write_text(json.dumps(meta), encoding="utf-8")


def _expires(directory: Path, retention: float) -> float:
    try:
        return float(json.loads((directory / META).read_text(encoding="utf-8"))["expires"])
    except (OSError, ValueError, KeyError, TypeError):
        # never finished (the node stopped mid-show): kept for the retention after its last write
        times = [p.stat().st_mtime for p in directory.iterdir() if p.is_file()]
        return max(times, default=directory.stat().st_mtime) + retention
