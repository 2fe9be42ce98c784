"""The pure parts of a dialogue: whose turn, how hot, what each actor sees, when to stop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandloop.dialogues.spec import DialogueSpec
from sandloop.recipes.render import render


@dataclass(frozen=True)
class Turn:
    turn: int
    actor: str
    content: str
    temperature: float


def speaker(spec: DialogueSpec, turn: int) -> str:
    order = spec.order
    return order[turn % len(order)]


def view_for(spec: DialogueSpec, actor: str, turns: list[Turn]) -> list[dict[str, str]]:
    """The conversation from one actor's side: its own turns as assistant, the others' as user
    (named, so it knows who said what), the question first. Consecutive user turns merge, so
    roles alternate as chat APIs expect."""
    me = spec.actor(actor)
    others = [a.name for a in spec.actors if a.name != actor]
    messages: list[dict[str, str]] = []
    system = render(me.role, {"question": spec.question, "name": actor, "others": others})
    if system.strip():
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": spec.question})
    for turn in turns:
        if turn.actor == actor:
            messages.append({"role": "assistant", "content": turn.content})
        elif messages[-1]["role"] == "user":
            messages[-1]["content"] += f"\n\n{turn.actor}: {turn.content}"
        else:
            messages.append({"role": "user", "content": f"{turn.actor}: {turn.content}"})
    return messages


def transcript(messages: list[dict[str, Any]], actor: str) -> str:
    """The same view as plain text, for models without a chat format: ends with the actor's
    name so a base model continues in its voice."""
    lines = []
    for message in messages:
        who = {"system": "", "user": "", "assistant": f"{actor}: "}[message["role"]]
        lines.append(who + message["content"])
    return "\n\n".join(lines) + f"\n\n{actor}:"


def own_turns(turns: list[Turn], actor: str) -> int:
    return sum(1 for t in turns if t.actor == actor)


def hits_sentinel(spec: DialogueSpec, content: str) -> bool:
    sentinel = spec.stop.sentinel
    return sentinel is not None and sentinel.lower() in content.lower()


def repeats(turns: list[Turn], content: str) -> bool:
    normal = " ".join(content.lower().split())
    return any(" ".join(t.content.lower().split()) == normal for t in turns)
