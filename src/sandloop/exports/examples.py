"""What each kind of record teaches, as chat examples.

- a network step (text→text) is one exchange: its input as the user, its output as the
  assistant, with the model named;
- a dialogue is, for each actor, the conversation from that actor's side up to its last turn;
- a recipe is its rendered prompt and the accepted output; when an earlier round was rejected
  (invalid, or scored lower), that answer is the non-preferred side of a preference pair.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sandloop.hashing import hash_value
from sandloop.loops.dialogue import engine as dialogue_engine
from sandloop.loops.dialogue.spec import DialogueSpec

Message = dict[str, Any]


@dataclass(slots=True)
class Example:
    key: str  # orders the dataset and decides the split
    kind: str
    thread: str
    model: str
    messages: tuple[Message, ...]
    rejected: str | None = None  # a worse final answer, for preference formats
    source: str | None = None  # who judged rejected worse: "refine", or "user:NAME"
    vector_key: str | None = None  # the invocation whose embedding stands for this example
    redacted: bool = False
    prechecked: bool = False  # passed every format check column-wise (see writer)

    def content_hash(self) -> bytes:
        return messages_hash(self.messages)


def messages_hash(messages: tuple[Message, ...] | list[Message]) -> bytes:
    """What exact de-duplication compares: roles and contents, nothing else."""
    joined = "".join(f"{m['role']}\x1f{m['content']}\x1e" for m in messages)
    return hashlib.blake2b(joined.encode(), digest_size=16).digest()


def transcript(messages: tuple[Message, ...]) -> str:
    """An example as a judge reads it: each message on its own paragraph, named by its role."""
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


def usable_network_steps(rows: pa.Table) -> pa.Array | pa.ChunkedArray:
    """Which rows are successful text→text steps with text on both sides (image steps teach
    a text model nothing): a mask, so a caller filters once for all its conditions."""
    keep = pc.and_(
        pc.and_(pc.equal(rows["status"], "ok"), pc.equal(rows["input_type"], "text")),
        pc.and_(
            pc.equal(rows["output_type"], "text"),
            pc.and_(
                pc.greater(pc.utf8_length(rows["input"]), 0),
                pc.greater(pc.utf8_length(rows["output"]), 0),
            ),
        ),
    )
    return pc.fill_null(keep, False)


def network_examples(
    rows: pa.Table, redacted: bool = False, prechecked: list[bool] | None = None
) -> Iterator[Example]:
    """One example per usable step (``usable_network_steps``), read column-wise (a row-wise pandas
    walk costs more than the rest of the export)."""
    columns = [rows[c].to_pylist() for c in ("key", "thread", "model", "input", "output")]
    checked = prechecked if prechecked is not None else [False] * len(rows)
    for key, thread, model, text_in, text_out, ok in zip(*columns, checked, strict=True):
        yield Example(
            key,
            "network",
            thread,
            model,
            ({"role": "user", "content": text_in}, {"role": "assistant", "content": text_out}),
            vector_key=key,
            redacted=redacted,
            prechecked=ok,
        )


def passes_checks(rows: pa.Table, max_tokens: int) -> list[bool]:
    """The format checks for a two-message exchange, over whole columns: both texts non-blank,
    and short enough that they cannot be over the token limit (a character is at most four
    bytes and a token at least one). Rows that fail are checked one by one, with the tokenizer,
    so the reports name them."""
    fine = None
    for column in ("input", "output"):
        text = rows[column]
        present = pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0)
        fine = present if fine is None else pc.and_(fine, present)
    chars = pc.add(pc.utf8_length(rows["input"]), pc.utf8_length(rows["output"]))
    # Beyond the texts: 3 priming tokens, 3 framing tokens per message, and the roles' tokens,
    # which 4 × len("user" + "assistant") bounds as it bounds the texts'.
    short = pc.less_equal(pc.add(pc.multiply(chars, 4), 3 + 2 * 3 + 4 * 13), max_tokens)
    result: list[bool] = pc.fill_null(pc.and_(fine, short), False).to_pylist()
    return result


def dialogue_examples(spec: DialogueSpec, thread: str, turns: pd.DataFrame) -> Iterator[Example]:
    ordered = turns.sort_values("turn")
    history = [
        dialogue_engine.Turn(int(t.turn), str(t.actor), str(t.content), None)
        for t in ordered.itertuples(index=False)
    ]
    keys = dict(zip(ordered["turn"].astype(int), ordered["key"], strict=True))
    for actor in spec.order:
        own = [t for t in history if t.actor == actor]
        if not own:
            continue
        last = own[-1]
        messages = dialogue_engine.view_for(spec, actor, [t for t in history if t.turn < last.turn])
        messages.append({"role": "assistant", "content": last.content})
        # Every turn of this actor is its own words, and OpenAI trains on every assistant
        # message unless told ``weight: 0``: no ``weight`` key, so that a dialogue's line has
        # the same features as every other line of the file (`datasets` cannot join files
        # whose messages differ in keys).
        yield Example(
            key=hash_value({"thread": thread, "actor": actor}),
            kind="dialogue",
            thread=thread,
            model=spec.actor(actor).model,
            messages=tuple(messages),
            vector_key=str(keys[last.turn]),
        )


def recipe_examples(run: dict[str, Any], calls: pd.DataFrame) -> Iterator[Example]:
    if calls.empty or run.get("stop_reason") not in ("valid", "judged"):
        return
    ok = calls[calls["status"] == "ok"].sort_values("step")
    answers = []
    for row in ok.itertuples(index=False):
        meta = orjson.loads(row.metadata or "{}")
        if meta.get("role") in ("generate", "revise"):
            answers.append((row, meta))
    if not answers:
        return
    first_row, _ = answers[0]
    final_row, _ = next(((r, m) for r, m in answers if m.get("final")), answers[-1])
    rejected = next(
        (
            str(r.output)
            for r, m in answers
            if not m.get("final") and str(r.output) != str(final_row.output)
        ),
        None,
    )
    yield Example(
        key=str(run["thread"]),
        kind="recipe",
        thread=str(run["thread"]),
        model=str(final_row.model),
        messages=(
            {"role": "user", "content": str(first_row.input)},
            {"role": "assistant", "content": str(final_row.output)},
        ),
        rejected=rejected,
        source="refine" if rejected is not None else None,
        vector_key=str(final_row.key),
    )
