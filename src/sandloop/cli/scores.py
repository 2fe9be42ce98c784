"""`sandloop rate`, `sandloop prefer` and `sandloop judge`: a person's or a judge recipe's
judgement of recorded outputs, kept in the `scores` table, for score-filtered snapshots and
preference datasets."""

from __future__ import annotations

from typing import Annotated

import typer

from sandloop.cli.common import HomeOption, JsonOption, app, err, out, prepare_prefect
from sandloop.display import counted

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


@app.command("judge")
def judge(
    snapshot: Annotated[str, typer.Argument(help="The snapshot whose outputs are judged.")],
    recipe: Annotated[
        str | None,
        typer.Option(
            help="A judge recipe (a name or a YAML file). Default: judge-exchange, which answers "
            "{score: 1-5}; with --compare, judge-pair, which answers {better: A|B}.",
            show_default=False,
        ),
    ] = None,
    compare: Annotated[
        bool,
        typer.Option(
            "--compare", help="Compare two answers to one prompt at a time: preference pairs."
        ),
    ] = False,
    model: Annotated[
        str | None, typer.Option(help="Judge with this model instead of the recipe's.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for the judge's sampling.")] = None,
    limit: Annotated[int | None, typer.Option(help="Judge only the first N outputs.")] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show Prefect's logs.")] = False,
) -> None:
    """Judge a snapshot's outputs with a judge recipe, as one Prefect flow run.

    Each verdict is recorded by judge:RECIPE@VERSION with the judge's own key: a score (1-5)
    per output, to select by with `snapshot create --rated-by judge:RECIPE@VERSION --min-score
    N`; or, with --compare, a preference per two answers to one prompt, which preference
    exports (openai-dpo, trl, hf) use. A re-run keeps the verdicts already recorded.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    prepare_prefect(verbose)
    from sandloop import api
    from sandloop.progress import Event, JudgeProgress, observing

    progress = Progress(
        TextColumn("[bold]judging"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("outputs · {task.fields[verdicts]} verdicts"),
        console=err,
        transient=True,
        disable=as_json,
    )
    bar = progress.add_task("judge", total=None, verdicts=0)

    def on_batch(event: Event) -> None:
        if isinstance(event, JudgeProgress):
            progress.update(bar, completed=event.judged, total=event.total, verdicts=event.verdicts)

    with progress, observing(on_batch):
        summary = api.judge_snapshot(
            snapshot, recipe, home, compare=compare, model=model, seed=seed, limit=limit
        )
    if as_json:
        out.print_json(data=summary.as_dict())
    else:
        mean = f", mean {summary.mean_score:.2f}" if summary.mean_score is not None else ""
        asked = "outputs" if summary.mode == "score" else "pairs of answers"
        out.print(
            f"{summary.judge} judged {summary.examples} {asked} of snapshot {summary.snapshot}: "
            f"{summary.verdicts} verdicts{mean}"
            + (f" ({summary.already} recorded before)" if summary.already else "")
            + (f"; {summary.unscored} without a verdict" if summary.unscored else "")
            + (f"; {summary.failed} failed" if summary.failed else "")
            + f" in {summary.duration_s:.1f} s ({counted(summary.task_runs, 'task run')})",
            highlight=False,
        )
    if not summary.verdicts:
        raise typer.Exit(1)
