"""Every key on the Redis bus expires, but for the few records that live until someone acts on them
(docs/architecture.md, "Keys and their expiry"): a node that dies, a client that vanishes or a
request that fails half-way must leave nothing behind for good."""

from __future__ import annotations

from typing import Any

import msgpack
import redis.asyncio as redis

NAMESPACE = "lampio:"

# Records that live until an explicit action, with the action. Anything else needs an expiry.
UNTIL_ACTION = {
    "show:": "the show ends (then its record expires after 30 days)",
    "code:": "its show ends",
    "streamkey:": "its show ends or the key is rotated",
    "staffkey:": "the organiser revokes the staff key",
    "staffkeydigest:": "the organiser revokes the staff key",
    "screen:": "staff forget the screen, or its staff key is revoked",
    "organiser:": "the admin revokes the organiser",
    "organiserkey:": "the admin revokes the organiser",
    "showimage:": "its show ends, or its organiser takes the picture away",
    "hooksecret:": "the organiser takes a new one, or the admin revokes the organiser",
    "screentoken:": "staff forget the screen, or its staff key is revoked",
}


async def keys_without_expiry(url: str) -> dict[str, str]:
    """Keys with no expiry that are not on the allow-list, or are on it but should be gone (an
    open show's code pointing at no open show, say): key → why it is wrong."""
    client: Any = redis.Redis.from_url(url)
    try:
        wrong: dict[str, str] = {}
        persistent = []
        async for raw in client.scan_iter(count=1000):
            if await client.pttl(raw) == -1:
                persistent.append(raw.decode())
        for full in persistent:
            key = full.removeprefix(NAMESPACE)
            prefix = next((p for p in UNTIL_ACTION if key.startswith(p)), None)
            if prefix is None:
                wrong[key] = "no expiry"
                continue
            value = await _value(client, full)
            if prefix == "show:" and (value is None or value.get("state") == "ended"):
                wrong[key] = "an ended show's record without expiry"
            elif prefix in ("code:", "streamkey:"):
                show = await _value(client, f"{NAMESPACE}show:{(value or {}).get('show')}")
                if show is None or show.get("state") == "ended":
                    wrong[key] = "points at no open show"
        return wrong
    finally:
        await client.aclose()


async def _value(client: Any, key: str) -> dict[str, Any] | None:
    if await client.type(key) != b"string":
        return None
    data = await client.get(key)
    if data is None:
        return None
    value = msgpack.unpackb(data, raw=False)
    return value if isinstance(value, dict) else None


async def assert_every_key_expires(url: str) -> None:
    """Fail naming every key that would stay on the bus for good."""
    wrong = await keys_without_expiry(url)
    assert not wrong, f"keys that never expire: {wrong}"
