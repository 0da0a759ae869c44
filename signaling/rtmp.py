"""RTMP publishing: the stream key picks the show; the encoder's frames feed its broadcast."""

from __future__ import annotations

from urllib.parse import urlsplit

import structlog
from aiohttp import web

from media.rtmp import Authorise, FrameSink
from media.stage import Publication
from rooms.errors import ShowNotFound
from rooms.shows import ShowState, show_channel
from signaling.live import follow_publication
from signaling.state import BUS, LIFECYCLE, SHOWS, STAGE

log = structlog.get_logger(__name__)

RTMP_CODECS = {"video": "video/H264", "audio": "audio/opus"}

RTMP_PORT: web.AppKey[int] = web.AppKey("rtmp_port")


def rtmp_url(app: web.Application, public_url: str) -> str | None:
    """The RTMP server address an encoder is given (the key goes in its own field)."""
    port = app.get(RTMP_PORT)
    if port is None:
        return None
    host = urlsplit(public_url).hostname or "127.0.0.1"
    return f"rtmp://{host}:{port}/live"


def authoriser(app: web.Application) -> Authorise:
    """The RTMP server's check of a publish name: a sink for its show, or None to refuse."""

    async def authorise(stream_key: str) -> FrameSink | None:
        try:
            show = await app[SHOWS].by_stream_key(stream_key)
        except ShowNotFound:
            return None
        if show.state is ShowState.ENDED:
            return None
        lifecycle = app[LIFECYCLE]

        def on_warning(publication: Publication, code: str, message: str) -> None:
            event = {"type": "show.warning", "show": show.id, "code": code, "message": message}
            lifecycle.spawn(app[BUS].publish(show_channel(show.id), event), "show-warning")

        publication = await app[STAGE].publish_frames(
            show.id, dict(RTMP_CODECS), follow_publication(app), on_warning
        )
        log.info("rtmp.publish", show=show.id)
        return publication

    return authorise
