"""Errors raised by the media package."""


class UnsupportedVersionError(RuntimeError):
    """aiortc or aioice is not the release the seams into their internals were tested with."""


class UnsupportedReceiverError(RuntimeError):
    """The aiortc receiver does not have the internals the encoded-frame tap was built against."""


class FrameQueueClosed(Exception):
    """The frame queue was closed: no more frames will come."""
