"""The pages' text: every key in Finnish, Swedish and English, none defined twice, and every key the
pages use (``data-t="…"``, ``t('…')``) present. The catalogues are read as the browser reads them
(node imports clients/web/i18n.js with what clients/web/text/*.js merge in)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[1] / "clients/web"
LANGS = ("fi", "sv", "en")
NODE = shutil.which("node")

# Keys made at run time from a prefix and a known set of endings.
DYNAMIC = {
    "state_": ("scheduled", "live", "paused", "ended"),
    "watch_": ("opening", "scheduled", "live", "paused", "ended", "cancelled", "lost", "removed"),
    "group_": ("today", "week", "later"),
    # the categories every deployment has ("sing-along" is category_sing_along)
    "category_": ("concert", "theatre", "sing_along", "exercise", "talk", "quiz", "other"),
    "meter_": ("applause", "laughter", "heart", "bravo"),
    "warn_": ("b_frames", "unsupported_codec"),
    "fb_score_": ("1", "2", "3", "4", "5"),  # the feedback's smileys, named in words
}


@pytest.fixture(scope="module")
def catalogues() -> dict[str, dict[str, str]]:
    """TEXT as the pages see it, after every page's own catalogue has joined."""
    if NODE is None:
        pytest.skip("needs node")
    script = (
        f"const m = await import({json.dumps((WEB / 'i18n.js').as_uri())});"
        "process.stdout.write(JSON.stringify(m.TEXT));"
    )
    out = subprocess.run(
        [NODE, "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    text: dict[str, dict[str, str]] = json.loads(out.stdout)
    return text


def test_every_key_is_in_all_three_languages(catalogues: dict[str, dict[str, str]]) -> None:
    keys = {lang: set(catalogues[lang]) for lang in LANGS}
    for lang in LANGS:
        for other in LANGS:
            missing = sorted(keys[other] - keys[lang])
            assert not missing, f"{lang} lacks {missing}"
    # the placeholders ({title}, {count}) are the same in every language
    for key in keys["fi"]:
        wanted = set(re.findall(r"\{(\w+)\}", catalogues["fi"][key]))
        for lang in ("sv", "en"):
            assert set(re.findall(r"\{(\w+)\}", catalogues[lang][key])) == wanted, (lang, key)


def _defined_keys(source: str, lang: str) -> list[str]:
    """The keys of one language's block in a catalogue file, as written (duplicates kept)."""
    start = re.search(rf"^\s*{lang}: \{{", source, re.MULTILINE)
    if start is None:
        return []
    depth, end = 0, start.end() - 1
    for end in range(start.end() - 1, len(source)):
        depth += {"{": 1, "}": -1}.get(source[end], 0)
        if depth == 0:
            break
    block = source[start.end() : end]
    # a key starts a line or follows a comma, and is followed by a colon and a quote
    return re.findall(r"(?:^|,)\s*(\w+):\s*['\"`]", block, re.MULTILINE)


def test_no_key_is_defined_twice() -> None:
    files = [WEB / "i18n.js", *sorted((WEB / "text").glob("*.js"))]
    for lang in LANGS:
        seen: dict[str, str] = {}
        for path in files:
            for key in _defined_keys(path.read_text(encoding="utf-8"), lang):
                assert key not in seen, f"{lang}.{key} in {path.name} and {seen[key]}"
                seen[key] = path.name
        assert len(seen) > 50


def _page_files() -> list[Path]:
    """Every page and module: the pages' HTML and the JavaScript in clients/web and its folders
    (watch/, studio/ and the like), but not the catalogues in text/."""
    files = [*WEB.glob("*.html"), *WEB.rglob("*.js")]
    return sorted(path for path in files if path.relative_to(WEB).parts[0] != "text")


def _used_keys() -> dict[str, set[str]]:
    """The keys each page file uses literally: data-t="…" and t('…') and the like, by the file's
    path under clients/web."""
    patterns = [
        r"data-t=\"([\w.]+)\"",
        r"\bt\(\s*'([\w.]+)'\s*[,)]",
        r"\bt\(\s*\"([\w.]+)\"\s*[,)]",
        r"dataset\.t\s*=\s*'([\w.]+)'",
        r"feedButton\(\s*'([\w.]+)'",
        r"\?\s*'(\w+)'\s*:\s*'(\w+)'",  # key = cond ? 'a_key' : 'b_key'
    ]
    used: dict[str, set[str]] = {}
    for path in _page_files():
        source = path.read_text(encoding="utf-8")
        found: set[str] = set()
        for pattern in patterns:
            for match in re.finditer(pattern, source):
                found.update(group for group in match.groups() if group)
        used[path.relative_to(WEB).as_posix()] = found
    return used


def test_every_key_the_pages_use_exists(catalogues: dict[str, dict[str, str]]) -> None:
    fi = catalogues["fi"]
    used = _used_keys()
    assert "code_label" in used["index.html"] and "go_live" in used["studio.html"]
    # the modules in folders are read too, not only the pages' entry points
    assert any("/" in name and keys for name, keys in used.items())
    for name, keys in used.items():
        # the ternaries also catch plain strings ('live' : 'ready'): only key-like ones count
        missing = sorted(k for k in keys if k not in fi and ("_" in k or name.endswith(".html")))
        assert not missing, f"{name} uses keys no catalogue has: {missing}"
    for prefix, endings in DYNAMIC.items():
        for ending in endings:
            assert prefix + ending in fi, prefix + ending
