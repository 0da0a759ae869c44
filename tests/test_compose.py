"""docker-compose.yml and the Dockerfile name the settings the service really reads.

Docker does not run on this machine, so the files are checked by parsing them.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from lampio_stream.config import setting_names

ROOT = Path(__file__).resolve().parent.parent


def test_compose_has_app_redis_and_coturn_with_real_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"app", "redis", "coturn"} <= set(services)
    env = services["app"]["environment"]
    known = set(setting_names())
    unknown = {name for name in env if name.startswith("LAMPIO_")} - known
    assert not unknown, f"compose sets settings the service does not read: {unknown}"
    assert {"LAMPIO_REDIS_URL", "LAMPIO_TURN_SECRET", "LAMPIO_ICE_SERVERS"} <= set(env)
    assert env["LAMPIO_REDIS_URL"].startswith("redis://redis:")
    assert services["app"]["build"] == "."
    coturn = " ".join(services["coturn"]["command"])
    assert "--use-auth-secret" in coturn and "--static-auth-secret=" in coturn


def test_dockerfile_sets_only_real_settings_and_runs_the_command() -> None:
    text = (ROOT / "Dockerfile").read_text()
    known = set(setting_names())
    names = {w.split("=")[0] for w in text.split() if w.startswith("LAMPIO_") and "=" in w}
    assert names and names <= known
    assert 'CMD ["lampio-stream", "serve"]' in text
    for package in ("lampio_stream", "rooms", "media", "signaling", "clients"):
        assert f"COPY {package} " in text
