"""Step-to-screen latency of the live gallery: from a step's record to its card in a real
browser (Debian's chromium, driven by Playwright), over N steps of a paced dummy network.

The step's ``finished_at`` (written with the record, on this machine's clock) is compared with
the ``data-shown-at`` the page's script stamps on the card (``Date.now()`` in the browser, the
same clock). The floor is the stream's poll interval (`web.streams.POLL_S`).

    python benchmarks/bench_gallery.py [--n 50] [--pace 0.3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))

import _common  # noqa: F401 - quiet Prefect settings

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
ARGS += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    import pandas as pd
    from playwright.sync_api import sync_playwright
    from tests.web.serving import serving

    from sandloop import api
    from sandloop.web.app import create_app
    from sandloop.web.streams import POLL_S

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--pace", type=float, default=0.3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="sandloop-bench-gallery-")) / "home"
    network = Path(__file__).parents[1] / "examples" / "networks" / "balloon.yaml"
    visitor = {
        "stop": {"max_steps": args.n, "stop_on_repeat": False},
        "pace": {"kind": "constant", "seconds": args.pace},
    }
    app = create_app(home, networks=[network], visitor_run=visitor)
    with serving(app) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page()
        page.goto(f"{base}/submit/balloon")
        page.fill("#prompt", "a red balloon over the sea")
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/gallery/*", timeout=60_000)
        thread = page.url.rsplit("/", 1)[1]
        shown: dict[int, float] = {}
        deadline = time.monotonic() + 60 + args.n * (args.pace + 2)
        while len(shown) < args.n and time.monotonic() < deadline:
            stamps = page.eval_on_selector_all(
                "figure.output", "cards => cards.map(c => [c.dataset.step, c.dataset.shownAt])"
            )
            shown |= {int(step): int(at) / 1000 for step, at in stamps}
            time.sleep(0.05)
        browser.close()
    steps = api.run_steps(thread, home)
    recorded = {
        int(s): pd.Timestamp(t).timestamp()
        for s, t in zip(steps["step"], steps["finished_at"], strict=True)
    }
    latencies = sorted((shown[s] - recorded[s]) * 1000 for s in recorded if s in shown)
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
    print(f"steps recorded {len(recorded)}, shown {len(latencies)} (pace {args.pace} s)")
    print(
        f"step-to-screen: median {statistics.median(latencies):.0f} ms, p95 {p95:.0f} ms, "
        f"max {latencies[-1]:.0f} ms (the stream polls every {POLL_S * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
