"""Browser and accessibility tests skip on a machine without Chromium or axe-core, and fail in CI
(``CI`` set) rather than passing without having run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.a11y import AXE, needs_axe
from tests.browser import CHROMIUM, needs_chromium
from tests.helpers import check_needs


class Item:
    """As much of a collected test as ``check_needs`` reads: its marks."""

    def __init__(self, *marks: pytest.MarkDecorator) -> None:
        self.marks = [decorator.mark for decorator in marks]

    def iter_markers(self, name: str) -> Iterator[pytest.Mark]:
        return (mark for mark in self.marks if mark.name == name)


MISSING = pytest.mark.needs(Path("/nonexistent/chromium"), "headless Chromium")


def test_browser_and_axe_tests_need_chromium_and_axe() -> None:
    assert needs_chromium.mark.name == needs_axe.mark.name == "needs"
    assert needs_chromium.mark.args[0] == CHROMIUM and needs_axe.mark.args[0] == AXE


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_missing_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="needs headless Chromium"):
        check_needs(Item(MISSING))  # type: ignore[arg-type]


@pytest.mark.parametrize("ci", ["true", "1"])
def test_missing_fails_in_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match=r"in CI .* fail instead of skipping"):
        check_needs(Item(MISSING))  # type: ignore[arg-type]


def test_what_is_there_neither_skips_nor_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CI", "true")
    check_needs(Item(pytest.mark.needs(tmp_path, "a directory")))  # type: ignore[arg-type]
