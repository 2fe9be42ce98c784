"""The gallery in a real browser: Debian's chromium (installed by .ci/run) driven by
Playwright. While a paced dummy network runs, each step recorded shows on the page within 2 s;
a visitor's submission starts a thread whose gallery the browser then follows. The test reads
the DOM as it waits; a screenshot is kept as an artifact."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandloop import api
from tests.web.serving import serving

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api_url")]

CHROMIUM = "/usr/bin/chromium"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "networks"
# A visitor's run: paced, so the page has something to follow live.
VISITOR = {
    "stop": {"max_steps": 8, "stop_on_repeat": False},
    "pace": {"kind": "constant", "seconds": 0.6},
}
# Chromium on a closed network: no background connections, no first-run work (see NOTES).
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def artifacts() -> Path:
    folder = Path(os.environ.get("SANDLOOP_ARTIFACTS", "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield launched
        launched.close()


def test_a_submission_is_followed_live_step_by_step(
    browser: Any, tmp_path: Path, prefect_api_url: str
) -> None:
    from sandloop.web.app import create_app

    home = tmp_path / "home"
    app = create_app(home, networks=[EXAMPLES / "balloon.yaml"], visitor_run=VISITOR)
    with serving(app) as base_url:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{base_url}/submit/balloon")
        page.fill("#prompt", "a red balloon over the sea")
        page.click("button[type=submit]")
        page.wait_for_url(f"{base_url}/gallery/*", timeout=30_000)
        thread = page.url.rsplit("/", 1)[1]
        assert len(thread) == 32
        shown_late = follow(page, home, thread, steps=8)
        assert not shown_late, f"steps shown more than 2 s after their record: {shown_late}"
        page.wait_for_selector("#status[data-state=completed]", timeout=10_000)
        images = page.locator("figure.image img")
        assert images.count() == 4
        assert all(images.nth(i).evaluate("i => i.naturalWidth > 0") for i in range(4))
        assert page.locator(".invite img").evaluate("i => i.naturalWidth > 0")  # the QR code
        page.screenshot(path=str(artifacts() / "gallery.png"))
        screen = browser.new_page(viewport={"width": 1280, "height": 800})
        screen.goto(f"{base_url}/gallery/{thread}/screen")
        screen.wait_for_selector("figure[data-step='7']", timeout=10_000)
        assert screen.locator("figure.output").count() == 1  # one output, full screen
        screen.screenshot(path=str(artifacts() / "gallery-screen.png"))
        if os.environ.get("SANDLOOP_DOCS_SCREENSHOT"):
            shutil.copy(artifacts() / "gallery.png", os.environ["SANDLOOP_DOCS_SCREENSHOT"])


def follow(page: Any, home: Path, thread: str, steps: int) -> dict[int, float]:
    """Watch the record; as each step lands in it, wait (reading the DOM) for its card. Returns
    the steps whose card came more than 2 s after the record saw them."""
    late: dict[int, float] = {}
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    while len(seen) < steps:
        assert time.monotonic() < deadline, f"only steps {sorted(seen)} were recorded"
        recorded = (
            api.run_steps(thread, home)
            if api.open_store(home, readonly=True).get_run(thread)
            else None
        )
        fresh = [] if recorded is None else [int(s) for s in recorded["step"] if int(s) not in seen]
        for step in fresh:
            noticed = time.monotonic()
            page.wait_for_selector(f"figure[data-step='{step}']", state="attached", timeout=5_000)
            waited = time.monotonic() - noticed
            if waited > 2.0:
                late[step] = round(waited, 2)
            seen.add(step)
        time.sleep(0.05)
    return late
