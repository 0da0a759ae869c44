"""Configuration: read once from ``LAMPIO_*`` environment variables and CLI flags (flags win)."""

from __future__ import annotations

import argparse
import ipaddress
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

CLUSTER_SECRET_MIN = 32
ENV_PREFIX = "LAMPIO_"
ORGANISER_KEY_MIN = 16  # a key people choose themselves must not be guessable (generated: 43)
# Hosts that mean "every interface": not an address another node can reach.
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104


def _list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


# STUN and TURN URLs as browsers and aiortc both read them (RFC 7064, RFC 7065): a host name or
# IPv4 address (aiortc cannot parse an IPv6 literal in brackets), an optional port, and for TURN an
# optional transport.
_ICE_URL = re.compile(
    r"(?P<scheme>stuns?|turns?):(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?"
    r"(?:\?transport=(?P<transport>udp|tcp))?"
)


def ice_url_problem(url: str) -> str | None:
    """Why ``url`` is no STUN/TURN URL this service can hand out, or None if it is one."""
    match = _ICE_URL.fullmatch(url)
    if match is None:
        return (
            f"not a STUN/TURN URL: {url!r} (stun:HOST[:PORT], "
            "turn:HOST[:PORT][?transport=udp|tcp], turns:HOST[:PORT]?transport=tcp; a host name "
            "or IPv4 address)"
        )
    scheme, port, transport = match["scheme"], match["port"], match["transport"]
    if port is not None and not 1 <= int(port) <= 65535:
        return f"port out of range in {url!r}"
    if scheme.startswith("stun") and transport is not None:
        return f"a STUN URL has no transport: {url!r}"
    if scheme == "turns" and transport == "udp":
        return f"turns: with transport=udp is TURN over DTLS, which browsers do not speak: {url!r}"
    return None


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a yes/no value: {text!r}")


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError("port must be 0–65535")
    return port


def _sentinels(text: str) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port``; an IPv6 address in brackets (``[::1]:26379``)."""
    addresses = []
    for part in _list(text):
        host, sep, port = part.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or _port(port) == 0:
            raise ValueError(f"not host:port: {part!r}")
        addresses.append((host, int(port)))
    if not addresses:
        raise ValueError("no sentinel given")
    return tuple(addresses)


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError("must be a positive number")
    return value


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: its field, flag, environment variable, parser and help text."""

    name: str
    help: str
    parse: Callable[[str], Any] = str
    repeatable: bool = False
    is_flag: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)"),
    Setting("port", "HTTP port to listen on (default 8080; 0 picks a free one)", _port),
    Setting(
        "redis_url",
        "Redis URL for a deployment of several nodes, e.g. redis://redis:6379/0; "
        "without it everything runs in this process",
    ),
    Setting(
        "redis_sentinel",
        "Redis Sentinels to ask for the master, host:port comma-separated (instead of a host in "
        "--redis-url, which may then give only the password and database: redis://:secret@/0)",
        _sentinels,
    ),
    Setting("redis_master", "the master's name in Redis Sentinel (required with --redis-sentinel)"),
    Setting(
        "public_url",
        "the address people open, used in links (default http://HOST:PORT)",
    ),
    Setting(
        "ice_host",
        "address offered to WebRTC peers as this server's host candidate; repeat or comma-separate "
        "for several (default: the machine's own addresses)",
        _list,
        repeatable=True,
    ),
    Setting(
        "ice_servers",
        "STUN/TURN URLs offered to browsers, comma-separated, e.g. "
        "turn:turn.example.fi:3478?transport=udp,turn:turn.example.fi:3478?transport=tcp,"
        "turns:turn.example.fi:443?transport=tcp (default none: no outside server is ever "
        "contacted)",
        _list,
    ),
    Setting(
        "turn_secret",
        "shared secret of a TURN server in use-auth-secret mode; browsers get short-lived "
        "credentials made from it",
    ),
    Setting(
        "advertise_url",
        "base URL other nodes reach this node at (default http://HOST:PORT; with a HOST of "
        "0.0.0.0 or :: the first --ice-host instead, else the machine's first address); set it "
        "behind NAT or in containers",
    ),
    Setting(
        "organiser_key",
        "bearer key for the organiser API; generated and printed once at start when not given",
    ),
    Setting(
        "admin_key",
        "bearer key of the admin, who creates and revokes organisers (POST /api/organisers) and "
        "manages every show; default none: no admin",
    ),
    Setting(
        "default_city",
        "the city of the organiser that --organiser-key stands for (default Helsinki)",
    ),
    Setting(
        "categories",
        "show categories beyond concert, theatre, sing-along, exercise, talk, quiz and other, "
        "comma-separated",
        _list,
    ),
    Setting(
        "allowed_origins",
        "extra origins allowed to open WebSockets, comma-separated (the public URL's origin is "
        "always allowed)",
        _list,
    ),
    Setting(
        "trusted_proxies",
        "reverse proxies (addresses or networks, comma-separated, e.g. 10.0.0.0/8) whose "
        "X-Forwarded-For names the client; default none: the TCP peer is the client",
        _list,
    ),
    Setting(
        "cluster_secret",
        "secret shared by the nodes of one deployment (at least 32 characters): with it, a node "
        "pulls a show whose performer is on another node from there, once for all its viewers",
    ),
    Setting("lobby_size", "seats in a lobby (foyer) before a new one opens (default 12)", int),
    Setting(
        "chat_retention",
        "seconds lobby chat is kept after its last message (default 86400: one day)",
        _positive,
    ),
    Setting(
        "data_dir",
        "directory for recordings of shows whose organiser asked for one ('record'), and their "
        "captions; default none: nothing is recorded and shows asking to be are refused",
    ),
    Setting(
        "recording_retention_days",
        "days a recording and its captions are kept after the show ends, then deleted (default 30)",
        _positive,
    ),
    Setting(
        "insight_retention",
        "days a show's audience figures and feedback are kept after it ends (default 30); "
        "the raw counts they are made from expire after a day",
        _positive,
    ),
    Setting(
        "rtmp_port",
        "port of the RTMP ingest for OBS's RTMP output (default 1935, or a free one when 1935 "
        "is taken, as by another node on this machine; 0 picks a free one; 'off' disables it)",
        lambda text: None if text.strip().lower() == "off" else _port(text),
    ),
    Setting(
        "media_sender",
        "how viewers' packets are sent: direct (packetised once per show, written straight to "
        "each viewer's socket; default) or aiortc (aiortc's own sender per viewer, for comparison)",
    ),
    Setting(
        "event_loop",
        "event loop: asyncio (Python's own; default) or uvloop (libuv, in C; needs the uvloop "
        "package)",
    ),
    Setting(
        "demo",
        "also run a demo show: a test picture with a clock and a chime, published like a real "
        "performer (yes/no)",
        _bool,
    ),
    Setting("log_format", "log format: auto (readable on a terminal, else JSON), json or console"),
    Setting("log_level", "log level: debug, info, warning or error (default info)"),
    Setting(
        "shutdown_timeout",
        "seconds to finish open requests on SIGTERM before closing (default 5)",
        _positive,
    ),
)


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the service reads from its environment, once, at start."""

    host: str = "127.0.0.1"
    port: int = 8080
    redis_url: str | None = None
    redis_sentinel: tuple[tuple[str, int], ...] = ()
    redis_master: str | None = None
    public_url: str = ""
    ice_host: tuple[str, ...] = ()
    ice_servers: tuple[str, ...] = ()
    turn_secret: str | None = field(default=None, repr=False)
    advertise_url: str = ""  # "" until the CLI knows the port: see advertised_url
    organiser_key: str = field(default="", repr=False)
    organiser_key_generated: bool = False
    admin_key: str | None = field(default=None, repr=False)
    default_city: str = "Helsinki"
    categories: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    cluster_secret: str | None = field(default=None, repr=False)
    demo: bool = False
    data_dir: str | None = None
    recording_retention_days: float = 30.0
    rtmp_port: int | None = 1935
    rtmp_port_default: bool = False  # not asked for: if taken, any free port will do
    lobby_size: int = 12
    chat_retention: float = 24 * 3600.0
    insight_retention: float = 30.0  # days
    media_sender: str = "direct"
    event_loop: str = "asyncio"
    log_format: str = "auto"
    log_level: str = "info"
    shutdown_timeout: float = 5.0

    def __post_init__(self) -> None:
        if bool(self.redis_sentinel) != bool(self.redis_master):
            raise ValueError(
                "--redis-sentinel needs --redis-master (LAMPIO_REDIS_MASTER), and only it does"
            )
        if self.redis_sentinel and self.redis_url:
            parts = urlsplit(self.redis_url)
            if parts.scheme != "redis" or parts.hostname:
                raise ValueError(
                    "with --redis-sentinel, --redis-url gives only the password and database, "
                    "as redis://:secret@/0 (the sentinels name the master)"
                )
        if not 1 <= self.lobby_size <= 100:
            raise ValueError("lobby_size must be 1–100")
        if self.media_sender not in {"direct", "aiortc"}:
            raise ValueError("media_sender must be direct or aiortc")
        if self.cluster_secret is not None and len(self.cluster_secret) < CLUSTER_SECRET_MIN:
            raise ValueError(f"cluster_secret must be at least {CLUSTER_SECRET_MIN} characters")
        if self.event_loop not in {"asyncio", "uvloop"}:
            raise ValueError("event_loop must be asyncio or uvloop")
        if self.log_format not in {"auto", "json", "console"}:
            raise ValueError("log_format must be auto, json or console")
        if self.log_level not in {"debug", "info", "warning", "error"}:
            raise ValueError("log_level must be debug, info, warning or error")
        if self.organiser_key and len(self.organiser_key) < ORGANISER_KEY_MIN:
            raise ValueError(f"organiser_key must be at least {ORGANISER_KEY_MIN} characters")
        if self.admin_key is not None and len(self.admin_key) < ORGANISER_KEY_MIN:
            raise ValueError(f"admin_key must be at least {ORGANISER_KEY_MIN} characters")
        if self.admin_key is not None and self.admin_key == self.organiser_key:
            raise ValueError("admin_key and organiser_key must differ")
        if not self.default_city.strip() or len(self.default_city) > 60:
            raise ValueError("default_city must be 1–60 characters")
        for category in self.categories:
            if not re.fullmatch(r"[a-z][a-z0-9-]{0,29}", category):
                raise ValueError(
                    "categories must be lowercase words (a–z, digits, '-'), like 'dance'"
                )
        for url in self.ice_servers:
            if (problem := ice_url_problem(url)) is not None:
                raise ValueError(f"--ice-servers (LAMPIO_ICE_SERVERS): {problem}")
        if not self.turn_secret and any(u.startswith("turn") for u in self.ice_servers):
            raise ValueError(
                "--ice-servers has TURN URLs but no --turn-secret (LAMPIO_TURN_SECRET, coturn's "
                "static-auth-secret): TURN credentials are made from it, and without it no TURN "
                "server would be offered"
            )
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted_proxies: not an address or network: {proxy!r}") from exc
        if self.public_url:
            parts = urlsplit(self.public_url)
            if parts.scheme not in {"http", "https"} or not parts.netloc:
                raise ValueError("public_url must be an http(s) URL")
        if self.advertise_url:
            parts = urlsplit(self.advertise_url)
            if (
                parts.scheme not in {"http", "https"}
                or not parts.hostname
                or parts.query
                or parts.fragment
            ):
                raise ValueError(
                    "advertise_url must be an http(s) URL with a host (no query or fragment)"
                )

    @property
    def uses_redis(self) -> bool:
        """Whether the bus is Redis (by URL, or the master Sentinel names): shared by nodes."""
        return bool(self.redis_url or self.redis_sentinel)

    @property
    def origins(self) -> frozenset[str]:
        """Origins whose pages may open WebSockets to this server."""
        parts = urlsplit(self.public_url)
        return frozenset({f"{parts.scheme}://{parts.netloc}", *self.allowed_origins})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting; each flag's help names its environment variable."""
    for setting in SETTINGS:
        help_text = f"{setting.help} [env {setting.env}]"
        if setting.repeatable:
            parser.add_argument(setting.flag, action="append", default=None, help=help_text)
        elif setting.parse is _bool:
            # `--demo` alone means yes; `--demo no` is accepted too.
            parser.add_argument(setting.flag, nargs="?", const="yes", default=None, help=help_text)
        else:
            parser.add_argument(setting.flag, default=None, help=help_text)


def load_config(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """Merge flags over environment over defaults into a :class:`Config`; ValueError if invalid."""
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw: Any = getattr(args, setting.name, None)
        if raw is None:
            raw = environ.get(setting.env)
        if raw is None or raw == "":
            continue
        try:
            if setting.repeatable and isinstance(raw, list):
                values[setting.name] = tuple(v for item in raw for v in setting.parse(item))
            else:
                values[setting.name] = setting.parse(raw)
        except ValueError as exc:
            raise ValueError(f"{setting.flag} / {setting.env}: {exc}") from exc
    if "log_format" in values:
        values["log_format"] = values["log_format"].lower()
    if "log_level" in values:
        values["log_level"] = values["log_level"].lower()
    defaults = {f.name: f.default for f in fields(Config)}
    host = values.get("host", defaults["host"])
    port = values.get("port", defaults["port"])
    if not values.get("public_url"):
        shown_host = f"[{host}]" if ":" in host else host
        values["public_url"] = f"http://{shown_host}:{port}"
    values["public_url"] = values["public_url"].rstrip("/")
    if values.get("advertise_url"):
        values["advertise_url"] = values["advertise_url"].rstrip("/")
    values["rtmp_port_default"] = "rtmp_port" not in values
    if not values.get("organiser_key"):
        values["organiser_key"] = secrets.token_urlsafe(32)
        values["organiser_key_generated"] = True
    return Config(**values)


def advertised_url(config: Config, machine_addresses: Sequence[str] = ()) -> str:
    """The base URL other nodes reach this node at: ``--advertise-url``, else
    ``http://HOST:PORT``, where a wildcard HOST gives way to the first ``--ice-host`` (of its
    family, for 0.0.0.0), else to the first of ``machine_addresses``, else to loopback."""
    if config.advertise_url:
        return config.advertise_url
    host = config.host
    if host in WILDCARD_HOSTS:
        candidates = [*config.ice_host, *machine_addresses]
        if host == "0.0.0.0":  # noqa: S104 (IPv4 only: an IPv6 address is not listened on)
            candidates = [a for a in candidates if ":" not in a]
        host = candidates[0] if candidates else ("::1" if host == "::" else "127.0.0.1")
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{config.port}"


def setting_names() -> Sequence[str]:
    """Every ``LAMPIO_*`` environment variable the service reads."""
    return [s.env for s in SETTINGS]
