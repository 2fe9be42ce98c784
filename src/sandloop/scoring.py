"""Scores and preferences as records: what a person (or a judge) thought of a recorded output,
and which outputs a score-filtered snapshot keeps.

A judgement's id is a hash of what was judged and by whom, so a second rating of the same step
by the same person replaces the first, and preferring B over A replaces preferring A over B.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from sandloop.errors import SandloopError
from sandloop.keys import hash_value

SCORE_RANGE = (1, 5)


class ScoreError(SandloopError):
    """A score out of range, a step that cannot be judged, or a pair that is not a pair."""


def user_id(by: str | None) -> str:
    name = (by or "default").strip()
    if not name or any(c.isspace() for c in name) or len(name) > 100:
        raise ScoreError(f"--by {by!r}: a user name is one word of at most 100 characters")
    return f"user:{name}"


def _judgeable(step: dict[str, Any], ref: str) -> None:
    if step["status"] != "ok" or step.get("output") in (None, ""):
        raise ScoreError(f"{ref}: that step has no output to judge (status {step['status']})")


def check_score(score: float) -> float:
    low, high = SCORE_RANGE
    if not low <= score <= high:
        raise ScoreError(f"--score {score:g}: scores run from {low} to {high}")
    return score


def rating_row(
    step: dict[str, Any], score: float, by: str | None, note: str | None, ref: str
) -> dict[str, Any]:
    check_score(score)
    _judgeable(step, ref)
    who = user_id(by)
    return {
        "id": hash_value({"kind": "rating", "key": step["key"], "by": who}),
        "kind": "rating",
        "key": step["key"],
        "other_key": None,
        "thread": step["thread"],
        "step": int(step["step"]),
        "score": float(score),
        "by": who,
        "note": note,
        "created_at": datetime.now(UTC),
    }


def preference_row(
    chosen: dict[str, Any],
    rejected: dict[str, Any],
    by: str | None,
    note: str | None,
    refs: tuple[str, str],
) -> dict[str, Any]:
    """A pair teaches a preference only when both sides answer the same input."""
    if chosen["key"] == rejected["key"]:
        raise ScoreError("prefer takes two different steps")
    for step, ref in zip((chosen, rejected), refs, strict=True):
        _judgeable(step, ref)
    if (chosen["input"], chosen["input_type"]) != (rejected["input"], rejected["input_type"]):
        raise ScoreError(
            f"{refs[0]} and {refs[1]} answer different inputs; a preference pair needs the same "
            "prompt on both sides (for example the same step of two seeds)"
        )
    if chosen["output_type"] != "text" or rejected["output_type"] != "text":
        raise ScoreError("prefer compares text outputs")
    who = user_id(by)
    pair = sorted((chosen["key"], rejected["key"]))
    return {
        "id": hash_value({"kind": "preference", "pair": pair, "by": who}),
        "kind": "preference",
        "key": chosen["key"],
        "other_key": rejected["key"],
        "thread": chosen["thread"],
        "step": int(chosen["step"]),
        "score": None,
        "by": who,
        "note": note,
        "created_at": datetime.now(UTC),
    }


def passing_keys(scores: pd.DataFrame, min_score: float | None, rated_by: str | None) -> set[str]:
    """The invocations a score-filtered selection keeps: rated (by ``rated_by`` when given),
    and with a mean score of at least ``min_score`` when given."""
    judged = scores[scores["score"].notna()]
    if rated_by is not None:
        judged = judged[judged["by"] == user_id(rated_by)]
    if judged.empty:
        return set()
    means = judged.groupby("key")["score"].mean()
    if min_score is not None:
        means = means[means >= min_score]
    return set(means.index.astype(str))


def preference_pairs(scores: pd.DataFrame) -> dict[str, list[tuple[str, str]]]:
    """Preferred invocation key → its (non-preferred key, who said so) pairs."""
    pairs: dict[str, list[tuple[str, str]]] = {}
    chosen = scores[scores["kind"] == "preference"].sort_values("id")
    for key, other, by in zip(chosen["key"], chosen["other_key"], chosen["by"], strict=True):
        pairs.setdefault(str(key), []).append((str(other), str(by)))
    return pairs


def threads_of(keys: Iterable[str], scores: pd.DataFrame) -> set[str]:
    wanted = set(keys)
    return set(scores.loc[scores["key"].isin(wanted), "thread"].astype(str))
