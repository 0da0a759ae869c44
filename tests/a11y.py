"""Accessibility checks in the browser tests: axe-core's WCAG rules run inside the page.

axe-core comes from the npm registry (``make test`` installs it under ``.axe/``); it is evaluated
through the DevTools protocol, so the pages' Content-Security-Policy stays as it is in production.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

AXE = Path(__file__).resolve().parents[1] / ".axe/node_modules/axe-core/axe.min.js"

# WCAG 2.0, 2.1 and 2.2, levels A and AA: what the accessibility law asks, and 2.2 beyond it.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]

needs_axe = pytest.mark.skipif(not AXE.exists(), reason="needs axe-core: run `make test`")

_RUN = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ') + ': ' + n.failureSummary),
  }));
}"""


async def axe_violations(page: Page, tags: list[str] | None = None) -> list[dict[str, Any]]:
    """The page's violations of the WCAG A/AA rules as it is now (empty when it passes)."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    violations: list[dict[str, Any]] = await page.evaluate(_RUN, tags or WCAG_TAGS)
    return violations


def describe(violations: list[dict[str, Any]]) -> str:
    """Violations in a readable form for an assertion message."""
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']}")
        lines.extend(f"    {node}" for node in v["nodes"])
    return "\n".join(lines)


async def assert_accessible(page: Page, state: str) -> None:
    """Fail with axe's findings if the page, in the named state, breaks a WCAG A/AA rule."""
    violations = await axe_violations(page)
    assert not violations, f"{state}: {len(violations)} axe violations\n{describe(violations)}"
