"""The HTTP API through httpx against uvicorn on a free 127.0.0.1 port, on a real home: every
read route, every scope, bad input, unknown ids, and the committed OpenAPI document."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandloop import api
from sandloop.loops.network.spec import RunSpec
from tests.web.serving import client, serving

pytestmark = pytest.mark.usefixtures("prefect_api_url")

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
PANIC = {"name": "panic", "models": ["dummy:text-to-image", "dummy:image-to-text"]}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Path:
    home = tmp_path_factory.mktemp("api-home")
    for seed in (1, 2, 3):
        spec = {
            "network": PANIC,
            "genesis": "a red balloon",
            "seed": seed,
            "stop": {"max_steps": 5, "stop_on_repeat": False},
        }
        api.run_network(RunSpec.model_validate(spec), home)
    api.create_snapshot("all", home)
    return home


@pytest.fixture(scope="module")
def tokens(home: Path) -> dict[str, str]:
    return {scope: api.create_token(scope, "ada", home)[0] for scope in ("read", "run", "admin")}


@pytest.fixture(scope="module")
def base_url(home: Path) -> Iterator[str]:
    from sandloop.web.app import create_app

    with serving(create_app(home)) as url:
        yield url


def test_runs_are_listed_a_page_at_a_time_newest_first(
    base_url: str, tokens: dict[str, str], home: Path
) -> None:
    with client(base_url, tokens["read"]) as http:
        seen, cursor = [], None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = http.get("/v1/runs", params=params).json()
            seen += page["runs"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        stored = api.list_runs(home)
        assert sorted(r["thread"] for r in seen) == sorted(stored["thread"])
        assert len({r["thread"] for r in seen}) == len(seen) == 3  # none twice, none missed
        created = [r["created_at"] for r in seen]
        assert created == sorted(created, reverse=True)
        assert http.get("/v1/runs", params={"kind": "dialogue"}).json()["runs"] == []
        one = seen[0]["thread"]
        assert http.get(f"/v1/runs/{one[:8]}").json()["thread"] == one


def test_steps_follow_a_cursor_and_images_come_with_their_type(
    base_url: str, tokens: dict[str, str], home: Path
) -> None:
    thread = str(api.list_runs(home)["thread"].iloc[0])
    recorded = api.run_steps(thread, home).sort_values("step")
    with client(base_url, tokens["read"]) as http:
        first = http.get(f"/v1/runs/{thread}/steps", params={"limit": 2}).json()
        assert [s["step"] for s in first["steps"]] == [0, 1] and first["next_cursor"] == 1
        rest = http.get(f"/v1/runs/{thread}/steps", params={"after": 1}).json()
        steps = first["steps"] + rest["steps"]
        assert [s["key"] for s in steps] == list(recorded["key"])
        # Issue 37, item 19: metadata was a JSON string inside the JSON
        assert [s["metadata"] for s in steps] == [json.loads(m) for m in recorded["metadata"]]
        assert all(isinstance(s["metadata"], dict) for s in steps)
        assert rest["next_cursor"] is None
        image = next(s for s in steps if s["output_type"] == "image")
        assert image["output_url"] == f"/v1/blobs/{image['output']}"
        got = http.get(image["output_url"])
        assert got.status_code == 200 and got.headers["content-type"] == "image/png"
        assert got.content == api.open_store(home).blobs.get(image["output"])


def test_the_other_read_routes(base_url: str, tokens: dict[str, str], home: Path) -> None:
    with client(base_url, tokens["read"]) as http:
        catalog = http.get("/v1/models").json()
        assert "dummy:text" in {m["ref"] for m in catalog["models"]}
        assert catalog == api.catalog_listing(home)
        assert "judge-exchange" in http.get("/v1/recipes").json()
        assert [s["name"] for s in http.get("/v1/snapshots").json()] == ["all"]
        assert http.get("/v1/sessions").json() == []
        hits = http.get("/v1/search", params={"q": "a red balloon", "k": 3}).json()
        assert 1 <= len(hits) <= 3 and all(h["key"] for h in hits)


@pytest.mark.parametrize(
    ("path", "status", "said"),
    [
        ("/v1/runs/0123456789abcdef", 404, "no run has a thread starting with"),
        ("/v1/runs/nothex", 422, "thread"),
        ("/v1/runs?limit=0", 422, "limit"),
        ("/v1/runs?kind=poem", 422, "kind"),
        ("/v1/runs?cursor=bogus", 422, "cursor"),
        ("/v1/search?q=", 422, "q"),
        ("/v1/search?q=x&images=true", 422, "SANDLOOP_IMAGE_EMBED_MODEL"),
        ("/v1/blobs/" + "0" * 32, 404, "no blob"),
        ("/v1/blobs/xyz", 422, "blob_hash"),
    ],
)
def test_bad_input_and_unknown_ids_say_which(
    base_url: str, tokens: dict[str, str], path: str, status: int, said: str
) -> None:
    with client(base_url, tokens["read"]) as http:
        got = http.get(path)
    assert got.status_code == status, got.text
    assert said in got.text


def test_every_route_needs_a_token_and_tokens_never_come_back(
    base_url: str, tokens: dict[str, str], home: Path
) -> None:
    routes = ["/v1/runs", "/v1/models", "/v1/recipes", "/v1/snapshots", "/v1/sessions"]
    for token, status in ((None, 401), ("sl_" + "x" * 43, 401), ("not-a-token", 401)):
        with client(base_url, token) as http:
            assert {http.get(r).status_code for r in routes} == {status}
    for scope in ("read", "run", "admin"):  # scopes nest: each can read
        with client(base_url, tokens[scope]) as http:
            got = http.get("/v1/runs")
            assert got.status_code == 200
            assert not any(t in got.text for t in tokens.values())
    stored = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    assert not any(t.encode() in stored for t in tokens.values())  # only hashes are kept


def test_a_revoked_token_is_refused(home: Path) -> None:
    from sandloop.web.app import create_app

    token, grant = api.create_token("read", "bob", home)
    app = create_app(home)  # a fresh grant cache: revocation is seen at once
    from fastapi.testclient import TestClient

    with TestClient(app) as local:
        assert local.get("/v1/recipes", headers={"Authorization": f"Bearer {token}"}).is_success
        api.revoke_token(grant.id, home)
        app.state.grants.cache.clear()
        refused = local.get("/v1/recipes", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401 and "revoked" in refused.text


def test_a_token_past_its_expiry_is_refused(home: Path) -> None:
    from datetime import timedelta

    from fastapi.testclient import TestClient

    from sandloop import access_tokens
    from sandloop.web.app import create_app

    token, _ = access_tokens.create(api.open_store(home), "read", "cy", timedelta(seconds=2))
    lasting, _ = api.create_token("read", "cy", home, expires="30d")
    app = create_app(home)
    with TestClient(app) as local:
        first = local.get("/v1/recipes", headers={"Authorization": f"Bearer {token}"})
        time.sleep(2.1)
        app.state.grants.cache.clear()  # as after the grant cache's few seconds
        later = local.get("/v1/recipes", headers={"Authorization": f"Bearer {token}"})
        other = local.get("/v1/recipes", headers={"Authorization": f"Bearer {lasting}"})
    assert first.is_success and other.is_success
    assert later.status_code == 401
    listed = api.list_tokens(home).set_index("user").loc["cy"]
    assert listed["expires_at"].notna().all()


def test_words_find_pictures_once_an_image_model_is_set(
    home: Path, tokens: dict[str, str], tiny_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from sandloop.web.app import create_app

    monkeypatch.setenv("SANDLOOP_IMAGE_EMBED_MODEL", str(tiny_clip))
    api.embed(home, embedder=api.load_embedder(home, images=True))
    pictures = api.open_store(home).invocations("output_type = 'image'")
    with TestClient(create_app(home)) as local:  # its own, so no embedder is cached yet
        got = local.get(
            "/v1/search",
            params={"q": "a red balloon", "k": 50, "images": "true"},
            headers={"Authorization": f"Bearer {tokens['read']}"},
        )
    assert got.status_code == 200, got.text
    hits = got.json()
    assert sorted(h["key"] for h in hits) == sorted(pictures["key"])
    assert all(h["output_url"] == f"/v1/blobs/{h['output']}" for h in hits)


def test_the_committed_openapi_document_is_the_served_one(base_url: str) -> None:
    served = httpx.get(f"{base_url}/openapi.json").json()
    committed = json.loads(OPENAPI.read_text())
    assert served == committed, "the API changed: run `make openapi` and commit docs/openapi.json"
    assert "bearer" in json.dumps(served["components"]["securitySchemes"]).lower()


def test_the_run_schema_shows_only_fields_of_the_run_record() -> None:
    from dataclasses import fields

    from sandloop.registration import RunRecord
    from sandloop.web.schemas import Run

    recorded = {f.name for f in fields(RunRecord)}
    assert set(Run.model_fields) <= recorded
    assert not set(Run.model_fields) & {"spec", "realm", "continuation"}


def test_a_page_of_steps_never_ends_inside_a_step(tmp_path: Path) -> None:
    """Rows that share a step (a step's calls) stay on one page: the cursor is a step."""
    from fastapi.testclient import TestClient

    from _common import invocation_rows
    from sandloop.web.app import create_app

    home = tmp_path / "home"
    store = api.open_store(home)
    thread = "b" * 32
    rows = invocation_rows(4, thread)
    for row, step in zip(rows, (0, 1, 1, 2), strict=True):
        row["step"] = step
    store.upsert("invocations", rows)
    store.put_run(
        {
            "thread": thread,
            "realm": "r" * 32,
            "kind": "recipe",
            "name": "paged",
            "spec": "{}",
            "status": "completed",
            "steps": 3,
        }
    )
    token, _ = api.create_token("read", "ada", home)
    with TestClient(create_app(home)) as local:
        headers = {"Authorization": f"Bearer {token}"}
        pages, after = [], -1
        while after is not None:
            page = local.get(
                f"/v1/runs/{thread}/steps", params={"after": after, "limit": 2}, headers=headers
            ).json()
            pages.append([s["step"] for s in page["steps"]])
            after = page["next_cursor"]
    assert pages == [[0], [1, 1], [2]]


def test_a_sound_is_served_as_audio(tmp_path: Path, prefect_api_url: str) -> None:
    from fastapi.testclient import TestClient

    from sandloop.web.app import create_app

    home = tmp_path / "home"
    spec = {
        "network": {"name": "speech", "models": ["dummy:text-to-speech", "dummy:speech-to-text"]},
        "genesis": "a red balloon",
        "seed": 1,
        "stop": {"max_steps": 2},
    }
    thread = api.run_network(RunSpec.model_validate(spec), home).thread
    token, _ = api.create_token("read", "ada", home)
    with TestClient(create_app(home)) as local:
        headers = {"Authorization": f"Bearer {token}"}
        steps = local.get(f"/v1/runs/{thread}/steps", headers=headers).json()["steps"]
        sound = steps[0]
        assert sound["output_type"] == "audio"
        got = local.get(sound["output_url"], headers=headers)
    assert got.status_code == 200 and got.headers["content-type"] == "audio/wav"
    assert got.content == api.open_store(home).blobs.get(sound["output"])
