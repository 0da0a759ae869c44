"""Configuration: flags over environment over defaults, read once into a frozen dataclass."""

from __future__ import annotations

import dataclasses

import pytest

from lampio_stream.app import server_ice_servers
from lampio_stream.cli import build_parser
from lampio_stream.config import SETTINGS, Config, advertised_url, load_config


def parse(argv: list[str], env: dict[str, str] | None = None) -> Config:
    args = build_parser().parse_args(["serve", *argv])
    return load_config(args, env or {})


def test_defaults_are_local_and_generate_an_organiser_key() -> None:
    config = parse([])
    assert (config.host, config.port, config.redis_url) == ("127.0.0.1", 8080, None)
    assert config.public_url == "http://127.0.0.1:8080"
    assert config.ice_servers == ()  # never a public STUN server by default
    assert config.organiser_key_generated and len(config.organiser_key) >= 40
    assert parse([]).organiser_key != config.organiser_key


def test_environment_is_read_and_flags_win() -> None:
    env = {
        "LAMPIO_PORT": "9000",
        "LAMPIO_REDIS_URL": "redis://127.0.0.1:6390/0",
        "LAMPIO_ORGANISER_KEY": "from-env-0123456789",
        "LAMPIO_ICE_HOST": "127.0.0.1, ::1",
        "LAMPIO_ICE_SERVERS": "stun:127.0.0.1:3478,turn:127.0.0.1:3478",
        "LAMPIO_TURN_SECRET": "s3cret",
    }
    config = parse(["--port", "9100", "--ice-host", "127.0.0.2"], env)
    assert config.port == 9100
    assert config.redis_url == "redis://127.0.0.1:6390/0"
    assert config.organiser_key == "from-env-0123456789" and not config.organiser_key_generated
    assert config.ice_host == ("127.0.0.2",)
    assert config.ice_servers == ("stun:127.0.0.1:3478", "turn:127.0.0.1:3478")
    assert parse([], env).ice_host == ("127.0.0.1", "::1")


def test_repeated_and_comma_separated_ice_hosts() -> None:
    config = parse(["--ice-host", "127.0.0.1", "--ice-host", "127.0.0.2,127.0.0.3"])
    assert config.ice_host == ("127.0.0.1", "127.0.0.2", "127.0.0.3")


def test_public_url_and_origins() -> None:
    config = parse(
        ["--public-url", "https://live.example.fi/", "--allowed-origins", "https://a.fi"]
    )
    assert config.public_url == "https://live.example.fi"
    assert config.origins == {"https://live.example.fi", "https://a.fi"}


def test_config_is_frozen() -> None:
    config = parse([])
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "70000"], "--port"),
        (["--port", "http"], "--port"),
        (["--log-format", "xml"], "log_format"),
        (["--event-loop", "trio"], "event_loop"),
        (["--public-url", "ftp://x"], "public_url"),
        (["--shutdown-timeout", "-1"], "--shutdown-timeout"),
    ],
)
def test_bad_values_are_refused_with_the_setting_named(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(argv)


def test_every_setting_has_a_field_flag_env_and_help() -> None:
    fields = {f.name for f in dataclasses.fields(Config)}
    help_text = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()  # type: ignore[union-attr]
    for setting in SETTINGS:
        assert setting.name in fields
        assert setting.flag in help_text and setting.env in help_text


def test_cluster_secret_is_long_kept_out_of_repr_and_optional() -> None:
    assert parse([]).cluster_secret is None
    secret = "s" * 32
    config = parse([], {"LAMPIO_CLUSTER_SECRET": secret})
    assert config.cluster_secret == secret and secret not in repr(config)
    with pytest.raises(ValueError, match="cluster_secret must be at least 32"):
        parse(["--cluster-secret", "s" * 31])


def test_advertise_url_defaults_to_host_and_port_and_never_to_a_wildcard() -> None:
    assert advertised_url(parse(["--port", "9001"])) == "http://127.0.0.1:9001"
    assert advertised_url(parse(["--host", "::1", "--port", "9001"])) == "http://[::1]:9001"
    # every interface: the first ICE host of the family listened on, else the machine's address
    wildcard = parse(["--host", "0.0.0.0", "--ice-host", "::1,10.1.2.3", "--ice-host", "10.9.9.9"])
    assert advertised_url(wildcard) == "http://10.1.2.3:8080"
    assert (
        advertised_url(parse(["--host", "::", "--ice-host", "fd00::5"])) == "http://[fd00::5]:8080"
    )
    machine = ("fe80::1", "192.168.1.20")
    assert advertised_url(parse(["--host", "0.0.0.0"]), machine) == "http://192.168.1.20:8080"
    assert advertised_url(parse(["--host", "0.0.0.0"])) == "http://127.0.0.1:8080"
    # given: as given (behind NAT, in a container), without a trailing slash
    given = parse(["--host", "0.0.0.0", "--advertise-url", "http://node-b.internal:8080/"])
    assert given.advertise_url == "http://node-b.internal:8080"
    assert advertised_url(given, machine) == "http://node-b.internal:8080"


@pytest.mark.parametrize(
    "url", ["node-b:8080", "ftp://node-b", "http://", "http://node-b/?x=1", "http://node-b/#top"]
)
def test_a_wrong_advertise_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="advertise_url"):
        parse(["--advertise-url", url])


def test_redis_sentinels_and_the_master_name() -> None:
    argv = ["--redis-sentinel", "10.0.0.1:26379, [::1]:26380", "--redis-master", "lampio"]
    config = parse(argv)
    assert config.redis_sentinel == (("10.0.0.1", 26379), ("::1", 26380))
    assert config.redis_master == "lampio" and config.redis_url is None
    assert config.uses_redis and not parse([]).uses_redis
    env = {
        "LAMPIO_REDIS_SENTINEL": "sentinel-1:26379,sentinel-2:26379",
        "LAMPIO_REDIS_MASTER": "live",
        "LAMPIO_REDIS_URL": "redis://:secret@/2",  # the password and database only
    }
    config = parse([], env)
    assert config.redis_sentinel == (("sentinel-1", 26379), ("sentinel-2", 26379))
    assert (config.redis_master, config.redis_url) == ("live", "redis://:secret@/2")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--redis-sentinel", "10.0.0.1:26379"], "--redis-master"),
        (["--redis-master", "lampio"], "--redis-master"),
        (["--redis-sentinel", "10.0.0.1", "--redis-master", "lampio"], "--redis-sentinel"),
        (["--redis-sentinel", "10.0.0.1:0", "--redis-master", "lampio"], "--redis-sentinel"),
        (["--redis-sentinel", ":26379", "--redis-master", "lampio"], "--redis-sentinel"),
        (["--redis-sentinel", ",", "--redis-master", "lampio"], "--redis-sentinel"),
        (
            ["--redis-sentinel", "s:26379", "--redis-master", "m", "--redis-url", "redis://r:6379"],
            "--redis-url",
        ),
        (
            ["--redis-sentinel", "s:26379", "--redis-master", "m", "--redis-url", "rediss://:x@/0"],
            "--redis-url",
        ),
    ],
)
def test_bad_sentinel_settings_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(argv)


# TURN over UDP, TCP and TLS side by side, as docs/operations.md configures coturn.
TURN_URLS = (
    "stun:turn.example.fi:3478",
    "turn:turn.example.fi:3478?transport=udp",
    "turn:turn.example.fi:3478?transport=tcp",
    "turns:turn.example.fi:443?transport=tcp",
)


def test_turn_over_udp_tcp_and_tls_side_by_side() -> None:
    config = parse(["--ice-servers", ",".join(TURN_URLS), "--turn-secret", "s3cret"])
    assert config.ice_servers == TURN_URLS
    assert parse(["--ice-servers", "turn:127.0.0.1,turns:127.0.0.1"], {"LAMPIO_TURN_SECRET": "s"})


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("turn.example.fi:3478", "not a STUN/TURN URL"),
        ("http://turn.example.fi", "not a STUN/TURN URL"),
        ("turn:[::1]:3478", "not a STUN/TURN URL"),  # aiortc cannot parse it
        ("turn:turn.example.fi:3478?transport=sctp", "not a STUN/TURN URL"),
        ("turn:turn.example.fi:70000", "port out of range"),
        ("stun:turn.example.fi:3478?transport=tcp", "a STUN URL has no transport"),
        ("turns:turn.example.fi:443?transport=udp", "DTLS"),
    ],
)
def test_a_wrong_ice_server_url_is_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(["--ice-servers", url, "--turn-secret", "s3cret"])


def test_turn_urls_without_a_turn_secret_are_refused() -> None:
    # Without the secret no credentials can be made, and the TURN URLs would silently vanish.
    with pytest.raises(ValueError, match="no --turn-secret"):
        parse(["--ice-servers", "turn:turn.example.fi:3478?transport=tcp"])
    assert parse(["--ice-servers", "stun:turn.example.fi:3478"]).ice_servers


def test_the_nodes_own_peers_use_stun_and_no_turn() -> None:
    config = parse(["--ice-servers", ",".join(TURN_URLS), "--turn-secret", "s3cret"])
    ((server,),) = [server_ice_servers(config)]
    assert server.urls == ["stun:turn.example.fi:3478"]
    assert server_ice_servers(parse([])) == []
