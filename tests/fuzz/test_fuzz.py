"""A fuzz suite: mutated spec files, CLI flags and write-ahead-log lines, through the spec
loaders, the CLI entry point (in-process) and the store's readers.

What must hold for every case: a refusal is exit 2 with one `error:` line, no traceback, and
nothing written under the home. Hypothesis drives it; `SANDLOOP_FUZZ_EXAMPLES` sets the cases
per test (the slow step runs more, with random seeds; `make test` runs a fixed set).
"""

from __future__ import annotations

import contextlib
import io
import os
import string
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from _common import invocation_rows
from sandloop import api
from sandloop.cli import app
from sandloop.loops.dialogue.spec import load_dialogue
from sandloop.loops.network.spec import RunSpec
from sandloop.loops.recipe.spec import load_recipe
from sandloop.loops.spec_files import SpecError
from sandloop.models.registry import load_catalog
from sandloop.storage.store import AkashicStore
from tests.store_rows import tree

ROOT = Path(__file__).resolve().parents[2]
BASES = {
    "network": [ROOT / "examples" / "networks" / n for n in ("echo.yaml", "balloon.yaml")],
    "dialogue": [ROOT / "examples" / "dialogues" / "scripted.yaml"],
    "recipe": [ROOT / "examples" / "recipes" / "review.yaml"],
}
EXAMPLES = int(os.environ.get("SANDLOOP_FUZZ_EXAMPLES", "150"))  # make fuzz: 2000
FIXED = os.environ.get("SANDLOOP_FUZZ_RANDOM") != "1"

fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=FIXED,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def cases() -> Iterator[Counter[str]]:
    """Cases run per kind, printed at the end (the count goes in benchmarks/RESULTS.md)."""
    counts: Counter[str] = Counter()
    yield counts
    print(f"\nfuzz cases: {dict(counts)}, total {sum(counts.values())}")


# -- mutations of spec files ---------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["dummy:text", "dummy:text→image", "route:x", "recipe:none", "1e400", ""]),
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(string.ascii_lowercase + "_", max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _structural(data: Any, draw: Any) -> Any:
    """Replace, delete or add a value somewhere in the parsed spec."""
    if isinstance(data, dict) and data:
        key = draw(st.sampled_from(sorted(data, key=str)))
        action = draw(st.sampled_from(["replace", "delete", "add", "descend"]))
        if action == "replace":
            return {**data, key: draw(values)}
        if action == "delete":
            return {k: v for k, v in data.items() if k != key}
        if action == "add":
            return {**data, draw(st.text(max_size=12)): draw(values)}
        return {**data, key: _structural(data[key], draw)}
    if isinstance(data, list) and data:
        index = draw(st.integers(0, len(data) - 1))
        return [*data[:index], _structural(data[index], draw), *data[index + 1 :]]
    return draw(values)


def _bytes_mutation(data: bytes, draw: Any) -> bytes:
    action = draw(st.sampled_from(["flip", "truncate", "insert", "encode", "nest", "huge"]))
    if action == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    if action == "truncate":
        return data[: draw(st.integers(0, len(data)))]
    if action == "insert":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.binary(max_size=16)) + data[at:]
    if action == "encode":
        codec = draw(st.sampled_from(["utf-16", "utf-16-be", "utf-32", "latin-1", "cp1252"]))
        return data.decode("utf-8").encode(codec, errors="replace")
    if action == "nest":
        depth = draw(st.integers(60, 1200))
        return data + b"\nextra: " + b"[" * depth + b"]" * depth + b"\n"
    return data + b"\nextra: " + draw(st.sampled_from([b"9" * 5000, b"x" * 2_000_000, b"&a *a"]))


@st.composite
def spec_files(draw: Any) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(sorted(BASES)))
    original = draw(st.sampled_from(BASES[kind])).read_bytes()
    if draw(st.booleans()):
        parsed = yaml.safe_load(original)
        mutated = _structural(parsed, draw)
        try:
            return kind, yaml.safe_dump(mutated, allow_unicode=True).encode()
        except yaml.YAMLError:
            return kind, original
    return kind, _bytes_mutation(original, draw)


def load(kind: str, path: Path, home: Path) -> None:
    """The loader of that kind of spec; SpecError is the only way it may refuse."""
    if kind == "network":
        api.load_run_spec(path, genesis="g")
    elif kind == "dialogue":
        load_dialogue(path, load_catalog(None, home))
    else:
        load_recipe(str(path), load_catalog(None, home))


@fuzz
@given(case=spec_files())
def test_spec_loaders_refuse_only_with_a_spec_error(
    case: tuple[str, bytes], tmp_path_factory: pytest.TempPathFactory, cases: Counter[str]
) -> None:
    kind, data = case
    folder = tmp_path_factory.mktemp("spec")
    path = folder / f"{kind}.yaml"
    path.write_bytes(data)
    cases["spec loader"] += 1
    try:
        load(kind, path, folder / "home")
    except SpecError as exc:
        assert str(exc).strip(), "an empty error"


# -- the CLI entry point --------------------------------------------------------------------


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Path:
    home = tmp_path_factory.mktemp("fuzz") / "home"
    run = RunSpec.model_validate(
        {
            "network": {"name": "fuzzed", "models": ["dummy:text"]},
            "genesis": "seed text",
            "seed": 3,
            "stop": {"max_steps": 4},
        }
    )
    api.run_network(run, home)
    api.create_snapshot("snap", home)
    return home


def assert_clean(result: Result, home: Path, before: list[tuple[str, int]]) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        repr(result.exception),
        result.output[-2000:],
    )
    assert "Traceback" not in result.output
    if result.exit_code != 0:
        assert result.exit_code in (1, 2), result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
        assert tree(home) == before, "a rejected command wrote under the home"


flag_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["", "-1", "0", "1e400", "inf", "nan", "%", "_", "' OR 1=1 --", "9" * 5000, "/proc/x"]
    ),
    st.integers(-(2**70), 2**70).map(str),
)
paces = st.one_of(
    flag_values,
    st.tuples(st.sampled_from(["constant", "exponential", "panic", "none", "x"]), flag_values).map(
        lambda p: f"{p[0]}:{p[1]}"
    ),
)


@st.composite
def read_commands(draw: Any) -> list[str]:
    command = draw(st.sampled_from(["show", "runs", "snapshot", "export", "traces", "doctor"]))
    if command == "show":
        return ["show", draw(flag_values), *draw(st.sampled_from([[], ["--json"], ["--full"]]))]
    if command == "runs":
        return ["runs", *draw(st.sampled_from([[], ["--json"], [draw(flag_values)]]))]
    if command == "snapshot":
        action = draw(st.sampled_from(["show", "create", "delete"]))
        if action == "create":
            return ["snapshot", "create", "--name", draw(flag_values), "--status", "nope"]
        return ["snapshot", action, draw(flag_values)]
    if command == "export":
        fmt = draw(st.sampled_from(["openai-chat", "hf", "bogus", ""]))
        out = draw(st.sampled_from(["", "/proc/x", "/etc/passwd", "HOME", "HOME/akashic"]))
        return ["export", draw(st.sampled_from(["snap", "nope"])), "--format", fmt, "--out", out]
    if command == "traces":
        out = draw(st.sampled_from(["/proc/x.json", "HOME/t.json", "/etc/passwd/x.json", ""]))
        return ["export", "traces", "--out", out, "--thread", draw(flag_values)]
    return ["doctor", *draw(st.sampled_from([[], ["--rewind"], [draw(flag_values)]]))]


@fuzz
@given(argv=read_commands())
def test_read_commands_never_crash_or_write_when_they_refuse(
    argv: list[str], populated: Path, cases: Counter[str]
) -> None:
    argv = [a.replace("HOME", str(populated)) for a in argv]
    before = tree(populated)
    result = CliRunner().invoke(app, argv, env={"SANDLOOP_HOME": str(populated)})
    cases["cli read"] += 1
    assert_clean(result, populated, before)
    if argv[0] in ("show", "snapshot", "doctor") and result.exit_code == 0:
        assert tree(populated) == before  # reads and checks write nothing either


@fuzz
@given(case=spec_files(), seed=flag_values, steps=flag_values, pace=paces)
def test_rejected_runs_are_one_line_and_write_nothing(
    case: tuple[str, bytes],
    seed: str,
    steps: str,
    pace: str,
    tmp_path_factory: pytest.TempPathFactory,
    cases: Counter[str],
) -> None:
    kind, data = case
    folder = tmp_path_factory.mktemp("run")
    path = folder / "spec.yaml"
    path.write_bytes(data)
    home = folder / "home"
    command = {"network": "run", "dialogue": "dialogue", "recipe": "recipe"}[kind]
    argv = {
        "run": ["run", str(path), "--genesis", "g", "--seed", seed, "--max-steps", steps],
        "dialogue": ["dialogue", "run", str(path), "--seed", seed],
        "recipe": ["recipe", "run", str(path), "--input", "x", "--seed", seed],
    }[command]
    if command == "run":
        argv += ["--pace", pace]
    try:  # only what would be refused: an accepted spec would start a real run
        with contextlib.redirect_stderr(io.StringIO()):  # parse_pace's own error line
            _accepted(kind, path, home, seed, steps, pace, command)
        cases["cli run accepted, not run"] += 1
        return
    except Exception:
        pass
    result = CliRunner().invoke(app, argv, env={"SANDLOOP_HOME": str(home)})
    cases["cli run refused"] += 1
    assert_clean(result, home, [])
    assert result.exit_code == 2, result.output
    assert not home.exists()


def _accepted(
    kind: str, path: Path, home: Path, seed: str, steps: str, pace: str, command: str
) -> None:
    """Raises unless the CLI would accept these arguments and start a run."""
    from sandloop.cli.runs import parse_pace

    load(kind, path, home)
    int(seed)
    if command == "run":
        RunSpec.model_validate(
            {
                "network": api.load_network(path),
                "genesis": "g",
                "seed": int(seed),
                "stop": {"max_steps": int(steps)},
                "pace": parse_pace(pace),  # bad input: typer.Exit
            }
        )


# -- write-ahead-log lines ------------------------------------------------------------------

THREAD = "fe" * 16


@st.composite
def log_lines(draw: Any) -> bytes:
    kind = draw(st.sampled_from(["json", "row", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200)).replace(b"\n", b" ")
    if kind == "json":
        return _dumps(draw(values))
    row = invocation_rows(1, THREAD, draw(st.integers(0, 30)))[0]
    field = draw(st.sampled_from(sorted(row)))
    row = {**row, field: draw(values)} if draw(st.booleans()) else row
    return _dumps(row)


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_NAIVE_UTC)
    except TypeError:  # integers orjson cannot write
        return repr(value).encode()


@fuzz
@given(lines=st.lists(log_lines(), min_size=1, max_size=8))
def test_the_stores_readers_survive_any_log_line(
    lines: list[bytes], tmp_path_factory: pytest.TempPathFactory, cases: Counter[str]
) -> None:
    home = tmp_path_factory.mktemp("wal") / "home"
    store = AkashicStore.open(home)
    store.upsert("invocations", invocation_rows(3, THREAD))
    wal = home / "akashic" / "_wal"
    wal.mkdir(parents=True, exist_ok=True)
    (wal / f"{THREAD}.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    cases["log lines"] += len(lines)
    steps = store.steps(THREAD)
    assert steps["step"].dtype.kind == "i"
    log = store.open_thread(THREAD)  # what every resume does first
    log.close()
    after = store.steps(THREAD)
    assert len(after) >= 3 and after["key"].is_unique
