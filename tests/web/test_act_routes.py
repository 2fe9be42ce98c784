"""The act routes and the live stream, through httpx against uvicorn on a real home: runs,
dialogues, recipes and exports start in the background and answer at once; bad input is
refused with nothing written; the step stream resumes from a cursor."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandloop import api
from sandloop.loops.network.spec import RunSpec
from tests.web.serving import START_TIMEOUT_S, client, serving, wait_for_flow_run

pytestmark = pytest.mark.usefixtures("prefect_api_url")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ECHO = {"name": "echo-pair", "models": ["dummy:text", "dummy:text"]}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Path:
    return tmp_path_factory.mktemp("act-home")


@pytest.fixture(scope="module")
def tokens(home: Path) -> dict[str, str]:
    return {scope: api.create_token(scope, "ada", home)[0] for scope in ("read", "run")}


@pytest.fixture(scope="module")
def base_url(home: Path) -> Iterator[str]:
    from sandloop.web.app import create_app

    app = create_app(home, networks=[EXAMPLES / "networks" / "echo.yaml"])
    with serving(app) as url:
        yield url


def run_body(genesis: str, **fields: Any) -> dict[str, Any]:
    return {
        "network": ECHO,
        "genesis": genesis,
        "seed": 3,
        "stop": {"max_steps": 4, "stop_on_repeat": False},
        **fields,
    }


def test_a_network_run_answers_at_once_and_goes_on_in_the_background(
    base_url: str, tokens: dict[str, str], home: Path
) -> None:
    body = run_body("a red balloon")
    with client(base_url, tokens["run"]) as http:
        answer = http.post("/v1/runs", json=body)
        assert answer.status_code == 202, answer.text
        started = answer.json()
        expected = api.thread_of(RunSpec.model_validate(body))
        assert started["thread"] == expected
        assert started["kind"] == "network"
        assert started["links"]["events"] == f"/v1/runs/{expected}/events"
        final = wait_for_flow_run(http, started["flow_run_id"])
        assert final["state"] == "COMPLETED", final
        run = http.get(f"/v1/runs/{expected}").json()
    assert run["status"] == "completed" and run["steps"] == 4
    assert run["flow_run_id"] == started["flow_run_id"]


def test_a_second_start_of_a_running_thread_is_refused(
    base_url: str, tokens: dict[str, str]
) -> None:
    body = run_body("slowly", pace={"kind": "constant", "seconds": 0.5})
    with client(base_url, tokens["run"]) as http:
        first = http.post("/v1/runs", json=body)
        assert first.status_code == 202, first.text
        second = http.post("/v1/runs", json=body)
        assert second.status_code == 409
        assert "already running" in second.json()["detail"]
        assert wait_for_flow_run(http, first.json()["flow_run_id"])["state"] == "COMPLETED"
        again = http.post("/v1/runs", json=body)  # finished: idempotent, no new steps
        assert again.status_code == 202
        assert again.json()["thread"] == first.json()["thread"]
        wait_for_flow_run(http, again.json()["flow_run_id"])
        steps = http.get(f"/v1/runs/{first.json()['thread']}/steps").json()["steps"]
    assert [s["step"] for s in steps] == [0, 1, 2, 3]


def test_a_network_the_server_offers_is_started_by_name(
    base_url: str, tokens: dict[str, str]
) -> None:
    with client(base_url, tokens["run"]) as http:
        answer = http.post("/v1/runs", json={**run_body("by name"), "network": "echo"})
        assert answer.status_code == 202, answer.text
        assert wait_for_flow_run(http, answer.json()["flow_run_id"])["state"] == "COMPLETED"
        unknown = http.post("/v1/runs", json={**run_body("x"), "network": "/etc/passwd"})
    assert unknown.status_code == 404
    assert "offered: echo" in unknown.json()["detail"]


@pytest.mark.parametrize(
    ("change", "code", "named"),
    [
        ({"stop": {"max_steps": 0}}, 422, "stop.max_steps"),
        ({"pace": {"kind": "sometimes"}}, 422, "pace"),
        ({"genesis": ""}, 422, "genesis"),
        ({"surprise": 1}, 422, "surprise"),
        ({"network": {"name": "img", "models": ["dummy:image-to-text"]}}, 422, "network"),
        ({"network": {"name": "bad", "models": ["nowhere:model"]}}, 422, "nowhere"),
        ({"session": "ffff"}, 404, "session"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    base_url: str,
    tokens: dict[str, str],
    home: Path,
    change: dict[str, Any],
    code: int,
    named: str,
) -> None:
    before = len(api.list_runs(home))
    with client(base_url, tokens["run"]) as http:
        answer = http.post("/v1/runs", json={**run_body("refused"), **change})
    assert answer.status_code == code, answer.text
    assert named in json.dumps(answer.json()["detail"])
    assert len(api.list_runs(home)) == before


def test_act_routes_need_the_run_scope(base_url: str, tokens: dict[str, str]) -> None:
    routes = [
        ("/v1/runs", run_body("scoped")),
        ("/v1/dialogues", {"dialogue": {}}),
        ("/v1/recipes/summarize/runs", {"input": "x"}),
        ("/v1/snapshots", {"name": "s"}),
        ("/v1/snapshots/s/exports", {"formats": ["trl"]}),
        (f"/v1/runs/{'a' * 32}/cancel", {}),
    ]
    for path, body in routes:
        assert httpx.post(f"{base_url}{path}", json=body).status_code == 401
        with client(base_url, tokens["read"]) as http:
            assert http.post(path, json=body).status_code == 403, path


def wait_for_steps(http: httpx.Client, thread: str, steps: int) -> None:
    """Until the run has recorded ``steps`` (a running run's own count comes at its end)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while len(http.get(f"/v1/runs/{thread}/steps").json().get("steps") or []) < steps:
        assert time.monotonic() < deadline, f"the run never recorded {steps} steps"
        time.sleep(0.1)


def test_a_cancelled_run_stops_after_its_step_keeps_its_record_and_resumes(
    base_url: str, tokens: dict[str, str]
) -> None:
    body = run_body("stop me", pace={"kind": "constant", "seconds": 0.5})
    body["stop"]["max_steps"] = 200  # 100 s: the cancel ends it long before
    with client(base_url, tokens["run"]) as http:
        started = http.post("/v1/runs", json=body).json()
        thread = started["thread"]
        wait_for_steps(http, thread, 2)
        answer = http.post(f"/v1/runs/{thread[:8]}/cancel")
        assert answer.status_code == 202, answer.text
        assert answer.json() == {
            "thread": thread,
            "flow_run_id": started["flow_run_id"],
            "state": "CANCELLING",
        }
        final = wait_for_flow_run(http, started["flow_run_id"])
        assert final["state"] == "CANCELLED", final
        run = http.get(f"/v1/runs/{thread}").json()
        kept = http.get(f"/v1/runs/{thread}/steps").json()["steps"]
        again = http.post(f"/v1/runs/{thread}/cancel")
        # the same start resumes it: the stop conditions and pace are the new ones
        resumed = http.post("/v1/runs", json={**body, "stop": {**body["stop"], "max_steps": 12}})
        assert wait_for_flow_run(http, resumed.json()["flow_run_id"])["state"] == "COMPLETED"
        after = http.get(f"/v1/runs/{thread}/steps").json()["steps"]
        unknown = http.post(f"/v1/runs/{'b' * 32}/cancel")
    assert run["status"] == "cancelled" and run["stop_reason"] == "cancelled"
    assert 2 <= run["steps"] == len(kept) < 200
    assert [s["step"] for s in kept] == list(range(len(kept)))
    assert again.status_code == 409 and "not running (cancelled)" in again.json()["detail"]
    assert [s["key"] for s in after[: len(kept)]] == [s["key"] for s in kept]
    assert [s["step"] for s in after] == list(range(12))
    assert unknown.status_code == 404


def test_a_run_that_waits_for_a_slot_is_cancelled_before_it_starts(
    home: Path, tokens: dict[str, str]
) -> None:
    from sandloop.flows.background import Launcher
    from sandloop.web.app import create_app

    app = create_app(home)
    app.state.served.launcher = Launcher(max_running=1)
    holder = run_body("holds the slot", pace={"kind": "constant", "seconds": 0.5})
    holder["stop"]["max_steps"] = 200
    queued = run_body("waits for the slot")
    with serving(app) as url, client(url, tokens["run"]) as http:
        first = http.post("/v1/runs", json=holder).json()
        wait_for_steps(http, first["thread"], 1)
        second = http.post("/v1/runs", json=queued).json()
        assert http.get(f"/v1/runs/{second['thread']}").json()["status"] == "starting"
        answer = http.post(f"/v1/runs/{second['thread']}/cancel")
        assert answer.status_code == 202, answer.text
        assert answer.json()["state"] == "CANCELLED"
        assert http.post(f"/v1/runs/{first['thread']}/cancel").status_code == 202
        assert wait_for_flow_run(http, first["flow_run_id"])["state"] == "CANCELLED"
        assert wait_for_flow_run(http, second["flow_run_id"])["state"] == "CANCELLED"
    assert api.open_store(home, readonly=True).get_run(second["thread"]) is None  # never began


def test_an_image_network_starts_from_an_uploaded_image_never_a_path(
    base_url: str, tokens: dict[str, str]
) -> None:
    """Issue 37, item 5: a genesis was a path on the server, which a run token could probe."""
    from tests.fake_images import png_for

    picture = png_for("a red balloon")
    network = {"name": "seen", "models": ["dummy:image-to-text", "dummy:text-to-image"]}
    body = {"network": network, "seed": 1, "stop": {"max_steps": 2, "stop_on_repeat": False}}
    png = {"Content-Type": "image/png"}
    with client(base_url, tokens["run"]) as http:
        uploaded = http.post("/v1/blobs", content=picture, headers=png)
        assert uploaded.status_code == 201, uploaded.text
        blob = uploaded.json()["hash"]
        started = http.post("/v1/runs", json={**body, "genesis_blob": blob})
        assert started.status_code == 202, started.text
        final = wait_for_flow_run(http, started.json()["flow_run_id"])
        run = http.get(f"/v1/runs/{started.json()['thread']}").json()
        refusals = [
            http.post("/v1/blobs", content=b"#!/bin/sh\necho hi\n", headers=png),
            http.post("/v1/runs", json={**body, "genesis": "/etc/passwd"}),
            http.post("/v1/runs", json={**body, "genesis_blob": "0" * 32}),
            http.post("/v1/runs", json={**run_body("text"), "genesis": None, "genesis_blob": blob}),
            http.post("/v1/runs", json={**body, "genesis": "x", "genesis_blob": blob}),
        ]
    with client(base_url, tokens["read"]) as http:
        by_reader = http.post("/v1/blobs", content=picture, headers=png)
    assert uploaded.json() == {"hash": blob, "media_type": "image/png", "bytes": len(picture)}
    assert final["state"] == "COMPLETED", final
    assert run["genesis"] == blob and run["status"] == "completed" and run["steps"] == 2
    said = [(r.status_code, json.dumps(r.json()["detail"])) for r in refusals]
    assert said[0][0] == 422 and "an image or a sound" in said[0][1]
    assert said[1][0] == 422 and "upload it (POST /v1/blobs)" in said[1][1]
    assert said[2][0] == 404 and "no blob" in said[2][1]
    assert said[3][0] == 422 and "starts from text" in said[3][1]
    assert said[4][0] == 422 and "genesis_blob" in said[4][1]
    assert by_reader.status_code == 403


def test_a_dialogue_starts_from_its_spec(base_url: str, tokens: dict[str, str]) -> None:
    import yaml

    spec = yaml.safe_load((EXAMPLES / "dialogues" / "scripted.yaml").read_text())
    with client(base_url, tokens["run"]) as http:
        answer = http.post("/v1/dialogues", json={"dialogue": spec, "seed": 1})
        assert answer.status_code == 202, answer.text
        started = answer.json()
        assert started["thread"] == api.dialogue_from(spec).thread(1)
        assert wait_for_flow_run(http, started["flow_run_id"])["state"] == "COMPLETED"
        run = http.get(f"/v1/runs/{started['thread']}").json()
        bad = http.post("/v1/dialogues", json={"dialogue": {**spec, "actors": []}})
    assert run["kind"] == "dialogue" and run["status"] == "completed"
    assert bad.status_code == 422 and "actors" in bad.json()["detail"]


def test_a_recipe_run_lands_on_the_thread_it_announced(
    base_url: str, tokens: dict[str, str]
) -> None:
    body = {"input": "a long text to shorten", "seed": 2, "model": "dummy:text"}
    with client(base_url, tokens["run"]) as http:
        answer = http.post("/v1/recipes/summarize/runs", json=body)
        assert answer.status_code == 202, answer.text
        started = answer.json()
        assert wait_for_flow_run(http, started["flow_run_id"])["state"] == "COMPLETED"
        run = http.get(f"/v1/runs/{started['thread']}").json()
        unknown = http.post("/v1/recipes/nope/runs", json=body)
        bad_slot = http.post("/v1/recipes/summarize/runs", json={**body, "context": {"z": 1}})
    assert run["kind"] == "recipe" and run["name"] == "summarize"
    assert unknown.status_code == 404
    assert bad_slot.status_code == 422 and "no slot z" in bad_slot.json()["detail"]


def test_a_snapshot_is_pinned_then_exported_in_the_background(
    base_url: str, tokens: dict[str, str], home: Path
) -> None:
    with client(base_url, tokens["run"]) as http:
        if not http.get("/v1/runs").json()["runs"]:  # this test may run alone
            done = http.post("/v1/runs", json=run_body("for the snapshot")).json()
            wait_for_flow_run(http, done["flow_run_id"])
        made = http.post("/v1/snapshots", json={"name": "web", "kind": ["network"]})
        assert made.status_code == 201, made.text
        assert made.json()["runs"] >= 1
        assert http.post("/v1/snapshots", json={"name": "web"}).status_code == 409
        assert http.post("/v1/snapshots", json={"name": "x", "min_score": 9}).status_code == 422
        export = http.post("/v1/snapshots/web/exports", json={"formats": ["trl", "sharegpt"]})
        assert export.status_code == 202, export.text
        assert wait_for_flow_run(http, export.json()["flow_run_id"])["state"] == "COMPLETED"
        missing = http.post("/v1/snapshots/none/exports", json={"formats": ["trl"]})
        bad_format = http.post("/v1/snapshots/web/exports", json={"formats": ["csv"]})
        bad_language = http.post(
            "/v1/snapshots/web/exports", json={"formats": ["trl"], "language": ["../x"]}
        )
    folder = home.parent / f"{home.name}-exports" / "web" / "sharegpt+trl"
    assert (folder / "manifest.json").is_file()
    assert json.loads((folder / "manifest.json").read_text())["snapshot"]["name"] == "web"
    assert missing.status_code == 404
    assert bad_format.status_code == 422 and "csv" in bad_format.json()["detail"]
    assert bad_language.status_code == 422 and "language code" in str(bad_language.json())


def test_an_unknown_flow_run_is_404(base_url: str, tokens: dict[str, str]) -> None:
    with client(base_url, tokens["read"]) as http:
        assert http.get(f"/v1/flow-runs/{'0' * 32}").status_code == 404


def events_of(http: httpx.Client, path: str, wanted: int, **headers: str) -> list[dict[str, Any]]:
    """The first ``wanted`` step events of a stream, as {id, data}."""
    found: list[dict[str, Any]] = []
    with http.stream("GET", path, headers=headers, timeout=30) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        event: dict[str, Any] = {}
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event["event"] = line[7:]
            elif line.startswith("id: "):
                event["id"] = line[4:]
            elif line.startswith("data: "):
                event["data"] = json.loads(line[6:])
            elif not line and event:
                if event.get("event") == "step":
                    found.append(event)
                    if len(found) == wanted:
                        return found
                event = {}
    return found


def test_the_step_stream_follows_a_live_run_and_resumes_from_a_cursor(
    base_url: str, tokens: dict[str, str]
) -> None:
    body = run_body("live", pace={"kind": "constant", "seconds": 0.3})
    body["stop"]["max_steps"] = 6
    with client(base_url, tokens["run"]) as http:
        started = http.post("/v1/runs", json=body).json()
        thread = started["thread"]
        first = events_of(http, f"/v1/runs/{thread}/events", 3)
        assert [e["id"] for e in first] == ["0", "1", "2"]
        assert first[0]["data"]["thread"] == thread
        # A reconnect with what it saw last gets the rest, live, with none missed.
        rest = events_of(http, f"/v1/runs/{thread}/events", 3, **{"Last-Event-ID": "2"})
        assert [e["id"] for e in rest] == ["3", "4", "5"]
        wait_for_flow_run(http, started["flow_run_id"])
        recorded = http.get(f"/v1/runs/{thread}/steps").json()["steps"]
        again = events_of(http, f"/v1/runs/{thread}/events?after=4", 1)
        assert http.get(f"/v1/runs/{'a' * 32}/events").status_code == 404
    assert [e["data"]["output"] for e in first + rest] == [s["output"] for s in recorded]
    assert [e["id"] for e in again] == ["5"]


def test_the_stream_needs_a_token(base_url: str) -> None:
    assert httpx.get(f"{base_url}/v1/runs/{'a' * 32}/events").status_code == 401
