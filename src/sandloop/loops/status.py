"""Where a run stands and why it stopped: one vocabulary for every loop kind, as stored in the
`runs` table (`status`, `stop_reason`) and shown by `sandloop runs`."""

from __future__ import annotations

from enum import StrEnum

from sandloop.errors import SandloopError


class RunStatus(StrEnum):
    REGISTERED = "registered"  # recorded, no step run yet
    RUNNING = "running"
    WAITING = "waiting"  # a paced run handed its next step to a scheduled continuation
    STOPPED = "stopped"  # a session limit (max_duration) ended it; running it again goes on
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # someone asked it to stop; running it again goes on


class StopReason(StrEnum):
    # network runs
    MAX_STEPS = "max_steps"
    MAX_DURATION = "max_duration"
    REPEAT = "repeat"  # an exact repeat (networks: same node, same output; dialogues: a turn)
    CONVERGED = "converged"
    HANDED_OFF = "handed_off"  # a long pace wait went to a scheduled continuation
    # dialogues
    MAX_TURNS = "max_turns"
    SENTINEL = "sentinel"
    JUDGE = "judge"
    BUDGET = "budget"
    YOUR_TURN = "your_turn"  # a chat waits for its person's next message
    ENDED = "ended"  # its person ended the chat
    # recipes: how the refine loop ended
    VALID = "valid"
    JUDGED = "judged"
    GAVE_UP = "gave_up"
    # any kind: a model failed in a way retries could not fix
    FAILED = "failed"
    # network runs and dialogues: someone cancelled the run (HTTP, MCP, the CLI, Prefect's UI)
    CANCELLED = "cancelled"


#: Reasons after which running the same thread again has nothing to do.
FINAL_REASONS = frozenset(
    {
        StopReason.MAX_STEPS,
        StopReason.REPEAT,
        StopReason.CONVERGED,
        StopReason.MAX_TURNS,
        StopReason.SENTINEL,
        StopReason.JUDGE,
        StopReason.BUDGET,
        StopReason.ENDED,
        StopReason.VALID,
        StopReason.JUDGED,
        StopReason.GAVE_UP,
    }
)


def status_after(reason: StopReason) -> RunStatus:
    """The run's status once a session ends for ``reason``."""
    if reason in (StopReason.FAILED, StopReason.GAVE_UP):
        return RunStatus.FAILED
    if reason is StopReason.MAX_DURATION:
        return RunStatus.STOPPED
    if reason is StopReason.CANCELLED:
        return RunStatus.CANCELLED
    if reason in (StopReason.HANDED_OFF, StopReason.YOUR_TURN):
        return RunStatus.WAITING
    return RunStatus.COMPLETED


class NotCancellable(SandloopError):
    """A cancel for a run that is not going: it has ended, was never started, or is of a kind
    that ends on its own (a recipe, within its attempts)."""

    exit_code = 1
