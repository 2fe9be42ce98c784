"""The CLI on a home on object storage (moto's S3 server on 127.0.0.1): every command, a thread
resumed on "another machine" (its own cache folder, nothing shared but the bucket), a killed
worker's thread taken over after its lease expires, and the refusals of bad remote homes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandloop.storage.store import AkashicStore
from sandloop.storage.wal import ThreadLocked
from tests.e2e.test_cli import sandloop
from tests.s3_server import S3Server

ROOT = Path(__file__).resolve().parents[2]
ECHO = str(ROOT / "examples" / "networks" / "echo.yaml")


def machine(base: dict[str, str], folder: Path) -> dict[str, str]:
    """A worker that shares nothing local with the others: its own cache and working folder."""
    folder.mkdir(parents=True, exist_ok=True)
    return {**base, "XDG_CACHE_HOME": str(folder / "cache"), "HOME": str(folder)}


@pytest.fixture
def remote_env(cli_env: dict[str, str], s3: S3Server, tmp_path: Path) -> dict[str, str]:
    env = {**cli_env, **s3.env(), "SANDLOOP_HOME": f"s3://{s3.bucket()}/home"}
    return machine(env, tmp_path / "machine-a")


@pytest.mark.slow
def test_every_command_works_on_an_s3_home(
    remote_env: dict[str, str], s3: S3Server, tmp_path: Path
) -> None:
    env = remote_env
    bucket = env["SANDLOOP_HOME"].removeprefix("s3://").split("/")[0]
    first = sandloop(
        "run",
        ECHO,
        "--genesis",
        "a red balloon",
        "--seed",
        "7",
        "--max-steps",
        "4",
        "--json",
        env=env,
    )
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    thread = summary["thread"]
    first_keys = [s["key"] for s in summary["steps"]]

    # Machine B resumes the thread: it needs nothing that lives on machine A's disk.
    other = machine({**env}, tmp_path / "machine-b")
    resumed = sandloop(
        "run",
        ECHO,
        "--genesis",
        "a red balloon",
        "--seed",
        "7",
        "--max-steps",
        "7",
        "--json",
        env=other,
    )
    assert resumed.returncode == 0, resumed.stderr
    steps = json.loads(resumed.stdout)["steps"]
    assert [s["step"] for s in steps] == list(range(7))
    assert [s["key"] for s in steps][:4] == first_keys and len({s["key"] for s in steps}) == 7

    listed = json.loads(sandloop("runs", "--json", env=env).stdout)
    assert [(r["thread"], r["steps"], r["status"]) for r in listed] == [(thread, 7, "completed")]
    shown = json.loads(sandloop("show", thread[:6], "--json", env=env).stdout)
    assert [s["step"] for s in shown["steps"]] == list(range(7))

    embedded = sandloop("embed", "--json", env=other)
    assert embedded.returncode == 0, embedded.stderr
    found = sandloop("search", shown["steps"][3]["output"], "-k", "1", "--json", env=other)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["key"] == shown["steps"][3]["key"]
    rebuilt = sandloop("index", "rebuild", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr

    dialogue = sandloop(
        "dialogue", "run", str(ROOT / "examples/dialogues/scripted.yaml"), "--json", env=env
    )
    assert dialogue.returncode == 0, dialogue.stderr
    recipe = sandloop(
        "recipe",
        "run",
        "oblique",
        "--input",
        "a lighthouse",
        "--model",
        "dummy:text",
        "--json",
        env=env,
    )
    assert recipe.returncode in (0, 1), recipe.stderr  # a dummy may never validate: still recorded

    snap = sandloop("snapshot", "create", "--name", "remote-1", "--kind", "network", env=env)
    assert snap.returncode == 0, snap.stderr
    out = tmp_path / "export"
    exported = sandloop(
        "export", "remote-1", "--format", "openai-chat", "--out", str(out), env=other
    )
    assert exported.returncode == 0, exported.stderr
    assert (out / "openai-chat" / "train.jsonl").read_text().count("\n") >= 1
    # The same snapshot exported into a bucket: the same bytes, uploaded once complete.
    datasets = s3.bucket()
    uploaded = sandloop(
        "export", "remote-1", "--format", "openai-chat", "--out", f"s3://{datasets}/ds", env=env
    )
    assert uploaded.returncode == 0, uploaded.stderr
    written = (out / "openai-chat" / "train.jsonl").read_text().count("\n")
    assert f"openai-chat: {written} train" in uploaded.stdout  # the rows of each file set
    body = s3.client().get_object(Bucket=datasets, Key="ds/openai-chat/train.jsonl")["Body"].read()
    assert body == (out / "openai-chat" / "train.jsonl").read_bytes()
    again = sandloop(
        "export", "remote-1", "--format", "openai-chat", "--out", f"s3://{datasets}/ds", env=env
    )
    assert again.returncode == 2 and "pass --overwrite" in again.stderr
    traces = sandloop("export", "traces", "--out", str(tmp_path / "traces.json"), env=env)
    assert traces.returncode == 0, traces.stderr

    keys = s3.keys(bucket)
    assert any(k.startswith("home/akashic/invocations.lance/") for k in keys)
    assert not [k for k in keys if k.startswith("home/akashic/_wal/")]  # every step folded
    # Nothing of the store was written to either machine's disk.
    for folder in ("machine-a", "machine-b"):
        assert not list((tmp_path / folder).rglob("*.lance"))


@pytest.mark.slow  # a CLI start per case; the store-level refusals are in the fast suite
@pytest.mark.parametrize(
    ("home", "extra", "message"),
    [
        ("ftp://host/x", {}, "ftp:// is not a supported store"),
        ("s3://", {}, "names no bucket"),
        (
            "s3://no-such-bucket-here/x",
            {},
            "bucket of home s3://no-such-bucket-here/x does not exist",
        ),
        ("s3://{bucket}/x", {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "does not answer"),
        (
            "s3://{bucket}/x",
            {"SANDLOOP_STORAGE_OPTIONS": "{not json"},
            "SANDLOOP_STORAGE_OPTIONS: is not JSON",
        ),
    ],
)
def test_bad_remote_homes_are_one_line_and_write_nothing(
    remote_env: dict[str, str], s3: S3Server, home: str, extra: dict[str, str], message: str
) -> None:
    bucket = s3.bucket()
    env = {**remote_env, **extra, "SANDLOOP_HOME": home.format(bucket=bucket)}
    # A writer and a reader; the reader only once (the same refusal, each costs a start-up).
    commands = [["run", ECHO, "--genesis", "x", "--max-steps", "2"]]
    if "ftp" in home or "no-such-bucket" in home:
        commands.append(["runs"])
    for args in commands:
        result = sandloop(*args, env=env)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (
            result.stderr
        )
    assert s3.keys(bucket) == []


def wal_objects(s3: S3Server, bucket: str) -> list[str]:
    return [k for k in s3.keys(bucket, "home/akashic/_wal/") if k.endswith(".json")]


def recorded_steps(home: str) -> list[dict[str, object]]:
    """The steps recorded so far (tables and journal), read in this process: a CLI call per
    poll would take longer than the steps it waits for."""
    store = AkashicStore.open(home, readonly=True)
    runs = store.runs()
    if runs.empty:
        return []
    steps = store.steps(str(runs["thread"].iloc[0]))
    return [dict(row) for row in steps[steps["status"] == "ok"].to_dict("records")]


@pytest.mark.slow
@pytest.mark.alone  # it kills at moments it watches for: a busy neighbour made it miss one
def test_a_worker_killed_six_times_loses_nothing_and_records_nothing_twice(
    remote_env: dict[str, str], s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers take turns on one thread; each is SIGKILLed at a random point (mid-step,
    mid-put, mid-fold). Whoever runs it next waits out the dead one's lease and resumes from
    the last durable step; the result equals a run that was never interrupted."""
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    home = remote_env["SANDLOOP_HOME"]
    bucket = home.removeprefix("s3://").split("/")[0]
    slow = tmp_path / "slow.yaml"
    slow.write_text("name: slow\nmodels: [{model: dummy:text, params: {delay_ms: 200}}]\n")
    # Six kills, alternating workers, hit each of the two machines three times (ten took more
    # than three minutes of CI). 40 steps: room for six kills of 1-3 new steps each, and the
    # steps a worker takes between two polls of the store.
    kills_wanted = 6
    total = 40
    args = ["run", str(slow), "--genesis", "kill me", "--seed", "3", "--max-steps", str(total)]
    args.append("--json")
    lease = {"SANDLOOP_LEASE_S": "3", "SANDLOOP_FLUSH_EVERY": "3"}
    workers = [
        machine({**remote_env, **lease}, tmp_path / "machine-a"),
        machine({**remote_env, **lease}, tmp_path / "machine-b"),
    ]
    chance = random.Random(13)
    kills = 0
    for round_ in range(kills_wanted):
        before = len(recorded_steps(home))
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandloop.cli", *args],
            env=workers[round_ % 2],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wanted = before + chance.randint(1, 3)
        deadline = time.monotonic() + 120
        while len(recorded_steps(home)) < wanted and proc.poll() is None:
            assert time.monotonic() < deadline, "the run recorded nothing new"
            time.sleep(0.05)
        time.sleep(chance.uniform(0, 0.25))  # land anywhere in the next step
        if proc.poll() is not None:
            break  # it finished first
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        kills += 1
        killed_at = time.monotonic()
        store = AkashicStore.open(home, readonly=True)
        thread = str(store.runs()["thread"].iloc[0])
        if round_ == 0:  # the dead worker's lease still holds: another writer is refused
            try:
                AkashicStore.open(home).open_thread(thread).close()
                refused = False
            except ThreadLocked:
                refused = True
            # Asked in-process, not by a CLI start that may outlast the 3 s lease on a busy box.
            assert refused or time.monotonic() - killed_at > 2.5
        while store.is_live(thread):  # expiry: at most one lease lifetime after the kill
            time.sleep(0.2)
    assert kills == kills_wanted

    recorded = recorded_steps(home)
    finished = sandloop(*args, env=workers[0])
    assert finished.returncode == 0, finished.stderr
    steps = json.loads(finished.stdout)["steps"]
    assert [s["step"] for s in steps] == list(range(total))
    assert [s["key"] for s in steps][: len(recorded)] == [s["key"] for s in recorded]
    store = AkashicStore.open(home, readonly=True)
    stored = store.invocations()
    assert len(stored) == total and stored["key"].is_unique  # nothing recorded twice
    assert wal_objects(s3, bucket) == []

    reference_env = {**workers[1], "SANDLOOP_HOME": f"s3://{s3.bucket()}/home"}
    reference = sandloop(*args, env=reference_env)
    assert reference.returncode == 0, reference.stderr
    expected = json.loads(reference.stdout)["steps"]
    assert [(s["key"], s["output"]) for s in steps] == [(s["key"], s["output"]) for s in expected]
