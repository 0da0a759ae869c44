"""ICE servers offered to clients, with short-lived TURN credentials (``use-auth-secret``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

TURN_CREDENTIAL_TTL = 12 * 3600  # long enough for a show and its foyer talk


def turn_credentials(secret: str, now: float, ttl: int = TURN_CREDENTIAL_TTL) -> tuple[str, str]:
    """A TURN username (its expiry) and password (HMAC-SHA1 of it): the TURN REST scheme."""
    username = f"{int(now) + ttl}:lampio"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def client_ice_servers(
    urls: tuple[str, ...], turn_secret: str | None, now: float | None = None
) -> list[dict[str, Any]]:
    """RTCIceServer dictionaries for a browser: STUN as is, TURN with fresh credentials."""
    stun = [u for u in urls if u.startswith(("stun:", "stuns:"))]
    turn = [u for u in urls if u.startswith(("turn:", "turns:"))]
    servers: list[dict[str, Any]] = []
    if stun:
        servers.append({"urls": stun})
    if turn and turn_secret:
        username, credential = turn_credentials(turn_secret, time.time() if now is None else now)
        servers.append({"urls": turn, "username": username, "credential": credential})
    return servers
