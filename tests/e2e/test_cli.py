"""The CLI as a user runs it: real subprocesses, a real Prefect server, a real store."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ECHO = ROOT / "examples" / "networks" / "echo.yaml"


def sandloop(
    *args: str, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandloop.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_echo(
    genesis: str, seed: int, max_steps: int, *extra: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """`sandloop run` of the instant echo network."""
    return sandloop(
        "run",
        str(ECHO),
        "--genesis",
        genesis,
        "--seed",
        str(seed),
        "--max-steps",
        str(max_steps),
        *extra,
        env=env,
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_run_then_runs_then_show(cli_env: dict[str, str]) -> None:
    done = run_echo("a red balloon", 7, 12, env=cli_env)
    assert done.returncode == 0, done.stderr
    assert "thread " in done.stdout and "completed: max_steps" in done.stdout
    thread = done.stdout.split("thread ")[-1].split()[0]
    assert len(thread) == 32

    listed = json.loads(sandloop("runs", "--json", env=cli_env).stdout)
    assert [(r["thread"], r["steps"], r["status"]) for r in listed] == [(thread, 12, "completed")]

    shown = json.loads(sandloop("show", thread[:6], "--json", env=cli_env).stdout)
    assert [s["step"] for s in shown["steps"]] == list(range(12))
    assert shown["genesis"] == "a red balloon"
    table = sandloop("show", thread[:6], env=cli_env).stdout
    assert "dummy:text#answer" in table and "12 steps" in table


def test_run_json_summary(cli_env: dict[str, str]) -> None:
    done = sandloop(
        "run",
        str(ECHO),
        "--genesis",
        "hi",
        "--seed",
        "1",
        "--max-steps",
        "3",
        "--json",
        env=cli_env,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "completed" and len(summary["steps"]) == 3
    assert {"step", "model", "output", "latency_ms", "key"} <= summary["steps"][0].keys()


def test_models_lists_io_types(cli_env: dict[str, str]) -> None:
    listed = json.loads(sandloop("models", "--json", env=cli_env).stdout)
    by_ref = {m["ref"]: m for m in listed["models"]}
    assert by_ref["dummy:text-to-image"]["output"] == "image"
    assert by_ref["local:gemma-3-270m"]["input"] == "text"
    assert "prefix" in by_ref["local:gemma-3-270m"]["params"]
    assert by_ref["replicate:black-forest-labs/flux-schnell"]["cost_usd"]["per_call"] > 0


def test_models_file_in_the_home_extends_the_catalog(cli_env: dict[str, str]) -> None:
    models_file = Path(cli_env["SANDLOOP_HOME"]) / "models.yaml"
    models_file.parent.mkdir(parents=True, exist_ok=True)
    models_file.write_text(
        "models:\n  - ref: hf:acme/painter\n    task: text-to-image\n    cost: 1 cent\n"
        "routes:\n  words:\n    candidates: [dummy:text, hf:acme/writer]\n"
    )
    listed = json.loads(sandloop("models", "--json", env=cli_env).stdout)
    painter = next(m for m in listed["models"] if m["ref"] == "hf:acme/painter")
    assert (painter["output"], painter["cost"]) == ("image", "1 cent")
    assert listed["routes"]["words"]["candidates"] == ["dummy:text", "hf:acme/writer"]
    table = sandloop("models", env=cli_env).stdout
    assert "hf:acme/painter" in table and "route:words" in table
    models_file.write_text("models:\n  - ref: hf:acme/painter\n    task: painting\n")
    broken = sandloop("models", env=cli_env)
    assert broken.returncode == 2 and "models.yaml" in broken.stderr and "painting" in broken.stderr


@pytest.mark.parametrize("command", ["run", "runs", "show", "models"])
def test_every_command_has_help(command: str, cli_env: dict[str, str]) -> None:
    helped = sandloop(command, "--help", env=cli_env)
    assert helped.returncode == 0 and "Usage" in helped.stdout and "--json" in helped.stdout
    assert "--home" in helped.stdout


def test_keys_commands_have_help(cli_env: dict[str, str]) -> None:
    for command in ("set", "list", "remove"):
        helped = sandloop("keys", command, "--help", env=cli_env)
        assert helped.returncode == 0 and "Usage" in helped.stdout and "--user" in helped.stdout


def _bad_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    unknown = write(tmp_path / "unknown.yaml", "name: u\nmodels: [dummy:text, dummy:txet]\n")
    open_net = write(tmp_path / "open.yaml", "name: o\nmodels: [dummy:text, dummy:text-to-image]\n")
    image_first = write(
        tmp_path / "img.yaml", "name: i\nmodels: [dummy:image-to-text, dummy:text-to-image]\n"
    )
    broken = write(tmp_path / "broken.yaml", "name: [\n")
    params = write(tmp_path / "params.yaml", "models: [{model: dummy:text, params: {vocab: 0}}]\n")
    return [
        ([str(tmp_path / "missing.yaml")], "no such file"),
        ([str(broken)], "not valid yaml"),
        ([str(unknown)], "models.1.model: unknown model 'dummy:txet'; did you mean 'dummy:text'?"),
        ([str(open_net)], "does not close: model 1 (dummy:text-to-image) outputs image"),
        (
            [str(image_first)],
            "genesis: network 'i' starts with dummy:image-to-text, which takes an image",
        ),
        (
            [str(params)],
            "bad params for dummy:text: vocab: Input should be greater than or equal to 1",
        ),
        ([str(ECHO), "--pace", "sometimes"], "--pace 'sometimes' not understood"),
    ]


def test_bad_input_is_one_clear_line_exit_2_and_writes_nothing(
    cli_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    for args, message in _bad_inputs(tmp_path):
        done = sandloop("run", *args, "--genesis", "a red balloon", env=cli_env)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
        assert message in lines[0], lines[0]
        assert not home.exists(), f"{args} wrote to the store"


def test_unwritable_home(cli_env: dict[str, str], tmp_path: Path) -> None:
    blocker = write(tmp_path / "file", "")
    done = sandloop(
        "run", str(ECHO), "--genesis", "x", "--home", str(blocker / "home"), env=cli_env
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: cannot write to home")


def test_show_unknown_thread(cli_env: dict[str, str]) -> None:
    done = sandloop("show", "ffff", env=cli_env)
    assert done.returncode == 2 and "no run has a thread starting with 'ffff'" in done.stderr


def test_a_failed_run_exits_1_with_one_readable_line(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    net = write(
        tmp_path / "auth.yaml",
        "models: [{model: dummy:text, params: {fail_times: 1, fail_with: auth}}]\n",
    )
    done = sandloop("run", str(net), "--genesis", "x", "--seed", "1", env=cli_env)
    assert done.returncode == 1
    assert "AuthError: dummy:text: injected failure 1 of 1" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def wait_for_logged_steps(
    home: Path, proc: subprocess.Popen[bytes] | subprocess.Popen[str], steps: int
) -> None:
    """Until the running thread's write-ahead log holds ``steps`` lines (killing the run and
    failing the test after two minutes)."""
    wal_dir = home / "akashic" / "_wal"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        logs = list(wal_dir.glob("*.jsonl")) if wal_dir.exists() else []
        if logs and len(logs[0].read_bytes().splitlines()) >= steps:
            return
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"the run never recorded {steps} steps")


@pytest.mark.slow  # a 30-step run and its rerun (~20 s)
def test_ctrl_c_says_where_the_run_stopped_and_the_rerun_resumes(
    cli_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    slow = write(
        tmp_path / "slow.yaml",
        "name: slow\nmodels: [{model: dummy:text, params: {delay_ms: 150}}]\n",
    )
    args = ["run", str(slow), "--genesis", "stop me", "--seed", "4", "--max-steps", "30"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandloop.cli", *args],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # as a terminal's Ctrl-C finds it, even where this test was started with SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    wait_for_logged_steps(home, proc, 3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.strip()]
    stopped_at = int(line.split("interrupted at step ")[1].split(";")[0])
    assert line.endswith("run the same command to resume") and stopped_at >= 3

    resumed = sandloop(*args, "--json", env=cli_env)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    kept = 30 - summary["steps_this_session"]
    assert stopped_at <= kept <= stopped_at + 1  # a step may land as the signal does
    assert [s["step"] for s in summary["steps"]] == list(range(30))
    assert len({s["key"] for s in summary["steps"]}) == 30


@pytest.mark.slow  # three commands and a paced run (~25 s)
def test_sandloop_cancel_stops_a_run_in_another_process_and_the_rerun_resumes(
    cli_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    slow = write(tmp_path / "slow.yaml", "name: to-cancel\nmodels: [dummy:text]\n")
    args = ["run", str(slow), "--genesis", "cancel me", "--seed", "5", "--no-stop-on-repeat"]
    args += ["--max-steps", "300"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandloop.cli", *args, "--pace", "constant:0.3"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_logged_steps(home, proc, 3)
    listed = json.loads(sandloop("runs", "--all", "--json", env=cli_env).stdout)
    (thread,) = [run["thread"] for run in listed if run["name"] == "to-cancel"]
    cancelled = sandloop("cancel", thread[:8], "--json", env=cli_env)
    out, err = proc.communicate(timeout=120)
    assert cancelled.returncode == 0, cancelled.stderr
    answer = json.loads(cancelled.stdout)
    assert answer["thread"] == thread and answer["state"] == "CANCELLED"
    assert answer["status"] == "cancelled" and 3 <= answer["steps"] < 300
    assert proc.returncode == 1 and "Traceback" not in err
    assert "cancelled" in out and "run the same command to resume" in out

    again = sandloop("cancel", thread, env=cli_env)
    assert again.returncode == 1
    assert again.stderr.strip() == (
        f"error: run {thread[:12]} is not running (cancelled); nothing to cancel"
    )
    kept = answer["steps"]
    resumed = sandloop(*args[:-1], str(kept + 3), "--json", env=cli_env)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["steps_this_session"] == 3 and summary["status"] == "completed"
    assert [s["step"] for s in summary["steps"]] == list(range(kept + 3))


def test_killed_mid_run_the_store_stays_readable_and_the_rerun_resumes(
    cli_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    slow = write(
        tmp_path / "slow.yaml",
        "name: slow\nmodels: [{model: dummy:text, params: {delay_ms: 150}}]\n",
    )
    args = ["run", str(slow), "--genesis", "kill me", "--seed", "3", "--max-steps", "30"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandloop.cli", *args],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_logged_steps(home, proc, 5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    runs = json.loads(sandloop("runs", "--json", env=cli_env).stdout)
    assert runs[0]["status"] == "interrupted"
    recorded = json.loads(sandloop("show", runs[0]["thread"], "--json", env=cli_env).stdout)[
        "steps"
    ]
    assert len(recorded) >= 5 and [s["step"] for s in recorded] == list(range(len(recorded)))

    resumed = sandloop(*args, "--json", env=cli_env)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["steps_total"] == 30
    assert summary["steps_this_session"] == 30 - len(recorded)
    keys = [s["key"] for s in summary["steps"]]
    assert [s["step"] for s in summary["steps"]] == list(range(30)) and len(set(keys)) == 30
    assert keys[: len(recorded)] == [s["key"] for s in recorded]
