"""RTMP publishing: the stream key picks the show; the encoder's frames feed its broadcast."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import structlog

from media.rtmp import Authorise, FrameSink
from media.stage import Publication
from rooms import events
from rooms.errors import ShowNotFound
from rooms.shows import ShowState
from signaling.live import follow_publication

if TYPE_CHECKING:
    from signaling.services import Services

log = structlog.get_logger(__name__)

RTMP_CODECS = {"video": "video/H264", "audio": "audio/opus"}


def rtmp_url(services: Services, public_url: str) -> str | None:
    """The RTMP server address an encoder is given (the key goes in its own field)."""
    port = services.rtmp_port
    if port is None:
        return None
    host = urlsplit(public_url).hostname or "127.0.0.1"
    return f"rtmp://{host}:{port}/live"


def authoriser(services: Services) -> Authorise:
    """The RTMP server's check of a publish name: a sink for its show, or None to refuse."""

    async def authorise(stream_key: str) -> FrameSink | None:
        try:
            show = await services.shows.by_stream_key(stream_key)
        except ShowNotFound:
            return None
        if show.state is ShowState.ENDED:
            return None
        lifecycle = services.lifecycle

        def on_warning(publication: Publication, code: str, message: str) -> None:
            event = events.show_warning(show.id, code, message)
            lifecycle.spawn(
                services.bus.publish(events.show_channel(show.id), event), "show-warning"
            )

        publication = await services.stage.publish_frames(
            show.id, dict(RTMP_CODECS), follow_publication(services), on_warning
        )
        log.info("rtmp.publish", show=show.id)
        return publication

    return authorise
