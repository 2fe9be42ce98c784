"""The gallery's pages over HTTP (no browser): what a visitor may reach and what is refused.
The browser itself is in test_gallery_browser.py."""

from __future__ import annotations

import faulthandler
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from sandloop import api
from sandloop.loops.spec_files import SpecError
from tests.web.serving import START_TIMEOUT_S, client, serving

# In the slow step: make test keeps its margin under 10 minutes on 2 cores.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api_url")]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "networks"
VISITOR = {"stop": {"max_steps": 4, "stop_on_repeat": False}}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Path:
    return tmp_path_factory.mktemp("gallery-home")


@pytest.fixture(scope="module")
def base_url(home: Path) -> Iterator[str]:
    from sandloop.web.app import create_app

    networks = [EXAMPLES / "echo.yaml", EXAMPLES / "balloon.yaml"]
    app = create_app(home, networks=networks, visitor_run=VISITOR)
    with serving(app, proxies="127.0.0.1") as url:  # behind a proxy: X-Forwarded-For is the client
        yield url


@pytest.fixture(scope="module")
def reader(home: Path, base_url: str) -> Iterator[httpx.Client]:
    with client(base_url, api.create_token("read", "ada", home)[0]) as http:
        yield http


def submit(base_url: str, network: str, prompt: str, ip: str = "127.0.0.1") -> httpx.Response:
    # Each test speaks as its own client (the app is served behind a trusted proxy on
    # 127.0.0.1), so the rate limit of one does not touch another.
    try:
        return httpx.post(
            f"{base_url}/submit/{network}",
            json={"prompt": prompt},
            headers={"X-Forwarded-For": ip},
            timeout=START_TIMEOUT_S,  # a start waits on the session's Prefect server
        )
    except httpx.TimeoutException:
        # The server runs in this process: show where its threads wait.
        faulthandler.dump_traceback(file=sys.__stderr__, all_threads=True)
        raise


def test_a_visitor_submission_starts_a_thread_whose_gallery_answers(
    base_url: str, reader: httpx.Client, home: Path
) -> None:
    page = httpx.get(f"{base_url}/submit/balloon")
    assert page.status_code == 200 and 'id="submit"' in page.text
    answer = submit(base_url, "balloon", "  a red   balloon ")
    assert answer.status_code == 200, answer.text
    thread = answer.json()["thread"]
    assert answer.json()["gallery"] == f"/gallery/{thread}"
    gallery = httpx.get(f"{base_url}/gallery/{thread}")  # no token: the public view
    assert gallery.status_code == 200
    assert "/submit/balloon/qr.svg" in gallery.text
    with httpx.stream("GET", f"{base_url}/gallery/{thread}/events", timeout=10) as events:
        assert events.status_code == 200  # the public stream: no token either
        first = next(line for line in events.iter_lines() if line.startswith("data: "))
        assert thread in first  # the run event, announced or recorded
    wait_for_steps(home, thread, 4)
    run = api.open_store(home, readonly=True).get_run(thread)
    assert run is not None and run["genesis"] == "a red balloon"  # whitespace folded
    assert run["steps"] == 4  # the server's visitor stop, not the client's


def test_the_gallery_serves_only_the_threads_own_images(base_url: str, home: Path) -> None:
    answer = submit(base_url, "balloon", "a blue kite", ip="10.0.0.2")
    thread = answer.json()["thread"]
    steps = wait_for_steps(home, thread, 4)
    image = steps[steps["output_type"] == "image"]["output"].iloc[0]
    shown = httpx.get(f"{base_url}/gallery/{thread}/blobs/{image}")
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
    assert shown.content.startswith(b"\x89PNG")
    other = submit(base_url, "echo", "a plain echo", ip="10.0.0.3").json()["thread"]
    wait_for_steps(home, other, 1)
    assert httpx.get(f"{base_url}/gallery/{other}/blobs/{image}").status_code == 404
    assert httpx.get(f"{base_url}/gallery/{thread[:8]}").status_code == 422  # no prefixes
    assert httpx.get(f"{base_url}/gallery/{'0' * 32}").status_code == 404


def test_submissions_are_rate_limited_length_checked_and_refused_unwritten(
    base_url: str, home: Path
) -> None:
    before = len(api.list_runs(home))
    too_long = submit(base_url, "echo", "x" * 501, ip="10.0.0.9")
    empty = submit(base_url, "echo", "   ", ip="10.0.0.9")
    unknown = submit(base_url, "nope", "hi", ip="10.0.0.9")
    assert too_long.status_code == 422 and "500 characters" in too_long.json()["detail"]
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    assert unknown.status_code == 404
    assert len(api.list_runs(home)) == before
    accepted = [submit(base_url, "echo", f"limit {n}", ip="10.0.0.8") for n in range(3)]
    assert [a.status_code for a in accepted] == [200, 200, 200]
    refused = submit(base_url, "echo", "one too many", ip="10.0.0.8")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert submit(base_url, "echo", "someone else", ip="10.0.0.7").status_code == 200
    for answer in accepted:
        wait_for_steps(home, answer.json()["thread"], 4)
    genesis = set(api.list_runs(home)["genesis"])
    assert "one too many" not in genesis and "limit 0" in genesis


def test_the_qr_code_is_the_visitor_pages_address(base_url: str) -> None:
    import qrcode
    import qrcode.image.svg

    shown = httpx.get(f"{base_url}/submit/echo/qr.svg")
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/svg+xml"
    expected = qrcode.make(
        f"{base_url}/submit/echo", image_factory=qrcode.image.svg.SvgPathImage, border=2
    ).to_string()
    assert shown.content == expected
    assert httpx.get(f"{base_url}/submit/nope/qr.svg").status_code == 404


def test_a_run_is_on_the_gallery_only_once_published(
    base_url: str, reader: httpx.Client, home: Path
) -> None:
    """Issue 37, item 7: the public gallery showed every run."""
    spec = api.run_spec_from(
        {
            "network": {"name": "private", "models": ["dummy:text"]},
            "genesis": "my own run",
            "stop": {"max_steps": 2},
        }
    )
    thread = api.run_network(spec, home).thread
    run_token = api.create_token("run", "ada", home)[0]
    writer = httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {run_token}"}, timeout=60
    )
    paths = (f"/gallery/{thread}", f"/gallery/{thread}/events", f"/gallery/{thread}/screen")
    before = [httpx.get(f"{base_url}{p}").status_code for p in paths]
    published = writer.post(f"/v1/runs/{thread[:10]}/publish")
    shown = httpx.get(f"{base_url}/gallery/{thread}")
    withdrawn = writer.delete(f"/v1/runs/{thread}/publish")
    after = httpx.get(f"{base_url}/gallery/{thread}").status_code
    chat = writer.post("/v1/chat", json={"model": "dummy:text"}).json()["thread"]
    refused = writer.post(f"/v1/runs/{chat}/publish")
    by_reader = reader.post(f"/v1/runs/{thread}/publish")
    writer.close()
    assert before == [404, 404, 404]
    assert published.json() == {"thread": thread, "public": True} and shown.status_code == 200
    assert withdrawn.json() == {"thread": thread, "public": False} and after == 404
    assert refused.status_code == 422 and "never public" in refused.json()["detail"]
    assert by_reader.status_code == 403


def test_a_visitor_who_types_a_private_runs_genesis_does_not_publish_it(
    base_url: str, home: Path
) -> None:
    spec = api.run_spec_from(
        {
            "network": str(EXAMPLES / "echo.yaml"),
            "genesis": "words of my own",
            "stop": {"max_steps": 2},
        }
    )
    thread = api.run_network(spec, home).thread
    answer = submit(base_url, "echo", "words of my own", ip="10.0.0.9")
    assert answer.status_code == 200, answer.text
    assert answer.json()["thread"] == thread  # the same thread: it resumes, it is not shown
    assert httpx.get(f"{base_url}/gallery/{thread}").status_code == 404


def test_the_gallery_can_be_switched_off(home: Path) -> None:
    from sandloop.web.app import create_app

    app = create_app(home, networks=[EXAMPLES / "echo.yaml"], gallery_on=False)
    with serving(app) as url:
        thread = str(api.list_runs(home)["thread"].iloc[0])
        for path in (f"/gallery/{thread}", f"/gallery/{thread}/events", "/submit/echo"):
            assert httpx.get(f"{url}{path}").status_code == 404, path
        assert httpx.post(f"{url}/submit/echo", json={"prompt": "hi"}).status_code == 404
        assert len(api.list_runs(home)[lambda f: f["genesis"] == "hi"]) == 0


def wait_for_steps(home: Path, thread: str, count: int, timeout_s: float = 60) -> pd.DataFrame:

    deadline = time.monotonic() + timeout_s
    while True:
        run = api.open_store(home, readonly=True).get_run(thread)
        if run is not None and run["status"] != "running" and int(run["steps"]) >= count:
            return api.run_steps(thread, home)
        assert time.monotonic() < deadline, f"{thread[:8]}: {run}"
        time.sleep(0.1)


def verdict_recipe(home: Path, name: str, verdict: str) -> str:
    """A moderation recipe in the home whose dummy model always gives ``verdict``."""
    folder = home / "recipes"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        f"""name: {name}
version: "1"
template: "May this start a loop? {{{{ input }}}}"
output:
  type: object
  properties: {{allowed: {{type: boolean}}, reason: {{type: string}}}}
  required: [allowed]
model: dummy:text
params: {{script: ['{verdict}']}}
"""
    )
    return name


@pytest.mark.parametrize(
    ("verdict", "started"),
    [('{"allowed": true}', True), ('{"allowed": false, "reason": "not on this wall"}', False)],
)
def test_a_moderation_recipe_allows_or_declines_each_visitors_prompt(
    home: Path, verdict: str, started: bool
) -> None:
    from sandloop.web.app import create_app

    recipe = verdict_recipe(home, f"moderate-{started}", verdict)
    app = create_app(
        home, networks=[EXAMPLES / "echo.yaml"], visitor_run=VISITOR, moderation=recipe
    )
    prompt = f"moderated {started}"
    with serving(app) as url:
        answer = submit(url, "echo", prompt, ip="10.0.1.1")
        if started:
            assert answer.status_code == 200, answer.text
            wait_for_steps(home, answer.json()["thread"], 4)
        else:
            assert answer.status_code == 422
            assert "declined by this gallery's moderation: not on this wall" in answer.text
    genesis = set(api.list_runs(home)[lambda f: f["kind"] == "network"]["genesis"])
    assert (prompt in genesis) is started


def test_a_moderation_that_does_not_answer_in_time_declines(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model that never answers in time: the visitor is declined with the reason once the
    limit passes, not when the recipe's rounds are spent, and no loop starts."""
    monkeypatch.setenv("SANDLOOP_MODERATION_TIMEOUT_S", "1")
    recipe = verdict_recipe(home, "moderate-slowly", '{"allowed": true}')
    path = home / "recipes" / f"{recipe}.yaml"
    path.write_text(path.read_text().replace("params: {", "params: {delay_ms: 3000, "))
    assert api.moderate("a kite", recipe, home) == "the moderation gave no verdict within 1 s"
    assert "a kite" not in set(api.list_runs(home)[lambda f: f["kind"] == "network"]["genesis"])


def test_a_missing_moderation_recipe_is_refused_when_the_app_starts(home: Path) -> None:
    from sandloop.web.app import create_app

    with pytest.raises(SpecError, match="no recipe 'no-such-recipe'"):
        create_app(home, moderation="no-such-recipe")
