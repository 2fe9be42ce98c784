from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sandloop.loops.network.pacing import hands_off, next_due_at, pace_delay_seconds
from sandloop.loops.network.spec import AgeBucketPace, ConstantPace, ExponentialPace, NoPace
from sandloop.loops.network.stopping import RepeatDetector


def test_no_pace_and_first_step_never_wait() -> None:
    assert pace_delay_seconds(NoPace(), 5, 1e6) == 0
    assert pace_delay_seconds(ConstantPace(seconds=3), 0, 0) == 0
    assert pace_delay_seconds(ConstantPace(seconds=3), 9, 0) == 3


def test_exponential_grows_then_caps() -> None:
    policy = ExponentialPace(base=1, factor=2, cap=10)
    assert [pace_delay_seconds(policy, s, 0) for s in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert pace_delay_seconds(policy, 10_000, 0) == 10


@pytest.mark.parametrize(("age_s", "delay"), [(0, 1), (599, 1), (600, 15), (3599, 15), (3600, 600)])
def test_panic_age_buckets(age_s: float, delay: float) -> None:
    assert pace_delay_seconds(AgeBucketPace(), 1, age_s) == delay


def test_next_due_at_uses_the_run_age_at_the_last_step() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    last = start + timedelta(minutes=20)
    assert next_due_at(AgeBucketPace(), 4, start, last) == last + timedelta(seconds=15)


def test_only_waits_longer_than_the_policy_threshold_are_handed_off() -> None:
    assert not hands_off(NoPace(), 1e6)
    assert not hands_off(AgeBucketPace(), 15)  # PANIC's middle bucket stays in-process
    assert hands_off(AgeBucketPace(), 600)
    quick = ExponentialPace(base=1, factor=2, cap=16, hand_off_after_s=2)
    delays = [pace_delay_seconds(quick, s, 0) for s in range(1, 6)]
    assert [hands_off(quick, d) for d in delays] == [False, False, True, True, True]


def test_repeat_detector_reports_loop_length_per_network_position() -> None:
    detector = RepeatDetector(network_size=2)
    outputs = ["a", "b", "c", "d", "a", "x", "c"]
    found = [detector.observe(step, out) for step, out in enumerate(outputs)]
    # "a" at step 4 repeats step 0 (same position 0): loop of 4. "c" at 6 repeats step 2.
    assert found == [None, None, None, None, 4, None, 4]
    # the same output at a different position of the network is not a repeat
    other = RepeatDetector(network_size=2)
    assert [other.observe(s, "same") for s in range(3)] == [None, None, 2]
