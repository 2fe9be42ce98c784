"""Scores and preferences as records: what a person, a judge recipe or a recipe's critic
thought of a recorded output, and which outputs a score-filtered snapshot keeps.

A judgement's id is a hash of what was judged and by whom, so a second rating of the same step
by the same person replaces the first, preferring B over A replaces preferring A over B, and a
judge re-run over the same snapshot rewrites its verdicts instead of adding to them.

Every score is on one scale, 1 to 5, so a mean over sources means something: a critic's 0-10
(the default critic's scale) is mapped onto it, and a judge's verdict must already be on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sandloop.errors import SandloopError
from sandloop.hashing import hash_value

SCORE_RANGE = (1, 5)
CRITIC_RANGE = (0, 10)  # what the default critic template asks for
SOURCES = ("user", "judge", "critic")


class ScoreError(SandloopError):
    """A score out of range, a step that cannot be judged, or a pair that is not a pair."""


def user_id(by: str | None) -> str:
    name = (by or "default").strip()
    if not name or any(c.isspace() for c in name) or len(name) > 100:
        raise ScoreError(f"--by {by!r}: a user name is one word of at most 100 characters")
    return f"user:{name}"


def source_id(by: str) -> str:
    """A ``--rated-by`` value as the ``by`` it matches: ``judge:…`` and ``critic:…`` as
    given, anything else a user's name."""
    kind, colon, name = by.partition(":")
    if colon and kind in SOURCES and name:
        return by
    return user_id(by)


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
    _judgeable(step, ref)
    return rating_of(step, score, by, note)


def rating_of(
    step: dict[str, Any], score: float, by: str | None, note: str | None
) -> dict[str, Any]:
    """The rating of a step already known to have an output (``key``, ``thread``, ``step``)."""
    check_score(score)
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
        "judge_key": None,
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
        "judge_key": None,
    }


def verdict_row(judged: Judged, score: Any, by: str, reason: Any, judge_key: str) -> dict[str, Any]:
    """A judge recipe's verdict on one output, with the judge's own invocation key."""
    low, high = SCORE_RANGE
    if isinstance(score, bool) or not isinstance(score, int | float) or not low <= score <= high:
        raise ScoreError(f"the judge's score {score!r} is not a number from {low} to {high}")
    return {
        "id": hash_value({"kind": "judge", "key": judged.key, "by": by}),
        "kind": "judge",
        "key": judged.key,
        "other_key": None,
        "thread": judged.thread,
        "step": judged.step,
        "score": float(score),
        "by": by,
        "note": None if reason is None else str(reason)[:2000],
        "created_at": datetime.now(UTC),
        "judge_key": judge_key,
    }


def judged_preference_row(
    chosen: Judged, rejected: Judged, by: str, reason: Any, judge_key: str
) -> dict[str, Any]:
    """A judge's comparison: ``chosen`` beat ``rejected`` (keyed as a person's preference is,
    so judging the pair again, either way round, replaces it)."""
    pair = sorted((chosen.key, rejected.key))
    return {
        "id": hash_value({"kind": "preference", "pair": pair, "by": by}),
        "kind": "preference",
        "key": chosen.key,
        "other_key": rejected.key,
        "thread": chosen.thread,
        "step": chosen.step,
        "score": None,
        "by": by,
        "note": None if reason is None else str(reason)[:2000],
        "created_at": datetime.now(UTC),
        "judge_key": judge_key,
    }


def critic_row(
    answer: dict[str, Any], critique: dict[str, Any], score: float | None, critic: str
) -> dict[str, Any] | None:
    """A refine round's critic score of the answer it critiqued, mapped from the critic's
    0-10 onto 1-5; None when the critic gave no score on its scale."""
    low, high = CRITIC_RANGE
    if score is None or not low <= score <= high:
        return None
    least, most = SCORE_RANGE
    by = f"critic:{critic}"
    return {
        "id": hash_value({"kind": "critic", "key": answer["key"], "by": by}),
        "kind": "critic",
        "key": answer["key"],
        "other_key": None,
        "thread": answer["thread"],
        "step": int(answer["step"]),
        "score": least + (most - least) * (score - low) / (high - low),
        "by": by,
        "note": f"{score:g}/{high}",
        "created_at": datetime.now(UTC),
        "judge_key": critique["key"],
    }


@dataclass(frozen=True, slots=True)
class Judged:
    """The recorded output a verdict is about."""

    key: str
    thread: str
    step: int


Scores: TypeAlias = pd.DataFrame | pa.Table  # the store's frames, or a pinned Arrow read


def _arrow(scores: Scores, columns: list[str]) -> pa.Table:
    if isinstance(scores, pa.Table):
        return scores.select(columns)
    return pa.Table.from_pandas(scores[columns], preserve_index=False)


#: The score columns a score filter reads.
FILTER_COLUMNS = ["key", "thread", "score", "by"]


@dataclass(frozen=True)
class Passing:
    """What a score filter keeps: the invocation keys, and the threads they belong to."""

    keys: pa.Array
    threads: set[str]


def passing(scores: Scores, min_score: float | None, rated_by: str | None) -> Passing:
    """The invocations a score-filtered selection keeps: scored (by ``rated_by`` when given: a
    user, ``judge:RECIPE@VERSION`` or ``critic:MODEL``), and with a mean score of at least
    ``min_score`` when given. Arrow throughout (a store can hold a rating per step), in one
    grouping by (key, thread), a key having one thread, on one core: Acero's threads each
    grow a hash table of their own, which cost 110 MiB more at a million scores and was
    slower."""
    table = _arrow(scores, FILTER_COLUMNS)
    table = table.filter(pc.is_valid(table["score"]))
    if rated_by is not None:
        table = table.filter(pc.equal(table["by"], source_id(rated_by)))
    means = table.group_by(["key", "thread"], use_threads=False).aggregate([("score", "mean")])
    if min_score is not None:
        means = means.filter(pc.greater_equal(means["score_mean"], min_score))
    keys = means["key"].combine_chunks().cast(pa.string())
    return Passing(keys, set(pc.unique(means["thread"]).to_pylist()))


def preference_pairs(scores: Scores) -> dict[str, list[tuple[str, str]]]:
    """Preferred invocation key → its (non-preferred key, who said so) pairs, by id."""
    table = _arrow(scores, ["id", "kind", "key", "other_key", "by"])
    chosen = table.filter(pc.equal(table["kind"], "preference")).sort_by("id")
    pairs: dict[str, list[tuple[str, str]]] = {}
    columns = [chosen[c].to_pylist() for c in ("key", "other_key", "by")]
    for key, other, by in zip(*columns, strict=True):
        pairs.setdefault(str(key), []).append((str(other), str(by)))
    return pairs
