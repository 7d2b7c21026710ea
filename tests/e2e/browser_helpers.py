"""What the browser tests need besides the stack: Debian's Chromium, axe-core, the checks every
page must pass (WCAG 2.1 AA, no English in fi/sv, no word broken at 360 px), and screenshots."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Page

from adapters.tables import TableRepository
from devhost import azurite
from devhost.azurite import PROJECT_ROOT, free_port
from devhost.graph_emulator import GraphEmulator
from devhost.seed import seed
from devhost.testing import DevhostProcess
from tests.e2e.conftest import GRAPH_SECRET, Stack

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking switches Chromium keeps calling home on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
PHONE = {"width": 360, "height": 780}
DESKTOP = {"width": 1280, "height": 900}
# axe-core from npm (package.json pins it). An init script runs before the page's own scripts and,
# coming from the browser's debugging protocol, is not subject to the portal's CSP.
AXE = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
# EN 301 549 clause 9 is WCAG 2.1 level A and AA.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# Words that give away an English text inside a Finnish or Swedish page (server errors included).
ENGLISH = re.compile(
    r"\b(the|and|please|error|must|cannot|could not|not found|is|are|was|booking|meeting|"
    r"appointment|code|time|call us|sign in|wrong|try again)\b",
    re.IGNORECASE,
)


@contextlib.contextmanager
def own_stack(clock: str = "frozen", **env: str) -> Iterator[Stack]:
    """A whole stack of its own (Azurite, Graph emulator, devhost with the bank's real settings,
    24 h notice included): no other test's bookings, busy times or background work reach it."""
    with azurite.running() as storage, GraphEmulator() as graph:
        repo = TableRepository.from_connection_string(storage.connection_string)
        seed(repo)
        port = free_port()
        settings = {
            "DEV_MODE": "true",
            "DEVHOST_PORTAL": "1",
            "GRAPH_BASE_URL": graph.base_url,
            "GRAPH_SENDER_MAILBOX": "neuvottelut@pankki.example",
            "GRAPH_NOTIFICATION_URL": f"http://127.0.0.1:{port}/api/graph/notifications",
            "GRAPH_CLIENT_STATE": GRAPH_SECRET,
            "PORTAL_BASE_URL": f"http://127.0.0.1:{port}",
            **env,
        }
        with DevhostProcess(storage=storage.connection_string, port=port, clock=clock, env=settings) as host:
            yield Stack(host, graph, repo)


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


def with_axe(context: BrowserContext) -> BrowserContext:
    context.add_init_script(path=str(AXE))
    return context


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 A/AA violations of the page as it is now (every open dialog included)."""
    result: list[dict[str, Any]] = page.evaluate(
        """async (tags) => {
            const options = { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] };
            const r = await axe.run(document, options);
            return r.violations.map((v) => ({ id: v.id, help: v.help,
              nodes: v.nodes.map((n) => n.target.join(" ") + ": " + n.failureSummary) }));
        }""",
        WCAG_TAGS,
    )
    return result


# A word (split at spaces and hyphens) whose letters lie on two lines was broken mid-word.
_BROKEN_WORDS = """() => {
  const broken = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || el.closest("[hidden], script, style, dialog:not([open])") || !el.offsetParent) continue;
    const re = /[^\\s\\u2013\\u2014-]+/g;
    for (let m = re.exec(node.data); m; m = re.exec(node.data)) {
      if (m[0].length < 4) continue;
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const rects = [...range.getClientRects()].filter((r) => r.width > 0);
      const tops = new Set(rects.map((r) => Math.round(r.top)));
      if (tops.size > 1) broken.push(m[0]);
    }
  }
  return broken;
}"""


def broken_words(page: Page) -> list[str]:
    result: list[str] = page.evaluate(_BROKEN_WORDS)
    return result


def english_in(page: Page) -> list[str]:
    """English words in what a visitor reads (the main content, the dialog and the navigation)."""
    text: str = page.evaluate(
        """() => [...document.querySelectorAll("main, nav, dialog[open]")]
            .map((e) => e.innerText).join("\\n")"""
    )
    return sorted({m.group(0) for m in ENGLISH.finditer(text)})


def check_page(page: Page, name: str, lang: str = "fi") -> None:
    """Every page and state: zero axe violations, no English in fi/sv, no word broken at phone width."""
    page.wait_for_function("() => !document.querySelector('[aria-busy=true]')")
    violations = axe_violations(page)
    assert violations == [], f"{name}: {violations}"
    if lang != "en":
        assert english_in(page) == [], f"{name}: English in a {lang} page"
    if page.viewport_size and page.viewport_size["width"] <= 400:
        assert broken_words(page) == [], f"{name}: words broken at {page.viewport_size['width']} px"
