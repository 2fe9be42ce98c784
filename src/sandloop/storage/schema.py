"""Arrow schemas of the Akashic tables: the contract notebooks and users read directly.

Documented column by column in the README; change them only with a migration.
"""

from __future__ import annotations

import pyarrow as pa

_TS = pa.timestamp("us", tz="UTC")

INVOCATIONS = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("parent_key", pa.string()),
        pa.field("realm", pa.string(), nullable=False),
        pa.field("thread", pa.string(), nullable=False),
        pa.field("step", pa.int64(), nullable=False),
        pa.field("step_key", pa.string(), nullable=False),
        pa.field("facet", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("input", pa.string()),
        pa.field("input_type", pa.string()),
        pa.field("output", pa.string()),
        pa.field("output_type", pa.string()),
        pa.field("params", pa.string()),
        pa.field("seed", pa.int64()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("error_type", pa.string()),
        pa.field("started_at", _TS),
        pa.field("finished_at", _TS),
        pa.field("latency_ms", pa.float64()),
        pa.field("flow_run_id", pa.string()),
        pa.field("task_run_id", pa.string()),
        pa.field("metadata", pa.string()),
    ]
)

RUNS = pa.schema(
    [
        pa.field("thread", pa.string(), nullable=False),
        pa.field("realm", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("spec", pa.string(), nullable=False),
        pa.field("genesis", pa.string()),
        pa.field("seed", pa.int64()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("stop_reason", pa.string()),
        pa.field("loop_length", pa.int64()),
        pa.field("steps", pa.int64(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("created_at", _TS),
        pa.field("updated_at", _TS),
        pa.field("flow_run_id", pa.string()),
        # Added after 0.1 stores existed: migrated in as all-null columns (see AkashicStore).
        pa.field("session", pa.string()),
        pa.field("phase", pa.string()),
        # A paced run that handed its wait to a scheduled flow run: when, and which.
        pa.field("next_due_at", _TS),
        pa.field("continuation", pa.string()),
        # Who made it over HTTP (a token's user): a chat is theirs alone. None: made here.
        pa.field("owner", pa.string()),
    ]
)

# One row per dialogue turn, as its actor said it. The model calls behind the turns (and the
# judge's) are in `invocations` under the same thread.
MESSAGES = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),  # the turn's invocation key
        pa.field("thread", pa.string(), nullable=False),
        pa.field("realm", pa.string(), nullable=False),
        pa.field("turn", pa.int64(), nullable=False),
        pa.field("actor", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("content", pa.string()),
        pa.field("temperature", pa.float64()),
        pa.field("verdict", pa.string()),  # the judge's JSON verdict after this turn, if any
        pa.field("created_at", _TS),
    ]
)

SESSIONS = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("tags", pa.string()),  # JSON list
        pa.field("metadata", pa.string()),  # JSON object
        pa.field("status", pa.string(), nullable=False),  # open | ended
        pa.field("started_at", _TS),
        pa.field("ended_at", _TS),
    ]
)

# Which runs the public gallery shows: those visitors started, and those a person published.
# A table of its own, so that publishing never races a running writer's rewrite of its row.
PUBLISHED = pa.schema(
    [
        pa.field("thread", pa.string(), nullable=False),
        pa.field("public", pa.bool_(), nullable=False),
        pa.field("updated_at", _TS),
    ]
)

# A snapshot: a selection of runs and the table versions it was taken at (tagged, so compaction
# keeps them readable).
SNAPSHOTS = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("created_at", _TS),
        pa.field("selection", pa.string(), nullable=False),  # JSON
        pa.field("versions", pa.string(), nullable=False),  # JSON {table: version}
        pa.field("threads", pa.int64()),
    ]
)

EMBEDDINGS = pa.schema(
    [
        # id = H(embedding_model, key): one vector per invocation and embedding model.
        pa.field("id", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("embedding_model", pa.string(), nullable=False),
        pa.field("dim", pa.int32(), nullable=False),
        # A variable-length list: one table holds vectors of every embedding model's size.
        pa.field("vector", pa.list_(pa.float32()), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        # Copies of the invocation's address, so indexes filter without a join.
        pa.field("realm", pa.string()),
        pa.field("thread", pa.string()),
        pa.field("model", pa.string()),
        pa.field("step", pa.int64()),
        pa.field("created_at", _TS),
    ]
)

# A sweep: its spec (which expands to its threads, each an ordinary network run in `runs`) and
# where it stands.
SWEEPS = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("realm", pa.string(), nullable=False),
        pa.field("spec", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("threads", pa.int64(), nullable=False),
        pa.field("threads_done", pa.int64(), nullable=False),
        pa.field("steps", pa.int64(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("created_at", _TS),
        pa.field("updated_at", _TS),
        pa.field("flow_run_id", pa.string()),
    ]
)

# Judgements of recorded outputs: a person's rating (1-5) or pairwise preference, a judge
# recipe's verdict, a critic's score from a refine round. id = H(kind, what was judged, by whom),
# so judging the same thing again replaces the earlier judgement.
SCORES = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # rating | preference | judge | critic
        pa.field("key", pa.string(), nullable=False),  # the invocation judged (or preferred)
        pa.field("other_key", pa.string()),  # a preference's non-preferred invocation
        pa.field("thread", pa.string(), nullable=False),
        pa.field("step", pa.int64(), nullable=False),
        pa.field("score", pa.float64()),  # 1-5 for every kind; none for a preference
        pa.field("by", pa.string(), nullable=False),  # user:NAME, judge:RECIPE@V, critic:MODEL
        pa.field("note", pa.string()),
        pa.field("judge_key", pa.string()),  # a judge's or critic's invocation: its verdict
        pa.field("created_at", _TS),
    ]
)

# API tokens: only a hash of each is kept (id = SHA-256 of the token), never the token itself.
TOKENS = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("scope", pa.string(), nullable=False),  # read | run | admin
        pa.field("user", pa.string(), nullable=False),
        pa.field("created_at", _TS),
        pa.field("revoked_at", _TS),
        # Added later: migrated in as an all-null column (a token made before never expires).
        pa.field("expires_at", _TS),
    ]
)

# Work done outside Prefect (people labelling, external hosts): a task and its subtasks, one
# per invocation key, claimed under expiring leases. id = H(kind, name, keys) for a task and
# H(task, key) for a subtask, so posting the same task twice names the same queue.
WORK_TASKS = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # rate | label
        pa.field("instructions", pa.string()),
        pa.field("subtasks", pa.int64(), nullable=False),
        pa.field("created_by", pa.string(), nullable=False),
        pa.field("created_at", _TS),
    ]
)

SUBTASKS = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),  # the invocation to work on
        pa.field("position", pa.int64(), nullable=False),  # the order subtasks are handed out
        pa.field("thread", pa.string(), nullable=False),
        pa.field("step", pa.int64(), nullable=False),
        pa.field("state", pa.string(), nullable=False),  # open | leased | done
        pa.field("worker", pa.string()),
        pa.field("lease", pa.string()),  # SHA-256 of the lease token, never the token
        pa.field("lease_expires", _TS),
        pa.field("attempts", pa.int64(), nullable=False),  # times it was leased
        pa.field("result", pa.string()),  # JSON
        pa.field("score_id", pa.string()),  # the scores row a rating became
        pa.field("done_at", _TS),
    ]
)

TABLES: dict[str, tuple[pa.Schema, str]] = {
    "invocations": (INVOCATIONS, "key"),
    "runs": (RUNS, "thread"),
    "embeddings": (EMBEDDINGS, "id"),
    "messages": (MESSAGES, "key"),
    "sessions": (SESSIONS, "id"),
    "published": (PUBLISHED, "thread"),
    "snapshots": (SNAPSHOTS, "name"),
    "sweeps": (SWEEPS, "name"),
    "scores": (SCORES, "id"),
    "tokens": (TOKENS, "id"),
    "tasks": (WORK_TASKS, "id"),
    "subtasks": (SUBTASKS, "id"),
}

TIMESTAMP_COLUMNS = frozenset(
    f.name for schema, _ in TABLES.values() for f in schema if f.type == _TS
)
