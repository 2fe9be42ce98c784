"""A queue of work done outside Prefect: people rating steps, external hosts captioning images.

A task is a list of recorded steps (its subtasks, one per invocation key). A worker takes a few
under a lease: a random token, of which the store keeps only a hash, and an expiry. The result
of a subtask is accepted only with the token of the lease that holds it, so once an expired
lease has been taken by another worker, the first worker's late answer is refused (a conflict)
and every subtask is done exactly once. A lease that expired but that nobody took since is
still its holder's: its late answer is accepted, and saves the work.

Claims are read-modify-writes of the ``subtasks`` table, so they are serialized: by a lock in
the process, and by a lock file in the home's folder across processes on one machine. On
object storage, serve a home's queue from one `sandloop api` at a time.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from sandloop.errors import SandloopError
from sandloop.hashing import hash_value
from sandloop.locks import FileLock
from sandloop.scoring import ScoreError, check_score, rating_of, user_id
from sandloop.storage.store import AkashicStore, NotFound, sql_str

KINDS = ("rate", "label")
"""``rate``: a 1-5 score (and a note) per step, recorded in the ``scores`` table as that
worker's rating. ``label``: any JSON object, kept as the subtask's result."""

MAX_SUBTASKS = 10_000
MAX_TAKE = 100
MAX_LEASE_S = 3600.0
TOKEN_PREFIX = "lt_"


class QueueError(SandloopError, ValueError):
    """A task that cannot be made, or a result that does not fit its task."""


class StaleLease(SandloopError):
    """A lease token that no longer holds the subtask: it expired and another worker took it,
    or the subtask is done."""


@dataclass(frozen=True, slots=True)
class Lease:
    token: str
    expires_at: datetime
    subtasks: list[dict[str, Any]]


def lease_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def task_id(kind: str, name: str, keys: Sequence[str]) -> str:
    return hash_value({"table": "tasks", "kind": kind, "name": name, "keys": list(keys)})[:16]


def subtask_id(task: str, key: str) -> str:
    return hash_value({"table": "subtasks", "task": task, "key": key})


def _now() -> datetime:
    return datetime.now(UTC)


class WorkQueue:
    """The tasks of one store. ``clock`` is injectable so that tests can expire a lease
    without sleeping."""

    def __init__(self, store: AkashicStore, clock: Callable[[], datetime] = _now) -> None:
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        self._tasks: dict[str, dict[str, Any]] = {}

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._lock:
            folder = Path(self.store.cache)
            folder.mkdir(parents=True, exist_ok=True)
            with FileLock(folder / "_queue.lock"):
                yield

    # -- tasks --------------------------------------------------------------------------------

    def create(
        self,
        name: str,
        kind: str,
        keys: Sequence[str],
        *,
        instructions: str | None = None,
        by: str = "default",
    ) -> tuple[dict[str, Any], bool]:
        """The task over ``keys`` (invocation keys, in the order to hand them out), and whether
        it is new: the same name, kind and keys name the same task, which is returned as it is."""
        if kind not in KINDS:
            raise QueueError(f"kind: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
        unique = list(dict.fromkeys(keys))
        if not unique:
            raise QueueError("keys: a task needs at least one step")
        if len(unique) > MAX_SUBTASKS:
            raise QueueError(f"keys: at most {MAX_SUBTASKS} steps per task, not {len(unique)}")
        ident = task_id(kind, name, unique)
        with self._exclusive():
            existing = self.store.rows("tasks", f"id = {sql_str(ident)}")
            if existing:
                return existing[0], False
            steps = self._steps(unique)
            if kind == "rate":
                self._check_rateable(steps)
            now = self.clock()
            self.store.upsert(
                "subtasks",
                [
                    {
                        "id": subtask_id(ident, key),
                        "task": ident,
                        "key": key,
                        "position": position,
                        "thread": steps[key]["thread"],
                        "step": int(steps[key]["step"]),
                        "state": "open",
                        "worker": None,
                        "lease": None,
                        "lease_expires": None,
                        "attempts": 0,
                        "result": None,
                        "score_id": None,
                        "done_at": None,
                    }
                    for position, key in enumerate(unique)
                ],
            )
            row = {
                "id": ident,
                "name": name,
                "kind": kind,
                "instructions": instructions,
                "subtasks": len(unique),
                "created_by": by,
                "created_at": now,
            }
            self.store.upsert("tasks", [row])  # last: a task row means its subtasks are there
        return row, True

    def _steps(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            where = "key IN (" + ", ".join(sql_str(k) for k in chunk) + ")"
            frame = self.store.select(
                "invocations", where, ["key", "thread", "step", "status", "output"]
            )
            found |= {str(r["key"]): r for r in frame.to_dict(orient="records")}
        missing = [k for k in keys if k not in found]
        if missing:
            raise QueueError(
                f"keys: {len(missing)} of {len(keys)} are not recorded steps "
                f"(the first: {missing[0][:40]!r})"
            )
        return found

    def keys_of(self, threads: Sequence[str]) -> list[str]:
        """The keys of every step with an output of the threads (ids or prefixes), in order."""
        keys: list[str] = []
        for prefix in threads:
            run = self.store.find_run(prefix)
            frame = self.store.steps(str(run["thread"]))
            usable = frame[(frame["status"] == "ok") & frame["output"].fillna("").ne("")]
            keys.extend(usable.sort_values("step")["key"].astype(str))
        return keys

    def work_items(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """What leased subtasks are about: each step's model, input and output."""
        fields = ["key", "thread", "step", "model", "input", "input_type", "output", "output_type"]
        keys = [str(r["key"]) for r in rows]
        where = "key IN (" + ", ".join(sql_str(k) for k in keys) + ")"
        found = {
            str(r["key"]): r
            for r in self.store.select("invocations", where, fields).to_dict(orient="records")
        }
        return [{**found[k], "id": k} for k in keys]

    @staticmethod
    def _check_rateable(steps: dict[str, dict[str, Any]]) -> None:
        bad = [k for k, s in steps.items() if s["status"] != "ok" or s["output"] in (None, "")]
        if bad:
            raise QueueError(f"keys: {len(bad)} steps have no output to rate (the first: {bad[0]})")

    def task(self, ident: str) -> dict[str, Any]:
        """A task's row with its subtasks counted by state (a lapsed lease counts as open)."""
        return {**self._task(ident), **self._counts(ident)}

    def _task(self, ident: str) -> dict[str, Any]:
        """A task's row: read once, as a task never changes (its subtasks do)."""
        if ident not in self._tasks:
            rows = self.store.rows("tasks", f"id = {sql_str(ident)}")
            if not rows:
                raise NotFound(f"no task {ident}; GET /v1/tasks lists them")
            self._tasks[ident] = rows[0]
        return dict(self._tasks[ident])

    def tasks(self) -> list[dict[str, Any]]:
        frame = self.store.select("tasks")
        rows = frame.sort_values("created_at", ascending=False).to_dict(orient="records")
        return [{**row, **self._counts(str(row["id"]))} for row in rows]

    def _counts(self, ident: str) -> dict[str, int]:
        frame = self.store.select(
            "subtasks", f"task = {sql_str(ident)}", ["state", "lease_expires"]
        )
        now = self.clock()
        leased = int(
            sum(
                1
                for state, expires in zip(frame["state"], frame["lease_expires"], strict=True)
                if state == "leased" and expires > now
            )
        )
        done = int((frame["state"] == "done").sum())
        return {"done": done, "leased": leased, "open": len(frame) - done - leased}

    def subtasks(
        self, ident: str, state: str | None = None, after: int = -1, limit: int = 100
    ) -> list[dict[str, Any]]:
        """A page of a task's subtasks in hand-out order, from a position cursor."""
        self._task(ident)
        where = f"task = {sql_str(ident)} AND position > {int(after)}"
        if state is not None:
            where += f" AND state = {sql_str(state)}"
        rows = self.store.rows("subtasks", where)
        return sorted(rows, key=lambda r: int(r["position"]))[:limit]

    # -- leases -------------------------------------------------------------------------------

    def take(self, ident: str, worker: str, most: int, lease_s: float) -> Lease | None:
        """Up to ``most`` subtasks that nobody holds (open, or leased with the lease lapsed),
        under one new lease; None when there are none."""
        user_id(worker)
        _check_take(most, lease_s)
        self._task(ident)
        with self._exclusive():
            now = self.clock()
            rows = self.store.rows("subtasks", f"task = {sql_str(ident)} AND state != 'done'")
            free = [r for r in rows if r["state"] == "open" or r["lease_expires"] <= now]
            free.sort(key=lambda r: int(r["position"]))
            if not free:
                return None
            token = TOKEN_PREFIX + secrets.token_urlsafe(24)
            expires = now + timedelta(seconds=lease_s)
            taken = [
                {
                    **row,
                    "state": "leased",
                    "worker": worker,
                    "lease": lease_hash(token),
                    "lease_expires": expires,
                    "attempts": int(row["attempts"]) + 1,
                }
                for row in free[:most]
            ]
            self.store.upsert("subtasks", taken)
        return Lease(token, expires, taken)

    def renew(self, ident: str, token: str, lease_s: float) -> Lease:
        """Extend a lease over the subtasks it still holds (even lapsed, if nobody took them)."""
        _check_take(1, lease_s)
        self._task(ident)
        with self._exclusive():
            held = self._held(ident, token)
            if not held:
                raise StaleLease(
                    "this lease holds no subtask of the task any more: they were taken by "
                    "another worker after it lapsed, or are done"
                )
            expires = self.clock() + timedelta(seconds=lease_s)
            renewed = [{**row, "lease_expires": expires} for row in held]
            self.store.upsert("subtasks", renewed)
        return Lease(token, expires, renewed)

    def _held(self, ident: str, token: str) -> list[dict[str, Any]]:
        where = (
            f"task = {sql_str(ident)} AND state = 'leased' AND lease = {sql_str(lease_hash(token))}"
        )
        return sorted(self.store.rows("subtasks", where), key=lambda r: int(r["position"]))

    def complete(self, ident: str, key: str, token: str, result: dict[str, Any]) -> dict[str, Any]:
        """Record a subtask's result, under the lease that holds it. The same answer sent again
        with the same token (a client retrying a lost response) returns the done subtask."""
        task = self._task(ident)
        with self._exclusive():
            rows = self.store.rows("subtasks", f"id = {sql_str(subtask_id(ident, key))}")
            if not rows:
                raise NotFound(f"task {ident} has no subtask {key}")
            row = rows[0]
            mine = row["lease"] == lease_hash(token)
            if row["state"] == "done":
                if mine:
                    return row
                raise StaleLease(f"subtask {key} is done already, under another lease")
            if not mine:
                raise StaleLease(
                    f"this lease does not hold subtask {key}: it lapsed and another worker "
                    "took it (take again for more)"
                    if row["state"] == "leased"
                    else f"subtask {key} is not leased; take it first"
                )
            done = {**row, **self._land(task, row, result), "state": "done"}
            done["done_at"] = self.clock()
            self.store.upsert("subtasks", [done])
        return done

    def _land(
        self, task: dict[str, Any], row: dict[str, Any], result: dict[str, Any]
    ) -> dict[str, Any]:
        """Where a result lands: a rating in the scores table, a label on the subtask."""
        text = orjson.dumps(result, option=orjson.OPT_SORT_KEYS).decode()
        if len(text) > 100_000:
            raise QueueError("result: at most 100,000 characters of JSON")
        if task["kind"] != "rate":
            return {"result": text, "score_id": None}
        score, note = result.get("score"), result.get("note")
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise QueueError("result.score: a rating result is {score: 1-5, note?: text}")
        if note is not None and not isinstance(note, str):
            raise QueueError("result.note: a note is text")
        if set(result) - {"score", "note"}:
            raise QueueError("result: a rating result has only score and note")
        try:
            check_score(float(score))
        except ScoreError:
            raise QueueError(f"result.score: {score} is outside 1-5") from None
        rating = rating_of(row, float(score), str(row["worker"]), note)  # rateable: see create
        self.store.upsert("scores", [rating])
        return {"result": text, "score_id": rating["id"]}


def _check_take(most: int, lease_s: float) -> None:
    if not 1 <= most <= MAX_TAKE:
        raise QueueError(f"max: take 1 to {MAX_TAKE} subtasks at a time, not {most}")
    if not 1 <= lease_s <= MAX_LEASE_S:
        raise QueueError(f"lease_s: a lease lasts 1 to {MAX_LEASE_S:g} seconds, not {lease_s:g}")
