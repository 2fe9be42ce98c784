"""The export as a Prefect flow, so a nightly dataset build is a scheduled deployment."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, runtime, task

from sandloop.exports import snapshot as snapshots
from sandloop.exports.destination import check_remote, is_url, upload
from sandloop.exports.writer import ExportOptions, export
from sandloop.flows.home import open_home
from sandloop.storage.location import parse


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
def write_datasets(
    snapshot: str, home: str, options: dict[str, Any], destination: str | None = None
) -> dict[str, Any]:
    """``destination``: an object-store URL; the export is made in a local staging folder
    (``options["out"]``) and uploaded once it is complete."""
    _, store, catalog = open_home(home)
    row = snapshots.get(store, snapshot)
    assert row is not None
    manifest = export(snapshots.Pinned(store, row), ExportOptions(**options), catalog)
    if destination is not None:
        upload(Path(options["out"]), parse(destination), overwrite=bool(options["overwrite"]))
    return manifest


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
    license_id: str = "unknown",
    language: list[str] | None = None,
) -> dict[str, Any]:
    """Write a pinned snapshot as datasets. With ``select`` (a snapshot selection: realm,
    kind, status, …) the snapshot is pinned first unless it exists; ``{date}`` in ``snapshot``
    or ``out`` is the scheduled day."""
    settings, store, _ = open_home(home)
    snapshot, out = _dated(snapshot), _dated(out)
    if select is not None and snapshots.get(store, snapshot, missing_ok=True) is None:
        snapshots.create(store, snapshot, snapshots.Selection.model_validate(select))
    destination = None
    if is_url(out):  # staged locally, checked, then uploaded
        destination = check_remote(out, str(settings.home), overwrite=overwrite).url
        out = str(Path(tempfile.mkdtemp(prefix="sandloop-export-")) / "export")
    options: dict[str, Any] = {
        "formats": tuple(formats),
        "out": Path(out),
        "val_fraction": val_fraction,
        "dedupe": dedupe,
        "compress": compress,
        "overwrite": overwrite,
        "allow_invalid": allow_invalid,
        "redact": tuple(redact or ()),
        "license": license_id,
        "language": tuple(language or ()),
    }
    ExportOptions(**options).check(settings.home)  # bad options fail before any work
    try:
        manifest: dict[str, Any] = write_datasets(
            snapshot, str(settings.home), options, destination
        )
    finally:
        if destination is not None:
            shutil.rmtree(Path(out).parent, ignore_errors=True)
    return manifest
