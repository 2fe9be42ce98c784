"""The pure network engine, resumed after any number of recorded steps, plans exactly the calls an
uninterrupted run makes: same steps, inputs, keys, parents, seeds, due times and stop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandloop.loops.network import engine
from sandloop.loops.network.spec import RunSpec
from sandloop.loops.protocol import Call, Outcome
from sandloop.loops.status import StopReason
from sandloop.models.base import CallContext, ModelInput
from sandloop.models.dummy import DummyAdapter
from sandloop.records import invocation_row

T0 = datetime(2026, 1, 1, tzinfo=UTC)
THREAD = "f" * 32
MODEL = DummyAdapter("dummy:text")


def answer(call: Call, at: datetime) -> Outcome:
    """The dummy model's output for a call, finishing at ``at``."""
    ctx = CallContext(call.seed, call.step_key, call.index)
    output = MODEL.generate(ModelInput("text", text=call.input_value), call.params, ctx)
    return Outcome(at, at + timedelta(milliseconds=5), value=output.text or "")


def uninterrupted(
    spec: RunSpec, genesis: str
) -> tuple[list[Call], list[dict[str, Any]], list[datetime]]:
    loop = engine.resume(spec, THREAD, genesis, T0, pd.DataFrame(), session_started=T0)
    calls, rows, dues = [], [], []
    clock = T0
    while loop.stop_reason(clock) is None:
        call = loop.plan()
        dues.append(loop.due_at())
        clock = max(clock, loop.due_at())
        outcome = answer(call, clock)
        rows.append(invocation_row(call, outcome, loop.advance(call, outcome), None))
        calls.append(call)
        clock = outcome.finished_at
    return calls, rows, dues


specs = st.builds(
    lambda n, vocab, seed, repeat, steps, pace: RunSpec.model_validate(
        {
            "network": {
                "name": "p",
                "models": [
                    {"model": "dummy:text", "role": f"r{i}", "params": {"vocab": vocab}}
                    for i in range(n)
                ],
            },
            "genesis": "g",
            "seed": seed,
            "stop": {"max_steps": steps, "stop_on_repeat": repeat},
            "pace": pace,
        }
    ),
    st.integers(1, 3),
    st.integers(1, 40),
    st.one_of(st.none(), st.integers(0, 2**32)),
    st.booleans(),
    st.integers(1, 24),
    st.sampled_from(
        [{"kind": "none"}, {"kind": "constant", "seconds": 2.0}, {"kind": "exponential"}]
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs, genesis=st.text(min_size=1, max_size=30), data=st.data())
def test_resuming_after_k_steps_plans_what_an_uninterrupted_run_plans(
    spec: RunSpec, genesis: str, data: st.DataObject
) -> None:
    spec = spec.model_copy(update={"genesis": genesis})
    calls, rows, dues = uninterrupted(spec, genesis)
    whole = engine.resume(spec, THREAD, genesis, T0, pd.DataFrame(rows), session_started=T0)
    k = data.draw(st.integers(0, len(rows)), label="k")

    loop = engine.resume(spec, THREAD, genesis, T0, pd.DataFrame(rows[:k]), session_started=T0)
    assert loop.next_step == k
    resumed: list[Call] = []
    clock = rows[k - 1]["finished_at"] if k else T0
    while loop.stop_reason(clock) is None:
        call = loop.plan()
        assert call.step < len(calls), "the resumed run went past the uninterrupted one"
        assert loop.due_at() == dues[call.step]  # the pace's clock survives the resume
        row = rows[call.step]
        outcome = Outcome(row["started_at"], row["finished_at"], value=row["output"])
        loop.advance(call, outcome)
        resumed.append(call)
        clock = outcome.finished_at

    assert resumed == calls[k:]
    assert [c.key for c in resumed] == [r["key"] for r in rows[k:]]
    assert loop.stop_reason(clock) == whole.stop_reason(clock)
    assert loop.loop_length == whole.loop_length
    assert loop.due_at() == whole.due_at()
    if whole.stop_reason(clock) is StopReason.REPEAT:
        assert spec.seed is not None and spec.stop.stop_on_repeat


def test_a_failed_step_is_planned_again_on_resume() -> None:
    spec = RunSpec.model_validate(
        {"network": {"name": "p", "models": ["dummy:text"]}, "genesis": "g", "seed": 1}
    )
    calls, rows, _ = uninterrupted(spec, "g")
    failed = {**rows[3], "status": "failed", "output": None}
    loop = engine.resume(spec, THREAD, "g", T0, pd.DataFrame([*rows[:3], failed]))
    assert loop.next_step == 3 and loop.plan() == calls[3]
