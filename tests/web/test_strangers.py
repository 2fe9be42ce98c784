"""The served face under strangers (issue 37): each test is a probe that once got through, a
body too large, a format that was a path, an integer past int64, a forged client address,
and what the server answers now. Requests go over real sockets to uvicorn, served as
`sandloop api` serves it."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandloop import api
from sandloop.errors import SandloopError
from tests.web.serving import START_TIMEOUT_S, client, serving, wait_for_flow_run

pytestmark = pytest.mark.usefixtures("prefect_api_url")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "networks"
MIB = 1024 * 1024
FIRST_RUN = {
    "network": {"name": "echo-pair", "models": ["dummy:text", "dummy:text"]},
    "genesis": "a red balloon",
    "seed": 1,
    "stop": {"max_steps": 3, "stop_on_repeat": False},
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Path:
    home = tmp_path_factory.mktemp("stranger-home")
    api.run_network(api.run_spec_from(FIRST_RUN), home)
    api.publish_run(api.thread_of(api.run_spec_from(FIRST_RUN)), home)  # on the gallery
    return home


@pytest.fixture(scope="module")
def tokens(home: Path) -> dict[str, str]:
    return {scope: api.create_token(scope, "ada", home)[0] for scope in ("read", "run")}


@pytest.fixture(scope="module")
def base_url(home: Path) -> Iterator[str]:
    from sandloop.web.app import create_app

    app = create_app(home, networks=[EXAMPLES / "echo.yaml"], exports=home.parent / "exports")
    with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def thread(home: Path) -> str:
    """The home's first run (of 3 steps): other tests add runs of their own."""
    return api.thread_of(api.run_spec_from(FIRST_RUN))


def head_only(base_url: str, request: bytes, timeout_s: float = 10) -> tuple[bytes, float]:
    """Send a request's head alone (its body never follows) and read the answer: a server
    that waits for the body before answering never answers, and the read times out."""
    host, port = base_url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer, time.monotonic() - started


def post_head(path: str, length: int, token: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{auth}Content-Length: {length}\r\n\r\n"
    ).encode()


# -- bodies: the token before the body, and a cap on the body ---------------------------------


def test_a_body_without_a_token_is_refused_before_it_is_read(base_url: str) -> None:
    answer, took = head_only(base_url, post_head("/v1/runs", 200 * MIB))
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert took < 5


def test_a_body_past_the_cap_is_refused_from_its_length(
    base_url: str, tokens: dict[str, str]
) -> None:
    answer, _ = head_only(base_url, post_head("/v1/runs", 200 * MIB, tokens["run"]))
    assert answer.startswith(b"HTTP/1.1 413"), answer
    public, _ = head_only(base_url, post_head("/submit/echo", 100 * MIB))
    assert public.startswith(b"HTTP/1.1 413"), public


def test_a_streamed_body_is_cut_at_the_cap(base_url: str, tokens: dict[str, str]) -> None:
    sent = 0

    def body() -> Iterator[bytes]:  # no Content-Length: chunked
        nonlocal sent
        for _ in range(64):
            sent += MIB
            yield b" " * MIB

    try:
        with client(base_url, tokens["run"]) as http:
            answer = http.post("/v1/runs", content=body())
        assert answer.status_code == 413, answer.text
        assert "limit" in answer.json()["detail"]
    except (httpx.WriteError, httpx.RemoteProtocolError):
        pass  # the server closed the connection on its 413 while the client still wrote
    assert sent < 64 * MIB  # it stopped reading long before the end


def test_a_body_within_the_cap_still_goes_through(base_url: str, tokens: dict[str, str]) -> None:
    with client(base_url, tokens["run"]) as http:
        answer = http.post("/v1/snapshots", json={"name": "small", "kind": ["network"]})
    assert answer.status_code == 201, answer.text


# -- request text never becomes a path --------------------------------------------------------


@pytest.mark.parametrize(
    "formats",
    [
        ["../../../../../../../etc/passwd"],
        ["../../../../../../../etc/nonexistent"],
        ["../../watch/newdir"],
        ["a\u0000b"],
        ["hf", "../hf"],
    ],
)
def test_an_export_format_is_a_name_from_the_table_never_a_path(
    base_url: str, tokens: dict[str, str], home: Path, formats: list[str]
) -> None:
    with client(base_url, tokens["run"]) as http:
        http.post("/v1/snapshots", json={"name": "pinned", "kind": ["network"]})
        answer = http.post("/v1/snapshots/pinned/exports", json={"formats": formats})
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail.startswith("formats: ") and "unknown format" in detail
    assert str(home.parent) not in detail  # the server's folders are not shown
    assert not (home.parent / "watch").exists()
    assert not (home.parent / "exports").exists()  # nothing was made


def test_the_refusal_is_the_same_whether_the_path_exists_or_not(
    base_url: str, tokens: dict[str, str]
) -> None:
    with client(base_url, tokens["run"]) as http:
        http.post("/v1/snapshots", json={"name": "pinned", "kind": ["network"]})
        said = [
            http.post(
                "/v1/snapshots/pinned/exports", json={"formats": [f"../../../../../..{path}"]}
            ).json()["detail"]
            for path in ("/etc/passwd", "/etc/nonexistent")
        ]
    assert said[0].replace("passwd", "X") == said[1].replace("nonexistent", "X")


# -- integers and words that once gave a 500 --------------------------------------------------


def test_cursors_past_any_step_are_refused_not_a_server_error(
    base_url: str, tokens: dict[str, str], thread: str
) -> None:
    with client(base_url, tokens["read"]) as http:
        for path in (f"/v1/runs/{thread}/steps", "/v1/tasks/0123456789abcdef/subtasks"):
            answer = http.get(path, params={"after": 2**63})
            assert answer.status_code == 422, (path, answer.text)
            assert answer.json()["detail"].startswith("query.after")


@pytest.mark.parametrize("header", [str(2**64), "²", "9" * 40])
def test_a_strange_last_event_id_does_not_break_the_stream(
    base_url: str, tokens: dict[str, str], thread: str, header: str
) -> None:
    with (
        client(base_url, tokens["read"]) as http,
        http.stream(
            "GET",
            f"/v1/runs/{thread}/events",
            headers={"Last-Event-ID": header.encode()},
            timeout=10,
        ) as events,
    ):
        assert events.status_code == 200
        lines = events.iter_lines()
        first = [next(lines) for _ in range(2)]
    assert first[0] == "event: run", first


def test_a_step_number_must_be_ascii_digits(home: Path, thread: str) -> None:
    store = api.open_store(home, readonly=True)
    with pytest.raises(SandloopError, match="is a number"):
        api.find_step(store, f"{thread[:8]}:²")
    with pytest.raises(SandloopError, match="is a number"):
        api.find_step(store, f"{thread[:8]}:{2**64}")
    assert api.find_step(store, f"{thread[:8]}:1")["step"] == 1


def test_a_recipe_run_reads_at_once_with_its_name(base_url: str, tokens: dict[str, str]) -> None:
    with client(base_url, tokens["run"]) as http:
        started = http.post(
            "/v1/recipes/summarize/runs", json={"input": "a red balloon", "model": "dummy:text"}
        )
        assert started.status_code == 202, started.text
        thread = started.json()["thread"]
        shown = http.get(f"/v1/runs/{thread}")
        page = http.get(f"/gallery/{thread}")
        wait_for_flow_run(http, started.json()["flow_run_id"])
    assert shown.status_code == 200, shown.text
    assert shown.json()["name"]
    assert page.status_code in (200, 404), page.text  # never a server error


def test_methods_a_path_does_not_take_are_405_with_every_allowed_one(
    base_url: str, tokens: dict[str, str]
) -> None:
    with client(base_url, tokens["run"]) as http:
        put = http.put("/v1/tasks/0123456789abcdef/subtasks/take", json={})
        assert put.status_code == 405, put.text
        assert put.headers["allow"] == "OPTIONS, POST"
        options = http.options("/v1/chat")
        assert options.status_code == 204
        take = http.options("/v1/tasks/0123456789abcdef/subtasks/take")
        assert take.headers["allow"] == "OPTIONS, POST"
        assert set(options.headers["allow"].split(", ")) == {"GET", "POST", "OPTIONS"}
        patch = http.patch("/v1/chat")
        assert patch.status_code == 405
        assert "GET" in patch.headers["allow"] and "POST" in patch.headers["allow"]


# -- who a client is --------------------------------------------------------------------------


def submissions(base_url: str, forwarded: list[str], tag: str) -> list[int]:
    return [
        httpx.post(
            f"{base_url}/submit/echo",
            json={"prompt": f"a {tag} balloon {i}"},
            headers={"X-Forwarded-For": ip},
            timeout=START_TIMEOUT_S,
        ).status_code
        for i, ip in enumerate(forwarded)
    ]


def finish(app: Any) -> None:
    """The visitors' runs end before the test does (not under a stopped Prefect server)."""
    for going in list(app.state.served.running.values()):
        going.result(timeout=2 * START_TIMEOUT_S)


@pytest.mark.slow  # ~10 s of real runs: make test keeps its margin
def test_a_forwarded_address_is_believed_only_from_a_trusted_proxy(home: Path) -> None:
    from sandloop.web.app import create_app

    visitor = {"stop": {"max_steps": 1}}
    claimed = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
    untrusted = create_app(home, networks=[EXAMPLES / "echo.yaml"], visitor_run=visitor)
    with serving(untrusted) as url:
        codes = submissions(url, claimed, "forged")
        finish(untrusted)
    assert codes[:3] == [200, 200, 200] and codes[3] == 429  # one client, however it names itself

    behind = create_app(home, networks=[EXAMPLES / "echo.yaml"], visitor_run=visitor)
    with serving(behind, proxies="127.0.0.1") as url:
        codes = submissions(url, [f"10.0.1.{i}" for i in range(4)], "proxied")
        finish(behind)
    assert codes == [200, 200, 200, 200]  # four clients, as the proxy says


# -- live streams: shared polling, a cap, an idle end -----------------------------------------


@pytest.fixture
def capped(
    home: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[tuple[Any, str]]:
    """An app that lets a client hold 3 streams, each ending after ``idle_s`` (the test's
    parameter) of nothing new."""
    from sandloop.web.app import create_app

    monkeypatch.setenv("SANDLOOP_MAX_STREAMS_PER_CLIENT", "3")
    monkeypatch.setenv("SANDLOOP_STREAM_IDLE_S", str(request.param))
    app = create_app(home)
    with serving(app) as url:
        yield app, url


def open_stream(http: httpx.Client, path: str) -> tuple[Any, Iterator[str]]:
    """A stream held open, and its lines (kept: dropping the iterator closes the response)."""
    stream = http.stream("GET", path, timeout=10)
    answer = stream.__enter__()
    assert answer.status_code == 200, answer.read()
    return stream, answer.iter_lines()


@pytest.mark.parametrize("capped", [60], indirect=True)
def test_streams_of_a_thread_share_one_poller_and_are_capped_per_client(
    capped: tuple[Any, str], tokens: dict[str, str], thread: str
) -> None:
    app, url = capped
    path = f"/gallery/{thread}/events"
    with client(url, tokens["read"]) as http:
        held = [open_stream(http, path) for _ in range(3)]
        for _, lines in held:
            assert next(lines) == "event: run"
        watchers = app.state.served.watchers.watching
        assert list(watchers) == [thread] and len(watchers[thread].subscribers) == 3
        refused = http.get(path)
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) > 0
        held.pop()[0].__exit__(None, None, None)  # one closes: a slot is free again
        deadline = time.monotonic() + 10
        while app.state.served.stream_slots.open.total() > 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        held.append(open_stream(http, path))
        for stream, _ in held:
            stream.__exit__(None, None, None)


@pytest.mark.parametrize("capped", [2], indirect=True)
def test_a_stream_with_nothing_to_say_ends_after_the_idle_time(
    capped: tuple[Any, str], tokens: dict[str, str], thread: str
) -> None:
    app, url = capped
    started = time.monotonic()
    with client(url, tokens["read"]) as http:
        answer = http.get(f"/v1/runs/{thread}/events", timeout=30)  # returns once it ends
    assert answer.status_code == 200
    assert answer.text.count("event: step") == 3  # the run's steps, then quiet
    assert 2 <= time.monotonic() - started < 20
    deadline = time.monotonic() + 10
    while app.state.served.watchers.watching or app.state.served.stream_slots.open:
        assert time.monotonic() < deadline, "the stream's poller or slot outlived it"
        time.sleep(0.05)


# -- a client's start is the server's work: bounded -------------------------------------------


@pytest.mark.parametrize(
    ("network", "stop", "said"),
    [
        (["dummy:text"], {"max_steps": 10**9}, "stop.max_steps: this server runs at most 1000"),
        (["dummy:text"], {"max_steps": 10**30}, "stop.max_steps"),
        (["dummy:text"], {"max_steps": None}, "stop.max_steps"),
        (["dummy:text"] * 5000, {"max_steps": 4}, "network.models: this server runs at most 32"),
        (["dummy:text"], {"max_steps": 4, "max_duration_s": 10**7}, "stop.max_duration_s"),
    ],
)
def test_a_served_start_past_the_servers_ceilings_is_refused(
    base_url: str, tokens: dict[str, str], home: Path, network: list[str], stop: dict, said: str
) -> None:
    before = len(api.list_runs(home))
    body = {"network": {"name": "big", "models": network}, "genesis": "endless", "stop": stop}
    with client(base_url, tokens["run"]) as http:
        answer = http.post("/v1/runs", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(said)
    assert len(api.list_runs(home)) == before


# -- a run token cannot probe the server's files ----------------------------------------------

IMAGE_FIRST = {"name": "looks", "models": ["dummy:image-to-text", "dummy:text-to-image"]}
AUDIO_FIRST = {"name": "hears", "models": ["dummy:speech-to-text", "dummy:text-to-speech"]}


@pytest.mark.parametrize("network", [IMAGE_FIRST, AUDIO_FIRST])
def test_a_media_genesis_is_never_read_from_a_server_path(
    base_url: str, tokens: dict[str, str], network: dict
) -> None:
    said = set()
    with client(base_url, tokens["run"]) as http:
        for genesis in ("/etc/passwd", "/etc/nonexistent", "/proc/self/environ"):
            body = {"network": network, "genesis": genesis, "stop": {"max_steps": 2}}
            answer = http.post("/v1/runs", json=body)
            assert answer.status_code == 422, answer.text
            said.add(answer.json()["detail"])
    (detail,) = said  # one answer, whatever exists on the server
    assert "upload it (POST /v1/blobs)" in detail


@pytest.mark.parametrize(
    "ref",
    [
        "local:/etc",
        "local:/nonexistent/folder",
        "local:../../models",
        "llamacpp:/tmp/x.gguf",
        "local:~/.ssh",
    ],
)
def test_a_model_path_outside_the_models_folder_is_refused_alike(
    base_url: str, tokens: dict[str, str], ref: str
) -> None:
    with client(base_url, tokens["run"]) as http:
        network = {"name": "pathy", "models": [ref]}
        run = http.post("/v1/runs", json={"network": network, "genesis": "hi"})
        chat = http.post("/v1/chat", json={"model": ref})
        recipe = http.post("/v1/recipes/summarize/runs", json={"input": "hi", "model": ref})
    for answer in (run, chat, recipe):
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert "must be under this server's models folder" in detail
        assert detail.endswith(f"instead of {ref!r}")  # the same words for every path


@pytest.mark.slow  # ~10 s of real runs: make test keeps its margin
def test_visitors_runs_are_not_starved_by_api_runs(home: Path, tokens: dict[str, str]) -> None:
    from sandloop.web.app import create_app

    app = create_app(
        home, networks=[EXAMPLES / "echo.yaml"], visitor_run={"stop": {"max_steps": 1}}
    )
    # The API's runs wait 150 s between their two steps: the visitor's one step has that long
    # to be done beside them, however loaded the machine (4 s was too short on CI's, and 30 s
    # on a CI-like run here). They are cancelled at the end, so the test does not wait it out.
    slow = {"kind": "constant", "seconds": 150}
    with serving(app) as url, client(url, tokens["run"]) as http:
        started = [  # as many slow runs as the launcher has slots
            http.post(
                "/v1/runs",
                json={
                    "network": {"name": "slow", "models": ["dummy:text"]},
                    "genesis": f"slow {n}",
                    "stop": {"max_steps": 2, "stop_on_repeat": False},
                    "pace": slow,
                },
            )
            for n in range(4)
        ]
        assert all(s.status_code == 202 for s in started), [s.text for s in started]
        visitor = httpx.post(
            f"{url}/submit/echo", json={"prompt": "let me in"}, timeout=START_TIMEOUT_S
        )
        assert visitor.status_code == 200, visitor.text
        thread = visitor.json()["thread"]
        deadline = time.monotonic() + 120
        while (http.get(f"/v1/runs/{thread}").json()["status"]) != "completed":
            assert time.monotonic() < deadline, "the visitor's run waited behind the API's"
            time.sleep(0.2)
        statuses = [http.get(f"/v1/runs/{s.json()['thread']}").json()["status"] for s in started]
        assert "completed" not in statuses  # it ran beside them, not after one of them
        for s in started:  # their pace waits stop within a second of being asked
            http.post(f"/v1/runs/{s.json()['thread']}/cancel")
        finish(app)


# -- smaller things ---------------------------------------------------------------------------


def test_pages_and_answers_carry_security_headers(
    base_url: str, tokens: dict[str, str], thread: str
) -> None:
    page = httpx.get(f"{base_url}/gallery/{thread}")
    refused = httpx.get(f"{base_url}/v1/runs")  # a refusal too
    docs = httpx.get(f"{base_url}/docs")
    for answer in (page, refused, docs):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "<script>" not in page.text  # no inline script
    assert "content-security-policy" not in docs.headers  # Swagger UI runs an inline script


def test_the_qr_code_names_the_public_address_not_the_host_header(home: Path) -> None:
    from sandloop.web.app import create_app

    app = create_app(home, networks=[EXAMPLES / "echo.yaml"], public_url="https://wall.example")
    with serving(app) as url:
        forged = httpx.get(f"{url}/submit/echo/qr.svg", headers={"Host": "evil.example"})
    assert forged.status_code == 200
    assert app.state.served.public_url == "https://wall.example"
    import qrcode
    import qrcode.image.svg

    expected = qrcode.make(
        "https://wall.example/submit/echo", image_factory=qrcode.image.svg.SvgPathImage, border=2
    ).to_string()
    assert forged.content == expected


# -- what the public gallery shows -------------------------------------------------------------


def test_a_chat_is_never_on_the_public_gallery(base_url: str, tokens: dict[str, str]) -> None:
    with client(base_url, tokens["run"]) as http:
        chat = http.post("/v1/chat", json={"model": "dummy:text", "system": "be kind"})
        assert chat.status_code == 201, chat.text
        thread = chat.json()["thread"]
        said = http.post(f"/v1/chat/{thread}/messages", json={"content": "my secret plan"})
        assert said.status_code == 200, said.text
    for path in (f"/gallery/{thread}", f"/gallery/{thread}/events", f"/gallery/{thread}/screen"):
        answer = httpx.get(f"{base_url}{path}", timeout=10)
        assert answer.status_code == 404, (path, answer.text)
        assert "secret" not in answer.text


def test_a_failed_steps_error_text_is_not_public(home: Path, base_url: str) -> None:
    failing = {"model": "dummy:text", "params": {"fail_times": 99, "fail_with": "auth"}}
    spec = api.run_spec_from(
        {
            "network": {"name": "failing", "models": [failing]},
            "genesis": "doomed",
            "stop": {"max_steps": 2},
        }
    )
    assert api.run_network(spec, home).status == "failed"
    thread = api.thread_of(spec)
    api.publish_run(thread, home)
    recorded = api.run_steps(thread, home)
    assert recorded["error"].str.contains("injected failure").any()  # it is in the record
    with httpx.stream("GET", f"{base_url}/gallery/{thread}/events", timeout=10) as events:
        assert events.status_code == 200
        steps = []
        for line in events.iter_lines():
            if line.startswith("data: ") and '"step"' in line:
                steps.append(line)
                break
    assert steps and "injected failure" not in steps[0] and '"error":null' in steps[0]


# -- the access log ---------------------------------------------------------------------------


def test_the_access_log_names_a_token_by_its_id_and_no_request_forges_a_line(
    base_url: str, tokens: dict[str, str], home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    secret = "sl_" + "s" * 43  # a token pasted into a query string, by mistake
    caplog.set_level(logging.INFO, logger="sandloop.access")
    with client(base_url, tokens["read"]) as http:
        read = http.get("/v1/recipes")
        wrong = httpx.get(f"{base_url}/v1/runs", params={"token": secret})
        forged = http.get("/gallery/abc%0A127.0.0.1%20%22GET%20%2Fadmin%22%20200")
    deadline = time.monotonic() + 30  # a line is written once its answer has gone out
    mine = ('"GET /v1/recipes"', '"GET /v1/runs"', '"GET /gallery/abc')
    while True:
        logged_lines = [r.getMessage() for r in caplog.records if r.name == "sandloop.access"]
        lines = [next((line for line in logged_lines if path in line), "") for path in mine]
        if all(lines) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [read.status_code, wrong.status_code, forged.status_code] == [200, 401, 404]
    assert all("\n" not in line for line in logged_lines)
    grant = api.check_token(tokens["read"], home)
    assert lines[0].startswith('127.0.0.1 "GET /v1/recipes" 200 ')
    assert lines[0].endswith(f"token={grant.id}")
    assert lines[1].startswith('127.0.0.1 "GET /v1/runs" 401 ') and lines[1].endswith("token=-")
    assert '"GET /gallery/abc\\x0a127.0.0.1 "GET /admin" 200" 404 ' in lines[2]
    logged = "\n".join(logged_lines)
    assert secret not in logged and tokens["read"] not in logged


def test_sandloop_api_writes_its_access_lines_to_the_stream_it_is_given(home: Path) -> None:
    import io

    from fastapi.testclient import TestClient

    from sandloop.web.app import create_app

    lines = io.StringIO()
    with TestClient(create_app(home, access_log=lines)) as local:
        local.get("/v1/recipes")
    (line,) = lines.getvalue().splitlines()
    day, _, rest = line.partition(" ")
    assert len(day) == 10 and rest[8:].startswith(' testclient "GET /v1/recipes" 401 ')
