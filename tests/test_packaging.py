"""The project's top-level packages are this project's, not PyPI namesakes."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["lampio_stream", "rooms", "media", "signaling", "clients"])
def test_package_resolves_to_this_project(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().parent == ROOT / name


def test_console_script_is_installed() -> None:
    from importlib.metadata import entry_points

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("lampio-stream") == "lampio_stream.cli:main"


def test_browser_files_ship_with_the_package() -> None:
    from clients import WEB_ROOT

    for name in (
        "index.html",
        "studio.html",
        "app.css",
        "i18n.js",
        "index.js",
        "studio.js",
        "protocol.js",
        "watch/watching.js",
        "studio/publish.js",
    ):
        assert (WEB_ROOT / name).is_file(), name
