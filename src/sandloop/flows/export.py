"""The export as a Prefect flow, so a nightly dataset build is a scheduled deployment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, runtime, task

from sandloop.config import Settings
from sandloop.exports import snapshot as snapshots
from sandloop.exports.writer import ExportOptions, export
from sandloop.flows.home import open_home


def _run_name() -> str:
    params = runtime.flow_run.parameters
    return f"export {params.get('snapshot')} → {', '.join(params.get('formats') or [])}"


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
) -> dict[str, Any]:
    settings = Settings.for_home(home)
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
    ExportOptions(**options).check()  # bad options fail the flow before any work
    manifest: dict[str, Any] = write_datasets(snapshot, str(settings.home), options)
    return manifest
