"""docker-compose.yml and the Dockerfile name the settings the service really reads.

Docker does not run on this machine, so the files are checked by parsing them (and HAProxy's
configuration by HAProxy itself).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from lampio_stream.config import setting_names

ROOT = Path(__file__).resolve().parent.parent
HAPROXY = Path("/usr/sbin/haproxy")


def test_compose_has_three_nodes_haproxy_redis_and_coturn_with_real_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"app1", "app2", "app3", "haproxy", "redis", "coturn"} <= set(services)
    known = set(setting_names())
    ports = set()
    for name in ("app1", "app2", "app3"):
        env = services[name]["environment"]
        unknown = {key for key in env if key.startswith("LAMPIO_")} - known
        assert not unknown, f"compose sets settings the service does not read: {unknown}"
        assert {"LAMPIO_REDIS_URL", "LAMPIO_TURN_SECRET", "LAMPIO_CLUSTER_SECRET"} <= set(env)
        assert env["LAMPIO_REDIS_URL"] == "redis://127.0.0.1:6379/0"
        assert services[name]["build"] == "."
        ports.add(env["LAMPIO_PORT"])
    # HAProxy sends HTTP and RTMP to exactly these nodes, checking /readyz.
    proxy = (ROOT / "deploy" / "haproxy.cfg").read_text()
    assert {f"127.0.0.1:{port}" for port in ports} <= set(proxy.split())
    assert "option httpchk GET /readyz" in proxy and "timeout tunnel" in proxy
    mount = "./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"
    assert mount in services["haproxy"]["volumes"]
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


@pytest.mark.needs(HAPROXY, "HAProxy (Debian's haproxy package; `make test` installs it)")
def test_the_haproxy_configuration_is_valid() -> None:
    checked = subprocess.run(
        [str(HAPROXY), "-c", "-f", str(ROOT / "deploy" / "haproxy.cfg")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
