"""A show's picture for the programme: an organiser's upload, checked and made small once.

Only JPEG, PNG and WebP are read, at most :data:`PIXELS_MAX` pixels (a decompression bomb is
refused before it is decoded); the picture is turned upright as its EXIF says, made to fit
:data:`FIT`, and saved again as a JPEG without any metadata (no camera, place or time leaves the
organiser's file). Decoding is CPU work: callers run :func:`prepare` in a thread.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from rooms.errors import InvalidInput

BYTES_MAX = 8 * 1024 * 1024
PIXELS_MAX = 40_000_000
FIT = (1280, 720)
FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
QUALITY = 82


class UnsupportedImage(InvalidInput):
    """Not a picture we take: another format, or none at all."""

    code = "unsupported_image"


@dataclass(frozen=True, slots=True)
class Picture:
    """A prepared picture: JPEG bytes, its size, and a version naming these bytes."""

    jpeg: bytes
    width: int
    height: int
    version: str


def prepare(data: bytes) -> Picture:
    """The upload as the programme shows it, or :class:`UnsupportedImage` / InvalidInput."""
    if len(data) > BYTES_MAX:
        raise InvalidInput(f"a picture is at most {BYTES_MAX // (1024 * 1024)} MiB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=sorted(FORMATS)) as image:
                if image.width * image.height > PIXELS_MAX:
                    raise InvalidInput("the picture has too many pixels (at most 40 million)")
                image.load()
                upright = ImageOps.exif_transpose(image)
                rgb = upright.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInput("the picture has too many pixels (at most 40 million)") from None
    except UnidentifiedImageError:
        raise UnsupportedImage("send a JPEG, PNG or WebP picture") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or broken inside
        raise UnsupportedImage(f"the picture cannot be read: {exc}") from None
    rgb.thumbnail(FIT, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=QUALITY, optimize=True, progressive=True)
    jpeg = out.getvalue()
    return Picture(jpeg, rgb.width, rgb.height, hashlib.sha256(jpeg).hexdigest()[:16])
