"""`sandloop rate` and `sandloop prefer`: a person's judgement of recorded outputs, kept in the
`scores` table, for score-filtered snapshots and preference datasets."""

from __future__ import annotations

from typing import Annotated

import typer

from sandloop.cli.common import HomeOption, JsonOption, app, out

ByOption = Annotated[
    str | None,
    typer.Option(
        "--by", envvar="SANDLOOP_USER", help="Who judges (default: 'default').", show_default=False
    ),
]
NoteOption = Annotated[str | None, typer.Option(help="Why, in a few words.")]


@app.command("rate")
def rate(
    step: Annotated[str, typer.Argument(help="THREAD:STEP, or a step's key.")],
    score: Annotated[int, typer.Option("--score", help="1 (bad) to 5 (good).")],
    note: NoteOption = None,
    by: ByOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rate one recorded output from 1 to 5 (again: the new rating replaces yours)."""
    from sandloop import api

    row = api.rate(step, score, home, note=note, by=by)
    if as_json:
        out.print_json(data={k: v for k, v in row.items() if k != "created_at"})
        return
    out.print(
        f"rated {row['thread'][:12]}:{row['step']} ({row['key'][:12]}) {score}/5 as {row['by']}",
        highlight=False,
    )


@app.command("prefer")
def prefer(
    preferred: Annotated[str, typer.Argument(help="The better step: THREAD:STEP or a key.")],
    other: Annotated[str, typer.Argument(help="The worse one, for the same input.")],
    note: NoteOption = None,
    by: ByOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record that PREFERRED's output beats OTHER's: a preference pair for DPO exports."""
    from sandloop import api

    row = api.prefer(preferred, other, home, note=note, by=by)
    if as_json:
        out.print_json(data={k: v for k, v in row.items() if k != "created_at"})
        return
    out.print(
        f"{row['key'][:12]} preferred over {row['other_key'][:12]} as {row['by']}",
        highlight=False,
    )
