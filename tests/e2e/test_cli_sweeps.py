"""`sandloop sweep` as a user types it: the example sweep, its listing, threads and report; bad
sweep files refused in one line with nothing written; a killed sweep re-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_cli import sandloop
from tests.e2e.test_cli_under_stress import one_error_line

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples/sweeps/tides.yaml"
ECHO = ROOT / "examples/networks/echo.yaml"


@pytest.mark.slow  # the example sweep and its report, as subprocesses (~20 s)
def test_the_example_sweep_runs_and_reports(cli_env: dict[str, str], home: Path) -> None:
    env = {**cli_env}
    done = sandloop("sweep", "run", str(EXAMPLE), "--json", env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["name"] == "tides" and summary["threads"] == 12
    assert summary["threads_done"] == 12 and summary["failed"] == 0
    assert summary["task_runs"] >= 20  # 20 ticks, a batch per model and tick

    listed = json.loads(sandloop("sweep", "list", "--json", env=env).stdout)
    assert [(s["name"], s["threads"], s["threads_done"]) for s in listed] == [("tides", 12, 12)]
    threads = json.loads(sandloop("sweep", "show", "tides", "--json", env=env).stdout)
    assert len(threads) == 12 and {t["network"] for t in threads} == {"echo", "drift"}
    report = sandloop("sweep", "report", "tides", "--embed-model", "hashing-64", env=env)
    assert report.returncode == 0 and "drift" in report.stdout and "a lighthouse" in report.stdout
    assert "semantic drift" in report.stdout and "clusters of final outputs" in report.stdout
    assert "embedded" in report.stderr  # the first report embeds the outputs, and says so
    plots = home.parent / "plots"
    reported = json.loads(
        sandloop(
            "sweep",
            "report",
            "tides",
            "--json",
            "--embed-model",
            "hashing-64",
            "--plots",
            str(plots),
            env=env,
        ).stdout
    )
    rows = reported["summary"]
    assert {(r["network"], r["genesis"]) for r in rows} == {
        (n, g) for n in ("echo", "drift") for g in ("a red balloon", "a lighthouse")
    }
    assert sum(r["threads"] for r in rows) == 12
    trajectories = reported["trajectories"]
    assert trajectories["embedded"] == 0  # made once, by the first report
    assert {o["network"] for o in trajectories["outcomes"]} == {"echo", "drift"}
    assert sum(c["threads"] for c in trajectories["clusters"]) == 12
    steps = sum(r["steps_mean"] * r["threads"] for r in rows)
    assert sum(d["threads"] for d in trajectories["drift"]) == pytest.approx(steps)
    assert sorted(Path(p).name for p in reported["plots"]) == ["tides-drift.png", "tides-echo.png"]
    assert all(Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in reported["plots"])
    # each thread is an ordinary run: `sandloop runs` lists them, `show` shows one
    runs = json.loads(sandloop("runs", "--json", env=env).stdout)
    assert len(runs) == 12
    shown = sandloop("show", threads[0]["thread"][:10], env=env)
    assert shown.returncode == 0, shown.stderr


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"genesis": []}, "genesis: give at least one prompt"),
        ({"genesis_file": "nowhere.txt"}, "nowhere.txt: no such file"),
        ({"max_concurrent": 0}, "max_concurrent: Input should be greater than or equal to 1"),
        ({"networks": ["no-such-network.yaml"]}, "no network file 'no-such-network.yaml'"),
        ({"seeds": []}, "give at least one seed"),
    ],
)
def test_bad_sweeps_are_one_line_and_write_nothing(
    fields: dict[str, object], message: str, home: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from sandloop.cli import app

    spec = {"name": "bad", "networks": [str(ECHO)], "genesis": ["x"], **fields}
    if "genesis_file" in fields:
        del spec["genesis"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    done = CliRunner().invoke(app, ["sweep", "run", str(path)], env={"SANDLOOP_HOME": str(home)})
    assert done.exit_code == 2
    assert message in one_error_line(done.stderr)
    assert not home.exists()


def test_a_genesis_file_needs_its_column(
    cli_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    (tmp_path / "prompts.csv").write_text("id,prompt\n1,a kite\n2,a tide\n")
    spec = {"name": "csv", "networks": [str(ECHO)], "genesis_file": "prompts.csv"}
    path = tmp_path / "csv.yaml"
    path.write_text(yaml.safe_dump({**spec, "genesis_column": "text"}))
    done = sandloop("sweep", "run", str(path), env=cli_env)
    assert done.returncode == 2 and "no column 'text' (columns: id, prompt)" in done.stderr
    assert not home.exists()

    path.write_text(yaml.safe_dump({**spec, "stop": {"max_steps": 2}}))  # `prompt` is found
    done = sandloop("sweep", "run", str(path), "--json", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["threads"] == 2


def test_duplicates_are_one_thread_and_said_once(cli_env: dict[str, str], tmp_path: Path) -> None:
    spec = {
        "name": "twice",
        "networks": [str(ECHO)],
        "genesis": ["x", "x"],
        "seeds": [1, 1],
        "stop": {"max_steps": 2},
    }
    path = tmp_path / "twice.yaml"
    path.write_text(yaml.safe_dump(spec))
    done = sandloop("sweep", "run", str(path), "--json", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["threads"] == 1
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: 3 member(s) repeat a network, genesis and seed; each is one thread"
    ]


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["kill", "ctrl-c"])
def test_a_killed_sweep_re_run_finishes_without_duplicate_steps(
    stop: str, cli_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    slow = {"name": "slow", "models": [{"model": "dummy:text", "params": {"delay_ms": 150}}]}
    spec = {
        "name": "killed",
        "networks": [slow],
        "genesis": ["a", "b", "c"],
        "seeds": [1, 2],
        "stop": {"max_steps": 30, "stop_on_repeat": False},
        "max_concurrent": 4,
    }
    path = tmp_path / "killed.yaml"
    path.write_text(yaml.safe_dump(spec))
    process = subprocess.Popen(
        [sys.executable, "-m", "sandloop.cli", "sweep", "run", str(path)],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # as a terminal's Ctrl-C finds it, even where this test was started with SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    wal = home / "akashic" / "_wal"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill it once some steps are in the logs
        logs = list(wal.glob("*.jsonl")) if wal.is_dir() else []
        if sum(p.stat().st_size for p in logs) > 20_000:
            break
        time.sleep(0.1)
    if stop == "kill":
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
    else:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130 and "Traceback" not in err
        # the progress line stays, as it stood; the error line is last
        assert err.strip().splitlines()[-1].startswith("error: interrupted"), err
        # Issue 37, item 18: after Ctrl-C, `sweep list` said running.
        (listed,) = json.loads(sandloop("sweep", "list", "--json", env=cli_env).stdout)
        assert listed["status"] == "stopped" and listed["threads_done"] < 6

    done = sandloop("sweep", "run", str(path), "--json", env=cli_env, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["threads_done"] == 6 and summary["failed"] == 0
    assert 0 < summary["steps_this_session"] < 180  # the killed run's steps were kept
    steps = json.loads(sandloop("sweep", "show", "killed", "--json", env=cli_env).stdout)
    assert [t["steps"] for t in steps] == [30] * 6
    runs = json.loads(sandloop("runs", "--json", env=cli_env).stdout)
    assert {r["status"] for r in runs} == {"completed"}
    from sandloop import api

    invocations = api.open_store(home, readonly=True).invocations()
    assert invocations["key"].is_unique and len(invocations) == 180
    per_thread = invocations.groupby("thread")["step"].apply(sorted)
    assert all(steps == list(range(30)) for steps in per_thread)


@pytest.mark.parametrize("command", ["run", "report"])
def test_sweep_commands_have_help(command: str, cli_env: dict[str, str]) -> None:
    helped = sandloop("sweep", command, "--help", env=cli_env)
    assert helped.returncode == 0 and "Usage" in helped.stdout and "--home" in helped.stdout


@pytest.mark.slow  # five CLI processes: `make test` keeps the one-line contract elsewhere
def test_a_bad_report_is_one_line(cli_env: dict[str, str], home: Path, tmp_path: Path) -> None:
    spec = {"name": "small", "networks": [str(ECHO)], "genesis": ["x"], "stop": {"max_steps": 2}}
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert sandloop("sweep", "run", str(path), "--json", env=cli_env).returncode == 0
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    for args, message in [
        (["nothing"], "no sweep named 'nothing' (sweeps: small)"),
        (["small", "--embed-model", "hashing-3"], "hashing-<dim> with 8 ≤ dim ≤ 4096"),
        (["small", "--embed-model", "hashing-64", "--plots", str(taken)], "cannot write plots"),
        (["small", "--clusters", "0"], "--clusters"),
    ]:
        done = sandloop("sweep", "report", *args, env=cli_env)
        assert done.returncode == 2, (args, done.stderr)
        assert message in one_error_line(done.stderr), args


@pytest.mark.slow  # four sweeps as CLI processes
def test_a_name_taken_by_other_members_is_refused_unless_redefined(
    cli_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    spec = {"name": "same", "networks": [str(ECHO)], "genesis": ["x"], "stop": {"max_steps": 2}}
    path = tmp_path / "same.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert sandloop("sweep", "run", str(path), "--json", env=cli_env).returncode == 0
    # a longer stop rule is the same experiment, taken further
    path.write_text(yaml.safe_dump({**spec, "stop": {"max_steps": 3}}))
    assert sandloop("sweep", "run", str(path), "--json", env=cli_env).returncode == 0

    path.write_text(yaml.safe_dump({**spec, "genesis": ["x", "y"]}))
    refused = sandloop("sweep", "run", str(path), env=cli_env)
    assert refused.returncode == 2
    assert "a sweep named 'same' already ran other" in one_error_line(refused.stderr)
    listed = json.loads(sandloop("sweep", "list", "--json", env=cli_env).stdout)
    assert [(s["name"], s["threads"]) for s in listed] == [("same", 1)]  # nothing written

    done = sandloop("sweep", "run", str(path), "--redefine", "--json", env=cli_env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["threads"] == 2 and summary["already_finished"] == 1  # "x" was reused
