"""Watch again: recordings of shows that asked for one, their captions, and their deletion when
their time is up (:mod:`rooms.recordings` says what they are; :mod:`media.recorder` writes them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from rooms.errors import ShowNotFound
from rooms.recordings import (
    CAPTIONS,
    VTT_BYTES_MAX,
    Recording,
    RecordingNotFound,
    parse_webvtt,
)
from rooms.shows import Show
from rooms.supervise import every, retrying
from signaling import api  # a module: live.py, which api.py reaches, imports this one
from signaling.bodies import read_body
from signaling.errors import ApiError
from signaling.services import SERVICES, Services, services

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

SWEEP_INTERVAL = 3600.0  # seconds between looks for recordings whose time is up
CAPTIONS_BODY_TIMEOUT = 30.0


# -- recording a show ----------------------------------------------------------------------------


async def start_recording(services: Services, show_id: str) -> None:
    """The show's performer is on air here: record it if its organiser asked for it."""
    try:
        show = await retrying(
            lambda: services.shows.get(show_id), "recording.show", fatal=(ShowNotFound,)
        )
    except ShowNotFound:
        return
    if not show.record:
        return
    recordings = services.recordings
    if not recordings.enabled:
        # Refused when the show was made; a node set up otherwise than its peers ends up here.
        log.warning(
            "recording.unavailable", show=show_id, hint="start this node with --data-dir to record"
        )
        return
    services.stage.record(show_id, recordings.directory(show_id), recordings.retention)


async def finish_recording(services: Services, show: Show) -> Recording | None:
    """The show has ended: its recording finished and listed for watching again."""
    written = await services.stage.stop_recording(show.id)
    if written is None or written.video_frames + written.audio_frames == 0:
        return None
    recording = await services.recordings.add(
        {**show.public(), "state": "ended"},
        show.organiser,
        written.media,
        written.media_type,
        written.duration_s,
        written.cues,
    )
    log.info("recording.listed", show=show.id, seconds=round(written.duration_s, 1))
    return recording


async def sweeping(app: web.Application) -> AsyncIterator[None]:
    """Deletes recordings whose time is up, while the app runs (only with a data directory)."""
    the = app[SERVICES]
    recordings = the.recordings
    task = None
    if recordings.enabled:

        async def sweep() -> None:
            keep = the.stage.recording
            removed = await asyncio.to_thread(recordings.sweep, time.time(), keep)
            for show_id in removed:
                log.info("recording.deleted", show=show_id)

        interval = min(SWEEP_INTERVAL, max(0.2, recordings.retention / 10))
        loop = asyncio.get_running_loop()
        task = loop.create_task(every(interval, sweep, "recordings.sweep", now=True))
    yield
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# -- the API -------------------------------------------------------------------------------------


def _view(recording: Recording, *, organiser: bool) -> dict[str, Any]:
    now = datetime.now(UTC)
    about = recording.for_organiser(now) if organiser else recording.public()
    return {**recording.show, "recording": about}


@routes.get("/api/recordings")
async def list_recordings(request: web.Request) -> web.Response:
    """Ended shows that can be watched again, newest first (listed ones). With an organiser's
    key: its own, unlisted too, with how many days are left to caption each."""
    recordings = services(request).recordings
    if "Authorization" in request.headers:
        actor = await api.require_organiser(request)
        found = await recordings.all(organiser=actor.organiser_id, listed_only=False)
        views = [_view(r, organiser=True) for r in found]
        return web.json_response({"recordings": views}, headers={"Cache-Control": "no-store"})
    found = await recordings.all()
    return web.json_response({"recordings": [_view(r, organiser=False) for r in found]})


@routes.get("/api/recordings/{show_id}")
async def one_recording(request: web.Request) -> web.Response:
    """One recording (anyone: like the show's code, its id is what leads to it)."""
    recording = await services(request).recordings.get(request.match_info["show_id"])
    return web.json_response(_view(recording, organiser=False))


@routes.get("/api/shows/{show_id}/recording/{name}")
async def recording_media(request: web.Request) -> web.StreamResponse:
    """The recording's file, with range requests (seeking)."""
    recordings = services(request).recordings
    recording = await recordings.get(request.match_info["show_id"])
    if request.match_info["name"] != recording.media:
        raise RecordingNotFound("no such file")
    path = recordings.directory(recording.show_id) / recording.media
    if not await asyncio.to_thread(path.is_file):
        raise RecordingNotFound("this recording's files are not on this node")
    return web.FileResponse(
        path,
        headers={"Content-Type": recording.media_type, "Cache-Control": "public, max-age=3600"},
    )


@routes.get("/api/shows/{show_id}/captions.vtt")
async def recording_captions(request: web.Request) -> web.StreamResponse:
    """The recording's captions (WebVTT)."""
    recordings = services(request).recordings
    recording = await recordings.get(request.match_info["show_id"])
    path = recordings.directory(recording.show_id) / CAPTIONS
    if not await asyncio.to_thread(path.is_file):
        raise RecordingNotFound("this recording's files are not on this node")
    return web.FileResponse(
        path, headers={"Content-Type": "text/vtt; charset=utf-8", "Cache-Control": "no-cache"}
    )


@routes.put("/api/shows/{show_id}/captions")
async def put_captions(request: web.Request) -> web.Response:
    """Replace the recording's captions (its organiser or the admin): ``text/vtt``, checked."""
    actor = await api.require_organiser(request)
    recordings = services(request).recordings
    recording = await recordings.get(request.match_info["show_id"])
    if not actor.may_manage(recording.organiser):
        raise RecordingNotFound("no recording of this show")
    if request.content_type != "text/vtt":
        raise ApiError(415, "unsupported_media_type", "send WebVTT with Content-Type: text/vtt")
    text, cues = parse_webvtt(await read_body(request, VTT_BYTES_MAX, CAPTIONS_BODY_TIMEOUT))
    await asyncio.to_thread(recordings.write_captions, recording.show_id, text)
    recording = await recordings.captions_changed(recording, cues)
    log.info("recording.captions", show=recording.show_id, cues=cues)
    return web.json_response(
        _view(recording, organiser=True), headers={"Cache-Control": "no-store"}
    )
