"""`sandloop embed`, `search` and `index rebuild` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cli import ECHO, run_echo, sandloop

# The commands' path, on the hashing embedder: nine commands that each loaded MiniLM took over
# two minutes of CI. MiniLM itself is searched for real in tests/embedding.
MODEL = "hashing-256"


@pytest.mark.slow  # eleven commands
def test_embed_search_rebuild(cli_env: dict[str, str], home: Path) -> None:
    env = {**cli_env, "SANDLOOP_EMBED_MODEL": MODEL}
    ran = run_echo("a red balloon", 7, 12, "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["embedded"] is None  # a run leaves them to the next search
    thread = json.loads(ran.stdout)["thread"]
    shown = json.loads(sandloop("show", thread, "--json", env=env).stdout)
    assert shown["embeddings_pending"] == 12
    listed = sandloop("runs", env=env)
    assert "12 outputs not embedded yet; the next `sandloop search`" in listed.stderr

    first = json.loads(sandloop("embed", "--model", MODEL, "--json", env=env).stdout)
    assert first["indexed"] == 12 and first["embedded"] + first["reused"] == 12
    again = json.loads(sandloop("embed", "--model", MODEL, "--json", env=env).stdout)
    assert (again["embedded"], again["indexed"]) == (0, 0)
    assert json.loads(sandloop("show", thread, "--json", env=env).stdout)["embeddings_pending"] == 0
    assert "not embedded" not in sandloop("runs", env=env).stderr

    more = run_echo("a blue kite", 8, 3, "--json", env=env)
    caught_up = sandloop("search", "kite", "--model", MODEL, env=env)
    assert "embedding 3 outputs recorded since the last search or embed" in caught_up.stderr

    steps = json.loads(ran.stdout)["steps"]
    target = steps[4]["output"]
    found = json.loads(
        sandloop("search", target, "-k", "3", "--model", MODEL, "--json", env=env).stdout
    )
    assert found[0]["output"] == target and found[0]["step"] == 4
    assert found[0]["score"] > 0.99 and len(found) == 3
    only = json.loads(
        sandloop("search", target, "--thread", "ffff", "--model", MODEL, "--json", env=env).stdout
    )
    assert only == []

    folder = home / "indexes" / "faiss" / MODEL
    (folder / "index.faiss").write_bytes(b"corrupt")
    healed = sandloop("search", target, "-k", "1", "--model", MODEL, env=env)
    assert healed.returncode == 0 and "rebuilding it from the store" in healed.stderr
    rebuilt = sandloop("index", "rebuild", "--model", MODEL, env=env)
    assert "rebuilt the flat index, 15 vectors" in rebuilt.stdout
    assert more.returncode == 0, more.stderr


def test_unknown_embedding_model_is_one_line(cli_env: dict[str, str]) -> None:
    done = sandloop("embed", "--model", "hashing-2", env=cli_env)
    assert done.returncode == 2 and done.stderr.strip().startswith("error: 'hashing-2'")


def test_new_commands_have_help(cli_env: dict[str, str]) -> None:
    for command in (["embed"], ["search"], ["index", "rebuild"]):
        helped = sandloop(*command, "--help", env=cli_env)
        assert helped.returncode == 0 and "--model" in helped.stdout and "--home" in helped.stdout


def test_search_through_elasticsearch(cli_env: dict[str, str]) -> None:
    from tests import es_server

    server, state, url = es_server.start()
    try:
        env = {**cli_env, "SANDLOOP_ES_URL": url, "SANDLOOP_EMBED_DURING_RUNS": "false"}
        ran = sandloop(
            "run",
            str(ECHO),
            "--genesis",
            "sea",
            "--seed",
            "2",
            "--max-steps",
            "6",
            "--json",
            env=env,
        )
        target = json.loads(ran.stdout)["steps"][2]["output"]
        embedded = sandloop("embed", "--backend", "elasticsearch", "--json", env=env)
        assert json.loads(embedded.stdout)["indexed"] == 6, embedded.stderr
        found = json.loads(
            sandloop(
                "search", target, "-k", "2", "--backend", "elasticsearch", "--json", env=env
            ).stdout
        )
        assert found[0]["output"] == target
        rebuilt = sandloop("index", "rebuild", "--backend", "elasticsearch", env=env)
        assert "rebuilt the elasticsearch index, 6 vectors" in rebuilt.stdout
        assert any(r.path.endswith("/_search") for r in state.requests)
        wrong = sandloop("search", "x", "--backend", "solr", env=env)
        assert wrong.returncode == 2 and "use faiss or elasticsearch" in wrong.stderr
    finally:
        server.shutdown()


@pytest.mark.slow  # four commands and a run (~60 s)
def test_a_run_embeds_its_images_and_words_find_them(
    cli_env: dict[str, str], tiny_clip: Path
) -> None:
    env = {**cli_env, "SANDLOOP_IMAGE_EMBED_MODEL": str(tiny_clip)}
    balloon = Path(__file__).resolve().parents[2] / "examples/networks/balloon.yaml"
    args = ("--genesis", "a red balloon", "--max-steps", "6", "--json")
    ran = sandloop("run", str(balloon), *args, env={**env, "SANDLOOP_EMBED_DURING_RUNS": "true"})
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    outputs = {
        kind: [s["output"] for s in summary["steps"] if s["output_type"] == kind]
        for kind in ("text", "image")
    }
    assert len(outputs["image"]) == 3
    # texts with the hashing model and pictures with the CLIP, each once, in the background
    assert summary["embedded"] == len(set(outputs["text"])) + len(set(outputs["image"]))

    found = json.loads(sandloop("search", "a red balloon", "--images", "--json", env=env).stdout)
    assert len(found) == 3 and {hit["output_type"] for hit in found} == {"image"}
    # each hit says where to see its picture
    assert all(Path(hit["output"]).read_bytes().startswith(b"\x89PNG") for hit in found)
    again = sandloop("embed", "--images", "--json", env=env)
    assert json.loads(again.stdout)["embedded"] == 0, again.stderr
    wrong = sandloop("search", "x", "--images", "--model", str(tiny_clip / "nope"), env=env)
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1
    assert (
        wrong.stderr.startswith("error: image embedding model") and "no such folder" in wrong.stderr
    )
