"""`sandloop snapshot` and `sandloop export`: pinned selections of the store, written as
fine-tuning datasets (and traces) that validate and reproduce."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from sandloop.cli.common import (
    HomeOption,
    JsonOption,
    app,
    err,
    out,
    prepare_prefect,
)
from sandloop.cli.output import Column, print_records, short_id, text, when
from sandloop.display import counted

snapshot_app = typer.Typer(
    help="Pinned selections of the record, for exports.", no_args_is_help=True
)
app.add_typer(snapshot_app, name="snapshot")


class _ExportGroup(TyperGroup):
    """`sandloop export SNAPSHOT …` writes datasets; `validate` and `traces` are subcommands."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["dataset", *args]
        return super().parse_args(ctx, args)


export_app = typer.Typer(
    cls=_ExportGroup,
    help="Write a snapshot as datasets: `sandloop export SNAPSHOT --format F --out DIR`; "
    "`export validate`, `export traces`, `export push`.",
    no_args_is_help=True,
)
app.add_typer(export_app, name="export")


@snapshot_app.command("create")
def snapshot_create(
    name: Annotated[str, typer.Option("--name", help="The snapshot's name.")],
    realm: Annotated[str | None, typer.Option(help="Realm prefix.")] = None,
    thread: Annotated[str | None, typer.Option(help="Thread prefix.")] = None,
    session: Annotated[str | None, typer.Option(help="Session id prefix.")] = None,
    kind: Annotated[list[str], typer.Option(help="network, dialogue or recipe; repeatable.")] = [],  # noqa: B006
    phase: Annotated[list[str], typer.Option(help="A session phase; repeatable.")] = [],  # noqa: B006
    since: Annotated[datetime | None, typer.Option(help="Runs created at or after.")] = None,
    until: Annotated[datetime | None, typer.Option(help="Runs created before.")] = None,
    status: Annotated[
        list[str], typer.Option(help="Run status; repeatable (default completed).")
    ] = ["completed"],  # noqa: B006
    min_score: Annotated[
        float | None,
        typer.Option(help="Only outputs scored at least this on average (1-5)."),
    ] = None,
    rated_by: Annotated[
        str | None,
        typer.Option(help="Only these scores count: a user, judge:RECIPE@VERSION or critic:MODEL."),
    ] = None,
    include_judges: Annotated[
        bool,
        typer.Option(
            "--include-judges",
            help="Also the runs of judges and moderation (not training data by default).",
        ),
    ] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Select runs and pin the table versions they are recorded in."""
    from sandloop import api

    row = api.create_snapshot(
        name,
        home,
        realm=realm,
        thread=thread,
        session=session,
        kind=kind,
        phase=phase,
        since=since,
        until=until,
        status=status,
        min_score=min_score,
        rated_by=rated_by,
        include_judges=include_judges,
    )
    if as_json:
        out.print_json(data={"name": name, "threads": row["threads"], "versions": row["versions"]})
        return
    out.print(
        f"snapshot [bold]{name}[/]: {row['threads']} runs, versions {row['versions']}",
        highlight=False,
    )


@snapshot_app.command("list")
def snapshot_list(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Snapshots, newest first."""
    from sandloop import api

    frame = api.list_snapshots(home)
    print_records(
        frame,
        [
            Column("name"),
            Column("threads", "runs"),
            Column("selection"),
            Column("created_at", "created", show=when),
        ],
        as_json=as_json,
        empty="no snapshots yet; take one with `sandloop snapshot create --name NAME`",
    )


def _selection_words(selection: dict[str, Any]) -> str:
    """What a selection asks beyond the default (completed runs), as ``status failed; kind
    network, recipe``."""
    asked = {
        key: value
        for key, value in selection.items()
        if value not in (None, [], False) and not (key == "status" and value == ["completed"])
    }
    if "status" not in asked:
        asked = {"status": ["completed"], **asked}
    said = (", ".join(map(str, v)) if isinstance(v, list) else str(v) for v in asked.values())
    return "; ".join(f"{key} {words}" for key, words in zip(asked, said, strict=True))


@snapshot_app.command("show")
def snapshot_show(
    name: Annotated[str, typer.Argument(help="A snapshot's name.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """A snapshot's selection, pinned versions and runs (read at those versions)."""
    from sandloop import api

    row, runs = api.snapshot_runs(name, home)
    columns = ["thread", "kind", "name", "status", "steps", "session", "phase"]
    # both are kept as JSON text: objects in --json, words on the terminal
    selection: dict[str, Any] = json.loads(row["selection"])
    versions: dict[str, int] = json.loads(row["versions"])
    if not as_json:
        chosen = _selection_words(selection)
        pinned = ", ".join(f"{table} v{version}" for table, version in versions.items())
        out.print(f"[bold]{name}[/] · {chosen} · pinned at {pinned}", highlight=False)
    print_records(
        runs,
        [Column(c, show=short_id if c == "thread" else text) for c in columns[:5]],
        as_json=as_json,
        json_data={
            "name": name,
            "selection": selection,
            "versions": versions,
            "runs": runs.reindex(columns=columns).to_dict(orient="records"),
        },
    )


@snapshot_app.command("delete")
def snapshot_delete(
    name: Annotated[str, typer.Argument(help="A snapshot's name.")], home: HomeOption = None
) -> None:
    """Forget a snapshot and untag its versions (compaction may then clean them up)."""
    from sandloop import api

    api.delete_snapshot(name, home)
    out.print(f"snapshot {name} deleted")


@export_app.command("dataset", hidden=True)
def export_dataset(
    snapshot: Annotated[str, typer.Argument(help="A snapshot's name.")],
    out_dir: Annotated[
        str,
        typer.Option("--out", help="The folder to write (created), or s3://BUCKET/PREFIX."),
    ],
    formats: Annotated[
        list[str],
        typer.Option(
            "--format", help="openai-chat, openai-dpo, trl, sharegpt, alpaca or hf; repeatable."
        ),
    ],
    val_fraction: Annotated[float, typer.Option(help="Share of examples for validation.")] = 0.1,
    dedupe: Annotated[str, typer.Option(help="none, exact or near (stored embeddings).")] = "exact",
    compress: Annotated[str | None, typer.Option(help="zstd compresses the JSONL files.")] = None,
    redact: Annotated[
        list[str], typer.Option("--redact", help="An extra pattern to redact; repeatable.")
    ] = [],  # noqa: B006
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out folder.")] = False,
    license_id: Annotated[
        str, typer.Option("--license", help="The card's license id, as the Hub names licenses.")
    ] = "unknown",
    language: Annotated[
        list[str],
        typer.Option(
            "--language",
            help="The card's language code (en, fr, pt-BR); repeatable. Without it, detected "
            "from a sample where langdetect is installed.",
        ),
    ] = [],  # noqa: B006
    allow_invalid: Annotated[
        bool, typer.Option(help="Write even if the format checks fail.")
    ] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show Prefect's logs.")] = False,
) -> None:
    """Write SNAPSHOT as datasets (an export flow run): files per format and split,
    manifest.json and a dataset card. Nothing is written if a check fails."""
    prepare_prefect(verbose)
    from sandloop import api

    manifest = api.export_snapshot(
        snapshot,
        formats,
        out_dir,
        home,
        val_fraction=val_fraction,
        dedupe=dedupe,
        compress=compress,
        overwrite=overwrite,
        allow_invalid=allow_invalid,
        redact=redact,
        license_id=license_id,
        language=language,
    )
    out_path = api.export_destination(out_dir)
    if as_json:
        out.print_json(data=manifest)
        return
    counts = manifest["counts"]
    out.print(
        f"wrote {out_path}: {counts['train']['examples']} train and "
        f"{counts['validation']['examples']} validation examples; de-duplicated "
        f"{manifest['dedupe'] or 0}; redacted {manifest['redactions'] or 0}",
        highlight=False,
    )
    for name, records in api.export_file_sets(manifest).items():
        out.print(f"  {name}: {records}", highlight=False)
    for fmt, why in api.empty_formats(manifest).items():
        err.print(f"warning: {fmt} wrote no rows: {why}", highlight=False)


@export_app.command("validate")
def export_validate(
    path: Annotated[Path, typer.Argument(help="An export folder or one of its files.")],
    fmt: Annotated[str | None, typer.Option("--format", help="Default: from the folder.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Token limit per example.")] = 65_536,
    as_json: JsonOption = False,
) -> None:
    """Run a format's checks on exported files; exit 1 when a check fails."""
    from sandloop import api

    results = api.validate_export(path, fmt, max_tokens)
    if as_json:
        out.print_json(data={k: {"ok": r.ok, "summary": r.summary()} for k, r in results.items()})
    else:
        for name, report in results.items():
            colour = "green" if report.ok else "red"
            out.print(f"[{colour}]{'ok' if report.ok else 'invalid'}[/] {name}: {report.summary()}")
    if not all(r.ok for r in results.values()):
        raise typer.Exit(1)


@export_app.command("traces")
def export_traces(
    out_file: Annotated[
        str | None, typer.Option("--out", help="A .json (one batch) or .jsonl file.")
    ] = None,
    snapshot: Annotated[str | None, typer.Option(help="Only this snapshot's runs.")] = None,
    thread: Annotated[str | None, typer.Option(help="Only runs with this thread prefix.")] = None,
    push: Annotated[
        bool, typer.Option("--push", help="Send them to Langfuse (LANGFUSE_HOST).")
    ] = False,
    host: Annotated[
        str | None, typer.Option(help="The Langfuse host (default LANGFUSE_HOST, else cloud).")
    ] = None,
    public_key: Annotated[
        str | None, typer.Option(help="The Langfuse public key (default LANGFUSE_PUBLIC_KEY).")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", envvar="SANDLOOP_USER", help="Whose langfuse key.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Write runs as Langfuse ingestion events (trace, span, generation per model call), to a
    file, to a Langfuse host with --push, or both."""
    from sandloop import api

    written = api.export_traces(
        out_file,
        home,
        snapshot=snapshot,
        thread=thread,
        push=push,
        host=host,
        public_key=public_key,
        user=user,
    )
    where = f" to {written.path}" if written.path is not None else ""
    out.print(
        f"wrote {counted(written.events, 'event')} for {counted(written.runs, 'run')}{where}"
        + (f"; redacted {written.redacted}" if written.redacted else ""),
        highlight=False,
    )
    if written.pushed is not None:
        pushed = written.pushed
        line = f"pushed {pushed.events} events to {pushed.host} in {pushed.batches} batches"
        if pushed.rejected:
            line += f"; Langfuse rejected {pushed.rejected} (first: {pushed.first_error})"
        out.print(line, highlight=False)


@export_app.command("push")
def export_push(
    folder: Annotated[
        Path, typer.Argument(help="An export folder (as `sandloop export` wrote it).")
    ],
    repo: Annotated[str, typer.Argument(help="The Hub dataset repo, OWNER/NAME (created).")],
    private: Annotated[bool, typer.Option(help="Create the repo private.")] = False,
    user: Annotated[
        str | None, typer.Option("--user", envvar="SANDLOOP_USER", help="Whose hf key.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Upload an export to a Hugging Face Hub dataset repo (HF_ENDPOINT names another Hub)."""
    from sandloop import api

    pushed = api.push_export(folder, repo, private=private, user=user)
    if as_json:
        out.print_json(data=pushed.__dict__)
        return
    out.print(
        f"pushed {counted(pushed.files, 'file')} to {pushed.repo_url} (commit {pushed.commit[:12]}"
        f"{', private' if pushed.private else ''})",
        highlight=False,
    )
