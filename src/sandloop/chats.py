"""Chats: a person talking with one actor (a model, a route or a recipe, under a system role),
recorded as a dialogue whose other speaker is the person.

A chat is an ordinary dialogue thread: its spec names the person (``human``), the person's
messages are turns recorded like the actor's (an `invocations` row of model ``human`` and a
`messages` row), and each reply is one turn of the dialogue flow, which then waits for the
person (status ``waiting``, stop reason ``your_turn``). So a chat resumes, shows and exports as
any dialogue does, with the person's words as the user side of each example.

Deleting a message deletes it and everything after it (their invocations, messages and
embeddings rows): the conversation goes on from before it, as if it had not been said. Like any
LanceDB delete, it leaves the rows in the table's older versions until compaction cleans them
(and a snapshot taken before keeps them pinned).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import pandas as pd

from sandloop.errors import SandloopError
from sandloop.loops.dialogue.spec import DialogueSpec
from sandloop.loops.spec_check import validated
from sandloop.loops.spec_files import SpecError
from sandloop.loops.status import RunStatus, StopReason
from sandloop.models.registry import Catalog
from sandloop.records import CallAddress, dumps
from sandloop.registration import get_record, put_record, register_dialogue
from sandloop.storage.store import AkashicStore, AmbiguousPrefix, NotFound, sql_str

PERSON = "user"
ACTOR = "assistant"
MAX_MESSAGE = 100_000


class ChatError(SandloopError):
    """A message a chat cannot take: it has ended, or its last message is still unanswered."""


class ReplyFailed(SandloopError):
    """The actor gave no reply (its model failed past its retries); the message is kept, and
    sending it again asks again."""


def chat_spec(
    model: str,
    system: str = "",
    *,
    title: str | None = None,
    temperature: float = 0.7,
    params: dict[str, Any] | None = None,
    catalog: Catalog,
) -> DialogueSpec:
    """The dialogue a chat is: one actor, the person, no question, no turn limit to speak of."""
    data = {
        "name": title or "chat",
        "actors": [{"name": ACTOR, "role": system, "model": model, "params": params or {}}],
        "human": PERSON,
        "temperature": {"start": temperature, "step": 0, "max": temperature},
        "stop": {"max_turns": 10_000, "sentinel": None, "stop_on_repeat": False},
    }
    try:
        return validated(data, DialogueSpec, "chat", catalog)
    except SpecError as exc:  # name the request's fields, not the spec's ("actors.0")
        problem = str(exc).removeprefix("chat: ").removeprefix("actors.0: ")
        problem = problem.replace("actors.0.", "")
        if not problem.startswith(("params", "role", "temperature", "name")):
            problem = f"model: {problem}"
        raise SpecError(problem) from None


def start(
    store: AkashicStore, spec: DialogueSpec, session: str | None = None, owner: str | None = None
) -> str:
    """A new chat's thread. Its seed is drawn here and recorded: two chats with the same actor
    are two threads, and each one's sampling is reproducible from its record. ``owner``: the
    user whose token made it over HTTP, to whom alone it belongs there."""
    return register_dialogue(store, spec, secrets.randbelow(2**31), session, owner)


def chat_of(store: AkashicStore, prefix: str, user: str | None = None) -> dict[str, Any]:
    """A chat's runs row, by thread or prefix (a dialogue that is not a chat is NotFound
    here). With ``user`` (a token's user over HTTP), only that user's chats are looked in: the
    answer for another's chat, a run that is no chat and no run at all is the same."""
    if user is None:
        run = store.find_run(prefix)
        if not is_chat(run):
            raise NotFound(f"{prefix} is not a chat; GET /v1/chat lists them")
        return run
    rows = store.runs_by_prefix(prefix)
    if rows is None:
        raise NotFound(f"no chat {prefix[:40]!r}; GET /v1/chat lists yours")
    mine = [row for row in rows if row.get("owner") == user and is_chat(row)]
    if not mine:
        raise NotFound(f"no chat {prefix}; GET /v1/chat lists yours")
    if len(mine) > 1:
        raise AmbiguousPrefix(f"{len(mine)} of your chats start with {prefix!r}; give more")
    return mine[0]


def is_chat(run: Mapping[str, Any]) -> bool:
    """A dialogue with a person in it. Read from the recorded spec as it is: telling a chat
    apart needs no models resolved, so one whose model has left the catalog is still listed."""
    if run.get("kind") != "dialogue" or run.get("spec") is None:
        return False  # not a dialogue, or one announced and not yet recorded
    spec = orjson.loads(str(run["spec"]))
    return isinstance(spec, dict) and spec.get("human") is not None


def turns(store: AkashicStore, thread: str) -> pd.DataFrame:
    return (
        store.select("messages", f"thread = {sql_str(thread)}")
        .sort_values("turn")
        .reset_index(drop=True)
    )


def say(store: AkashicStore, prefix: str, content: str, user: str | None = None) -> dict[str, Any]:
    """Record the person's message as the chat's next turn (the flow then replies to it). The
    same message sent again while the last is unanswered (a reply that failed) is not recorded
    twice: its turn is returned, to be answered again."""
    if not content.strip() or len(content) > MAX_MESSAGE:
        raise ChatError(f"content: a message is 1 to {MAX_MESSAGE:,} characters")
    run = chat_of(store, prefix, user)
    thread, realm = str(run["thread"]), str(run["realm"])
    if run["status"] == RunStatus.COMPLETED:
        raise ChatError(f"chat {thread[:12]} has ended; start another")
    log = store.open_thread(thread)  # ThreadLocked while a reply is being written
    try:
        said = turns(store, thread)
        if not said.empty and said["actor"].iloc[-1] == PERSON:
            last: dict[str, Any] = said.iloc[-1].to_dict()
            if last["content"] == content:
                return last
            raise ChatError(
                f"message {last['turn']} has no reply yet (the model failed): send it again, "
                "or delete it first"
            )
        turn = 0 if said.empty else int(said["turn"].iloc[-1]) + 1
        now = datetime.now(UTC)
        address = CallAddress("dialogue", realm, thread, turn, PERSON, "human")
        key = address.key(content, {})
        log.append(_person_row(address, key, content, now, run))
        store.flush(log)
        message = {
            "key": key,
            "thread": thread,
            "realm": realm,
            "turn": turn,
            "actor": PERSON,
            "model": "human",
            "content": content,
            "temperature": None,
            "verdict": None,
            "created_at": now,
        }
        store.upsert("messages", [message])
    finally:
        log.close()
    return message


def _person_row(
    address: CallAddress, key: str, content: str, now: datetime, run: dict[str, Any]
) -> dict[str, Any]:
    return {
        "key": key,
        "parent_key": None,
        "realm": address.realm,
        "thread": address.thread,
        "step": address.step,
        "step_key": address.step_key,
        "facet": PERSON,
        "kind": "dialogue",
        "model": "human",
        "input": "",
        "input_type": "text",
        "output": content,
        "output_type": "text",
        "params": "{}",
        "seed": None,
        "status": "ok",
        "error": None,
        "error_type": None,
        "started_at": now,
        "finished_at": now,
        "latency_ms": 0.0,
        "flow_run_id": None,
        "task_run_id": None,
        "metadata": dumps({"actor": PERSON, "temperature": None, "turn": address.step}),
    }


def end(store: AkashicStore, prefix: str, user: str | None = None) -> dict[str, Any]:
    """End a chat: it keeps its record (and exports), and takes no more messages."""
    run = chat_of(store, prefix, user)
    record = get_record(store, str(run["thread"]))
    assert record is not None
    ended = record.but(status=RunStatus.COMPLETED.value, stop_reason=StopReason.ENDED.value)
    put_record(store, ended)
    return {**run, "status": ended.status, "stop_reason": ended.stop_reason}


def forget_from(store: AkashicStore, prefix: str, turn: int, user: str | None = None) -> int:
    """Delete message ``turn`` and every later one (their invocations and messages rows);
    returns how many turns went. The chat goes on from before it."""
    run = chat_of(store, prefix, user)
    thread = str(run["thread"])
    log = store.open_thread(thread)
    try:
        said = turns(store, thread)
        if turn not in set(said["turn"].astype(int)):
            raise NotFound(f"chat {thread[:12]} has no message {turn}")
        where = f"thread = {sql_str(thread)} AND "
        store.table("invocations").delete(where + f"step >= {int(turn)}")
        store.table("messages").delete(where + f"turn >= {int(turn)}")
        if store.has_table("embeddings"):
            store.table("embeddings").delete(where + f"step >= {int(turn)}")
        record = get_record(store, thread)
        assert record is not None
        put_record(
            store,
            record.but(
                steps=int(turn),
                status=RunStatus.WAITING.value,
                stop_reason=StopReason.YOUR_TURN.value,
            ),
        )
    finally:
        log.close()
    return int((said["turn"] >= turn).sum())


def listing(store: AkashicStore, user: str | None = None) -> list[dict[str, Any]]:
    """Chats, newest first, with how many messages each holds; with ``user``, theirs only."""
    runs = store.runs()
    if runs.empty:
        return []
    dialogues = runs[runs["kind"] == "dialogue"]
    chats = [
        row
        for row in dialogues.to_dict(orient="records")
        if is_chat(row) and (user is None or row.get("owner") == user)
    ]
    return sorted(chats, key=lambda r: r["created_at"], reverse=True)
