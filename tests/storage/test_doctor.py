"""`sandloop doctor` on stores damaged the ways the probes damaged them: a deleted manifest, a
deleted table, a deleted data file, rows gone from the latest version, a dead writer's log."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from _common import invocation_rows
from sandloop.cli import app
from sandloop.storage.doctor import examine
from sandloop.storage.store import AkashicStore, DamagedStore
from tests.store_rows import run_row

THREAD = "ef" * 16


def recorded_run(home: Path, steps: int = 40, batch: int = 10) -> AkashicStore:
    """A finished run whose steps were committed in batches, as flushes do."""
    store = AkashicStore.open(home)
    rows = invocation_rows(steps, THREAD)
    for start in range(0, steps, batch):
        store.upsert("invocations", rows[start : start + batch])
    store.put_run(run_row(THREAD, status="completed", stop_reason="max_steps", steps=steps))
    return store


def manifests(home: Path, table: str) -> list[Path]:
    """Newest first (LanceDB names manifests by u64::MAX minus the version)."""
    folder = home / "akashic" / f"{table}.lance" / "_versions"
    return sorted(folder.glob("*.manifest"), key=lambda p: int(p.stem))


def keys(store: AkashicStore) -> list[str]:
    return list(store.steps(THREAD)["key"])


def test_a_healthy_store_has_no_findings(home: Path) -> None:
    assert examine(recorded_run(home)) == []


def test_rows_gone_from_the_latest_version_are_copied_back(home: Path) -> None:
    store = recorded_run(home)
    before = keys(store)
    store.table("invocations").delete("step >= 25")
    run: dict[str, Any] = store.get_run(THREAD)  # type: ignore[assignment]
    with pytest.raises(DamagedStore):
        store.check_recorded(run, store.steps(THREAD))

    (finding,) = examine(store)
    assert finding.severity == "damaged" and "15 of them missing" in finding.what
    assert keys(store)[:25] == before[:25] and len(keys(store)) == 25  # looking changed nothing
    (finding,) = examine(store, repair=True)
    assert finding.repaired
    assert keys(store) == before
    store.check_recorded(run, store.steps(THREAD))
    assert examine(store) == []


def test_a_deleted_manifest_loses_steps_that_only_rewind_lets_a_run_redo(home: Path) -> None:
    store = recorded_run(home)
    manifests(home, "invocations")[0].unlink()  # the last flush's commit
    store = AkashicStore.open(home)
    (finding,) = examine(store, repair=True)
    assert not finding.repaired and "lost" in (finding.repair or "")
    with pytest.raises(DamagedStore):
        store.check_recorded(store.get_run(THREAD), store.steps(THREAD))  # type: ignore[arg-type]

    (finding,) = examine(store, repair=True, rewind=True)
    assert finding.repaired
    run = store.get_run(THREAD)
    assert run is not None and run["steps"] == 30 and run["status"] == "interrupted"
    assert "rewound by sandloop doctor" in run["error"]
    store.check_recorded(run, store.steps(THREAD))


def test_a_deleted_table_is_damage_until_rewound(home: Path) -> None:
    store = recorded_run(home)
    shutil.rmtree(home / "akashic" / "invocations.lance")
    store = AkashicStore.open(home)
    (finding,) = examine(store)
    assert "40 of them missing" in finding.what
    (finding,) = examine(store, repair=True, rewind=True)
    assert finding.repaired and store.get_run(THREAD)["steps"] == 0  # type: ignore[index]


def test_a_deleted_data_file_is_restored_to_the_newest_readable_version(home: Path) -> None:
    store = recorded_run(home, steps=20, batch=10)
    data = home / "akashic" / "invocations.lance" / "data"
    newest = max(data.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    newest.unlink()
    store = AkashicStore.open(home)
    with pytest.raises(DamagedStore, match="sandloop doctor"):
        store.steps(THREAD)

    findings = examine(store, repair=True)
    table, run = findings
    assert table.repaired and "cannot be read" in table.what
    assert not run.repaired and "10 of them missing" in run.what
    assert list(store.steps(THREAD)["step"]) == list(range(10))  # readable again


def test_a_dead_writers_log_is_committed(home: Path) -> None:
    store = recorded_run(home, steps=10)
    log = store.open_thread(THREAD)
    for row in invocation_rows(5, THREAD, offset=10):
        log.append(row)
    log.close()  # unflushed: a writer killed between flushes
    (finding,) = examine(store)
    assert finding.severity == "warning" and not finding.repaired
    (finding,) = examine(store, repair=True)
    assert finding.repaired and store.count("invocations") == 15


def test_the_doctor_command_exits_1_while_damaged(home: Path) -> None:
    store = recorded_run(home)
    store.table("invocations").delete("step >= 35")
    env = {"SANDLOOP_HOME": str(home), "COLUMNS": "300"}
    runner = CliRunner()
    looked = runner.invoke(app, ["doctor"], env=env)
    assert looked.exit_code == 1 and "--repair would copy" in looked.output
    repaired = runner.invoke(app, ["doctor", "--repair"], env=env)
    assert repaired.exit_code == 0 and "repaired" in repaired.output
    healthy = runner.invoke(app, ["doctor"], env=env)
    assert healthy.exit_code == 0 and "no problems found" in " ".join(healthy.output.split())
    refused = runner.invoke(app, ["doctor", "--rewind"], env=env)
    assert refused.exit_code == 2 and "needs --repair" in refused.stderr
