"""How long to wait before a step: the 'slow down over time' of long runs.

Pure functions of the policy, the step number and the run's age, so the next due time can be
computed, stored, and honoured again after a restart.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sandloop.loops.network.spec import (
    AgeBucketPace,
    ConstantPace,
    ExponentialPace,
    NoPace,
    PacePolicy,
)


def pace_delay_seconds(policy: PacePolicy, step: int, run_age_s: float) -> float:
    """Seconds to wait before ``step`` (0-based) of a run that started ``run_age_s`` ago."""
    if step <= 0 or isinstance(policy, NoPace):
        return 0.0
    if isinstance(policy, ConstantPace):
        return policy.seconds
    if isinstance(policy, ExponentialPace):
        # factor**step overflows a float for long runs; the cap is reached long before that.
        try:
            return min(policy.cap, policy.base * policy.factor ** (step - 1))
        except OverflowError:
            return policy.cap
    if isinstance(policy, AgeBucketPace):
        for bucket in policy.buckets:
            if run_age_s < bucket.younger_than_s:
                return bucket.delay_s
        return policy.older_delay_s
    raise TypeError(f"unknown pace policy {policy!r}")


def next_due_at(
    policy: PacePolicy, step: int, run_started_at: datetime, last_finished_at: datetime
) -> datetime:
    """When ``step`` may start: the previous step's end plus the policy's delay at that moment."""
    age_s = (last_finished_at - run_started_at).total_seconds()
    return last_finished_at + timedelta(seconds=pace_delay_seconds(policy, step, age_s))


def hands_off(policy: PacePolicy, wait_s: float) -> bool:
    """Whether a wait is long enough that a deployed run should end its flow run and leave the
    rest to a continuation scheduled at the due time, rather than hold a worker asleep."""
    if isinstance(policy, NoPace):
        return False
    return wait_s > policy.hand_off_after_s
