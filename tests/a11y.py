"""Accessibility checks in the browser tests: axe-core's WCAG rules run inside the page.

axe-core comes from the npm registry (``make test`` installs it under ``.axe/``); it is evaluated
through the DevTools protocol, so the pages' Content-Security-Policy stays as it is in production.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

from tests.browser import PAGE_INTERVAL, Tab
from tests.helpers import eventually

AXE = Path(__file__).resolve().parents[1] / ".axe/node_modules/axe-core/axe.min.js"

# WCAG 2.0, 2.1 and 2.2, levels A and AA: what the accessibility law asks, and 2.2 beyond it.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]

# Skipped without axe-core, except in CI (CI set), where that fails: see tests/conftest.py.
needs_axe = pytest.mark.needs(AXE, "axe-core (`make test` installs it)")

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


# The pages' language buttons, in the order the checks visit them (back to Finnish last).
LANGS = [("sv", "Svenska"), ("en", "English"), ("fi", "Suomi")]


async def accessible_in_every_language(tab: Tab, state: str) -> None:
    """axe finds nothing in Finnish (as it is), Swedish and English; ends in Finnish."""
    await assert_accessible(tab.page, f"{state} (fi)")
    for lang, button in LANGS:
        await tab.page.get_by_role("button", name=button, exact=True).click()
        await eventually(
            lambda: tab.eval("() => document.documentElement.lang"), 5, interval=PAGE_INTERVAL
        )
        assert await tab.eval("() => document.documentElement.lang") == lang
        if lang != "fi":
            await assert_accessible(tab.page, f"{state} ({lang})")


# Text that overlaps other text, leaves the screen, or is cut by its box; and a page that scrolls
# sideways. Text is measured per text node, so a label and its button's words are apart.
LAYOUT_PROBLEMS = """() => {
  const problems = [];
  const width = document.documentElement.clientWidth;
  const boxes = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.trim();
    const parent = node.parentElement;
    // (a closed <details> keeps its text laid out but unseen: only its summary counts)
    const unseen = '.sr-only, [aria-hidden="true"], option, details:not([open]) > :not(summary)';
    if (!text || !parent || parent.closest(unseen)) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const rect of range.getClientRects()) {
      if (rect.width < 1 || rect.height < 1) continue;
      const box = {text: text.slice(0, 40), l: rect.left, r: rect.right,
                   t: rect.top + scrollY, b: rect.bottom + scrollY};
      if (box.r > width + 1 || box.l < -1) problems.push(`off the screen: ${box.text}`);
      boxes.push(box);
    }
    for (let el = parent; el && el !== document.body; el = el.parentElement) {
      const style = getComputedStyle(el);
      if (style.overflowX !== 'visible' && el.scrollWidth > el.clientWidth + 1) {
        problems.push(`cut by ${el.tagName}#${el.id}.${el.className}: ${text.slice(0, 40)}`);
        break;
      }
    }
  }
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i], b = boxes[j];
      const x = Math.min(a.r, b.r) - Math.max(a.l, b.l);
      const y = Math.min(a.b, b.b) - Math.max(a.t, b.t);
      if (x > 2 && y > 2) problems.push(`overlap: ${a.text} / ${b.text}`);
    }
  }
  if (document.documentElement.scrollWidth > width + 1) problems.push('the page scrolls sideways');
  return [...new Set(problems)];
}"""


async def layout_problems(page: Page, state: str) -> None:
    problems = await page.evaluate(LAYOUT_PROBLEMS)
    assert not problems, f"{state}: {problems}"


# Targets smaller than asked: 64 CSS px for the primary actions, 44 for every other control
# (links inside sentences are exempt, as in WCAG 2.5.8).
SMALL_TARGETS = """() => {
  const small = [];
  for (const el of document.querySelectorAll('button, input, select, summary')) {
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height) continue;
    const least = el.matches('.primary, .big, .key, .react, .controls button') ? 64 : 44;
    if (box.height < least - 0.5 || box.width < 44 - 0.5) {
      small.push(`${el.id || el.textContent.trim().slice(0, 20)}: ${box.width}x${box.height}`);
    }
  }
  return small;
}"""


async def assert_targets_large(page: Page, state: str) -> None:
    small = await page.evaluate(SMALL_TARGETS)
    assert not small, f"{state}: small targets {small}"
