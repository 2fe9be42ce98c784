"""The export as a Prefect flow, so a nightly dataset build is a scheduled deployment."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, runtime, task

from sandloop.exports import snapshot as snapshots
from sandloop.exports.writer import ExportOptions, export
from sandloop.flows.home import open_home


def _run_name() -> str:
    params = runtime.flow_run.parameters
    snapshot = _dated(str(params.get("snapshot")))
    return f"export {snapshot} → {', '.join(params.get('formats') or [])}"


def _dated(text: str) -> str:
    """``{date}`` becomes the flow run's scheduled day, so a nightly deployment pins and writes
    one snapshot per night, and a retry of that night's run finds the same one."""
    if "{date}" not in text:
        return text
    when = runtime.flow_run.scheduled_start_time or datetime.now(UTC)
    return text.replace("{date}", when.strftime("%Y-%m-%d"))


@task(task_run_name="write {snapshot}", persist_result=False)
def write_datasets(snapshot: str, home: str, options: dict[str, Any]) -> dict[str, Any]:
    _, store = open_home(home)
    row = snapshots.get(store, snapshot)
    assert row is not None
    return export(snapshots.Pinned(store, row), ExportOptions(**options))


@flow(name="export", flow_run_name=_run_name, persist_result=False, validate_parameters=False)
def export_flow(
    snapshot: str,
    formats: list[str],
    out: str,
    val_fraction: float = 0.1,
    dedupe: str = "exact",
    compress: str | None = None,
    overwrite: bool = False,
    allow_invalid: bool = False,
    redact: list[str] | None = None,
    home: str | None = None,
    select: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a pinned snapshot as datasets. With ``select`` (a snapshot selection: realm,
    kind, status, …) the snapshot is pinned first unless it exists; ``{date}`` in ``snapshot``
    or ``out`` is the scheduled day."""
    settings, store = open_home(home)
    snapshot, out = _dated(snapshot), _dated(out)
    if select is not None and snapshots.get(store, snapshot, missing_ok=True) is None:
        snapshots.create(store, snapshot, snapshots.Selection.model_validate(select))
    options: dict[str, Any] = {
        "formats": tuple(formats),
        "out": Path(out),
        "val_fraction": val_fraction,
        "dedupe": dedupe,
        "compress": compress,
        "overwrite": overwrite,
        "allow_invalid": allow_invalid,
        "redact": tuple(redact or ()),
    }
    ExportOptions(**options).check(settings.home)  # bad options fail before any work
    manifest: dict[str, Any] = write_datasets(snapshot, str(settings.home), options)
    return manifest
