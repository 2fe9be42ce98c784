"""A judge recipe over a snapshot as one Prefect flow run: the judge reads every output the
snapshot would export (or, comparing, every two answers to one prompt), and each verdict is a
`scores` row with the judge's key (see `sandloop.judging`).

Each verdict is an ordinary recipe run (its own thread, `runs` row and recorded calls), so a
re-run is a cache hit and a killed judge goes on where it stopped. The runs are advanced a batch
at a time, in rounds: each round asks every unfinished run's next call of one model in one task
run, as a sweep does, so 1,000 verdicts cost a few task runs, not a flow run each.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from prefect import flow, runtime
from prefect.states import Failed

from sandloop.config import Settings
from sandloop.exports import snapshot as snapshots
from sandloop.exports.examples import Example
from sandloop.exports.snapshot import JUDGE_PHASE
from sandloop.exports.writer import snapshot_examples
from sandloop.flows.artifacts import label_flow_run
from sandloop.flows.batched import invoke_together
from sandloop.flows.driver import current_flow_run_id
from sandloop.flows.home import open_home
from sandloop.flows.recipe import (
    critique_rows,
    failed_record,
    final_row,
    finished_record,
    new_record,
    recorded_results,
)
from sandloop.hashing import canonical_json
from sandloop.judging import (
    JudgeError,
    Mode,
    Question,
    Subject,
    check_judge,
    judge_id,
    questions,
    verdict_rows,
)
from sandloop.loops.protocol import Call
from sandloop.loops.recipe.context import prompt_for, resolve_context
from sandloop.loops.recipe.engine import RefineLoop
from sandloop.loops.recipe.spec import RecipeSpec, load_recipe
from sandloop.progress import JudgeProgress, publish
from sandloop.records import invocation_row
from sandloop.registration import RunRecord
from sandloop.scoring import Judged, ScoreError
from sandloop.storage.journal import WriterLog, append_together
from sandloop.storage.store import AkashicStore, sql_str
from sandloop.summaries import JudgeSummary

BATCH = 256  # recipe runs advanced together: one task run per round and model
LOOKUP_KEYS = 2_000  # keys per `key IN (…)` filter


@dataclass
class _Tally:
    verdicts: int = 0
    already: int = 0
    unscored: int = 0
    failed: int = 0
    task_runs: int = 0
    scores: list[float] = field(default_factory=list)


@dataclass
class _Live:
    """A verdict being reached: its recipe run, its log, what it judges (more than one output
    or pair when they read the same)."""

    loop: RefineLoop
    log: WriterLog
    subjects: list[Subject]
    record: RunRecord
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def _judge_run_name() -> str:
    params = runtime.flow_run.parameters
    return f"judge {params.get('snapshot')} · {params.get('recipe')}"


@flow(name="judge", flow_run_name=_judge_run_name, persist_result=False, validate_parameters=False)
def judge_flow(
    snapshot: str,
    recipe: str,
    model: str | None = None,
    seed: int | None = None,
    limit: int | None = None,
    home: str | None = None,
    mode: Mode = "score",
) -> Any:
    """Returns the summary; the flow run fails only when no verdict could be recorded."""
    settings, store, catalog = open_home(home)
    spec = load_recipe(recipe, catalog, model)
    check_judge(spec, mode)
    row = snapshots.get(store, snapshot)
    assert row is not None  # get() raises for a missing one
    pinned = snapshots.Pinned(store, row)
    examples = [e for e in snapshot_examples(pinned, catalog) if e.vector_key]
    asked = questions(examples, _located(pinned, examples), mode)[:limit]
    if not asked:
        what = "outputs" if mode == "score" else "two answers to one prompt"
        raise JudgeError(f"snapshot {snapshot!r} has no {what} for a judge to read")
    by = judge_id(spec)
    label_flow_run(name=f"judge {snapshot} · {by} · {len(asked)} questions")
    tally, started = _Tally(), datetime.now(UTC)
    done = 0
    for start in range(0, len(asked), BATCH):
        chunk = asked[start : start + BATCH]
        _judge_batch(store, settings, spec, chunk, seed, by, tally)
        done += len(chunk)
        publish(JudgeProgress(snapshot, done, len(asked), tally.verdicts))
    summary = JudgeSummary(
        snapshot=snapshot,
        judge=by,
        mode=mode,
        examples=len(asked),
        verdicts=tally.verdicts,
        already=tally.already,
        unscored=tally.unscored,
        failed=tally.failed,
        mean_score=round(sum(tally.scores) / len(tally.scores), 3) if tally.scores else None,
        task_runs=tally.task_runs,
        duration_s=(datetime.now(UTC) - started).total_seconds(),
        flow_run_id=current_flow_run_id(),
    )
    label_flow_run(name=f"judge {snapshot} · {by} · {tally.verdicts}/{len(asked)} verdicts")
    if not tally.verdicts:
        return Failed(message=f"{by} recorded no verdict on snapshot {snapshot}", data=summary)
    return summary


def _located(pinned: snapshots.Pinned, examples: list[Example]) -> dict[str, Judged]:
    """Where each example's output is recorded: the thread and step its score names."""
    found: dict[str, Judged] = {}
    for start in range(0, len(examples), LOOKUP_KEYS):  # a filter per chunk, not one per snapshot
        chunk = examples[start : start + LOOKUP_KEYS]
        keys = ", ".join(sql_str(str(e.vector_key)) for e in chunk)
        rows = pinned.read("invocations", f"key IN ({keys})", ["key", "thread", "step"])
        for k, t, s in zip(rows["key"], rows["thread"], rows["step"], strict=True):
            found[str(k)] = Judged(str(k), str(t), int(s))
    return found


def _judge_batch(
    store: AkashicStore,
    settings: Settings,
    spec: RecipeSpec,
    asked: list[Question],
    seed: int | None,
    by: str,
    tally: _Tally,
) -> None:
    planned = []
    for question in asked:
        values = resolve_context(spec, question.text, {}, seed)
        planned.append((question.subject, values, spec.thread(values, seed)))
    known = recorded_results(store, spec, list(dict.fromkeys(t for _, _, t in planned)))
    rows: list[dict[str, Any]] = []  # verdicts and critic scores, written together
    live: dict[str, _Live] = {}
    try:
        for subject, values, thread in planned:
            if thread in live:  # the same text twice: one verdict serves both
                live[thread].subjects.append(subject)
                continue
            result = known.get(thread)
            if result is not None:
                tally.already += 1
                parsed = result.parsed if result.accepted else None
                _verdicts(parsed, result.final_key, [subject], by, tally, rows)
                continue
            loop = RefineLoop(spec, prompt_for(spec, values), thread, seed)
            # a judge's run is not training data unless a snapshot asks (include_judges)
            record = replace(new_record(spec, thread, values, seed, None), phase=JUDGE_PHASE)
            live[thread] = _Live(loop, store.open_thread(thread), [subject], record)
        if live:
            store.put_runs([item.record.as_row() for item in live.values()])
            _advance(store, settings, list(live.values()), tally)
            _finish(store, spec, list(live.values()), by, tally, rows)
    finally:
        for item in live.values():
            item.log.close()
    if rows:
        store.upsert("scores", rows)


def _advance(store: AkashicStore, settings: Settings, live: list[_Live], tally: _Tally) -> None:
    """Every run to its stop, one round at a time: each round's calls grouped by model."""
    flow_run_id = current_flow_run_id()
    round_ = 0
    running = list(live)
    while running:
        groups: dict[tuple[str, str], list[tuple[_Live, Call]]] = {}
        for item in running:
            call = item.loop.plan()
            groups.setdefault((call.model, canonical_json(call.params).decode()), []).append(
                (item, call)
            )
        for (model, _params), members in groups.items():
            calls = [call for _, call in members]
            outcomes = invoke_together(store, settings, round_, calls[0].facet, model, calls)
            tally.task_runs += 1
            entries = []
            for (item, call), outcome in zip(members, outcomes, strict=True):
                row = invocation_row(call, outcome, item.loop.advance(call, outcome), flow_run_id)
                item.rows.append(row)
                entries.append((item.log, row))
                if not outcome.ok:
                    item.error = outcome.error
            append_together(entries)
        now = datetime.now(UTC)
        running = [item for item in running if item.loop.stop_reason(now) is None]
        round_ += 1


def _finish(
    store: AkashicStore,
    spec: RecipeSpec,
    live: list[_Live],
    by: str,
    tally: _Tally,
    rows: list[dict[str, Any]],
) -> None:
    records = []
    for item in live:
        if item.error is not None or item.loop.final() is None:
            tally.failed += len(item.subjects)
            records.append(failed_record(spec, item.record, str(item.error), item.rows))
            continue
        final = final_row(item.loop, item.rows)
        item.log.append(final)
        records.append(finished_record(spec, item.record, item.loop))
        outcome = item.loop.outcome()
        parsed = outcome.parsed if outcome.accepted else None
        _verdicts(parsed, str(final["key"]), item.subjects, by, tally, rows)
        rows.extend(critique_rows(item.loop, item.rows))
    store.flush_all([item.log for item in live])
    store.put_runs([record.as_row() for record in records])


def _verdicts(
    parsed: Any,
    judge_key: str | None,
    subjects: list[Subject],
    by: str,
    tally: _Tally,
    rows: list[dict[str, Any]],
) -> None:
    """The verdict's rows, or each of its subjects counted as not judged."""
    try:
        if judge_key is None:
            raise ScoreError("no verdict")
        made = verdict_rows(parsed, judge_key, subjects, by)
    except ScoreError:
        tally.unscored += len(subjects)
        return
    rows.extend(made)
    tally.verdicts += len(made)
    tally.scores.extend(float(row["score"]) for row in made if row["score"] is not None)
