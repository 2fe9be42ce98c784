"""What a run, a dialogue, a recipe or a pipeline came to, as the API returns it.

Typed, so a notebook or the CLI reads ``summary.thread`` and a typo is an error; ``as_dict()`` is
the same summary as JSON-ready data (`--json` prints it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Self, cast


class _Summary:
    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = asdict(cast(Any, self))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in fields(cast(Any, cls))}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class RunSummary(_Summary):
    """One session of a network run."""

    thread: str
    name: str
    status: str  # completed | failed | stopped | waiting
    stop_reason: str
    steps_total: int
    steps_this_session: int
    loop_length: int | None = None
    error: str | None = None
    already_finished: bool = False
    duration_s: float = 0.0
    flow_run_id: str | None = None
    embedded: int | None = None  # outputs embedded in the background (None: off or failed)
    next_due_at: str | None = None  # a handed-off run: when its continuation is due
    continuation: str | None = None  # ... and which flow run that is


@dataclass(frozen=True)
class DialogueSummary(_Summary):
    thread: str
    name: str
    status: str  # completed | failed
    stop_reason: str  # max_turns | sentinel | judge | repeat | budget | failed
    turns: int
    error: str | None = None


@dataclass(frozen=True)
class RecipeResult(_Summary):
    thread: str
    name: str
    version: str
    status: str  # valid | judged | gave_up | failed
    output: str | None
    parsed: Any
    errors: list[str]
    score: float | None
    calls: int
    cached: bool = False
    error: str | None = None  # why the recipe failed; None when it was accepted
    final_key: str | None = None  # the invocation of the output it ends on

    @property
    def accepted(self) -> bool:
        return self.status in ("valid", "judged")


@dataclass(frozen=True)
class PipelineResult(_Summary):
    pipeline: str
    output: str | None
    stages: list[RecipeResult] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class SweepSummary(_Summary):
    """One session of a sweep."""

    name: str
    threads: int
    threads_done: int  # stopped, in this session or before it
    already_finished: int  # finished before this session, left untouched
    busy: int  # being run by another process, left to it
    steps_this_session: int
    failed: int
    stop_reasons: dict[str, int] = field(default_factory=dict)
    task_runs: int = 0  # one per tick and model
    duration_s: float = 0.0
    flow_run_id: str | None = None


@dataclass(frozen=True)
class JudgeSummary(_Summary):
    """A judge recipe's pass over a snapshot."""

    snapshot: str
    judge: str  # judge:RECIPE@VERSION: the `by` of its verdicts, for --rated-by
    mode: str  # score (a 1-5 score per output) | compare (a preference per pair of answers)
    examples: int  # what it was asked about: outputs, or pairs of answers
    verdicts: int  # recorded, in this run or before it
    already: int  # of those, recorded before this run and left as they were
    unscored: int  # the judge gave up, or gave no verdict this mode reads
    failed: int  # a model call failed where retries could not help
    mean_score: float | None
    task_runs: int = 0  # one per round and model of each batch
    duration_s: float = 0.0
    flow_run_id: str | None = None


@dataclass(frozen=True)
class TracesWritten:
    """What `export traces` wrote: where, how many events for how many runs, redactions."""

    path: Path | None  # None when the events were only pushed
    events: int
    runs: int
    redacted: int
    pushed: Any = None  # exports.langfuse_push.TracesPushed, with --push


@dataclass(frozen=True)
class Started(_Summary):
    """A run started in the background: where to follow it. ``done`` resolves to the flow's
    final state (or the exception that kept it from running)."""

    kind: str  # network | dialogue | recipe | export
    thread: str  # for an export, the snapshot
    flow_run_id: str
    done: Any = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "thread": self.thread, "flow_run_id": self.flow_run_id}
