"""A dialogue without Prefect: whose turn, how hot, what each actor sees, when to stop."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandloop.hashing import derive_seed
from sandloop.loops.dialogue.spec import DialogueSpec
from sandloop.loops.protocol import Call, Outcome, Recorded, StopCondition, first_stop
from sandloop.loops.recipe.render import render
from sandloop.loops.status import StopReason
from sandloop.records import CallAddress


@dataclass(frozen=True)
class Turn:
    turn: int
    actor: str
    content: str
    temperature: float | None  # None for a chat's person


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
    if spec.question:
        messages.append({"role": "user", "content": spec.question})
    for turn in turns:
        if turn.actor == actor:
            messages.append({"role": "assistant", "content": turn.content})
        elif turn.actor == spec.human:  # a chat's person: as they typed it
            messages.append({"role": "user", "content": turn.content})
        elif messages and messages[-1]["role"] == "user":
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


def repeats(turns: list[Turn], content: str) -> bool:
    normal = " ".join(content.lower().split())
    return any(" ".join(t.content.lower().split()) == normal for t in turns)


def actor_params(spec: DialogueSpec, actor: str, temperature: float) -> dict[str, Any]:
    """An actor's parameters at a turn: the schedule's temperature, where the model takes one."""
    chosen = spec.actor(actor)
    info = chosen.info
    given = dict(chosen.params)
    if "temperature" in info.params_model.model_fields:
        given["temperature"] = temperature
    return info.params_for(given)


@dataclass(frozen=True)
class MaxTurns:
    turns: int

    def check(self, state: DialogueLoop, now: datetime) -> StopReason | None:
        return StopReason.MAX_TURNS if len(state.turns) >= self.turns else None


@dataclass(frozen=True)
class Sentinel:
    """An actor said the stop word."""

    sentinel: str

    def check(self, state: DialogueLoop, now: datetime) -> StopReason | None:
        said = state.turns[-1].content.lower() if state.turns else ""
        return StopReason.SENTINEL if self.sentinel.lower() in said else None


@dataclass(frozen=True)
class JudgeSays:
    """The judge's verdict on the last turn: 'stop', or a score at the threshold."""

    stop_at_score: float | None

    def check(self, state: DialogueLoop, now: datetime) -> StopReason | None:
        verdict = state.verdict
        if verdict is None:
            return None
        score = verdict.get("score")
        if verdict.get("verdict") == "stop" or (
            self.stop_at_score is not None
            and isinstance(score, int | float)
            and score >= self.stop_at_score
        ):
            return StopReason.JUDGE
        return None


@dataclass(frozen=True)
class Repeated:
    def check(self, state: DialogueLoop, now: datetime) -> StopReason | None:
        return StopReason.REPEAT if state.repeated else None


@dataclass(frozen=True)
class Budget:
    output_tokens: int

    def check(self, state: DialogueLoop, now: datetime) -> StopReason | None:
        return StopReason.BUDGET if state.tokens >= self.output_tokens else None


@dataclass(frozen=True)
class YourTurn:
    """A chat waits for its person after each reply (and before the first message)."""

    human: str

    def check(self, state: DialogueLoop, now: datetime) -> StopReason | None:
        last = state.turns[-1].actor if state.turns else None
        return StopReason.YOUR_TURN if last != self.human else None


def dialogue_stops(spec: DialogueSpec) -> list[StopCondition[DialogueLoop]]:
    """In the order they are told: what the last turn said first, the turn count last."""
    stop = spec.stop
    conditions: list[StopCondition[DialogueLoop]] = []
    if spec.human is not None:
        conditions.append(YourTurn(spec.human))
    if stop.sentinel is not None:
        conditions.append(Sentinel(stop.sentinel))
    if spec.judge is not None:
        conditions.append(JudgeSays(spec.judge.stop_at_score))
    if stop.stop_on_repeat:
        conditions.append(Repeated())
    if stop.max_output_tokens:
        conditions.append(Budget(stop.max_output_tokens))
    conditions.append(MaxTurns(stop.max_turns))
    return conditions


@dataclass
class DialogueLoop:
    """A dialogue from its recorded turns on: whose turn, what they see, when it ends. The
    judge's verdict on a turn is given after the turn is recorded (``take_verdict``)."""

    spec: DialogueSpec
    thread: str
    seed: int | None
    turns: list[Turn] = field(default_factory=list)
    kind: str = "dialogue"
    verdict: dict[str, Any] | None = None
    repeated: bool = False
    tokens: int = 0
    stops: list[StopCondition[DialogueLoop]] = field(init=False)

    def __post_init__(self) -> None:
        self.stops = dialogue_stops(self.spec)

    @property
    def steps_done(self) -> int:
        return len(self.turns)

    def plan(self) -> Call:
        turn = len(self.turns)
        actor = speaker(self.spec, turn)
        model = self.spec.actor(actor).model
        temperature = self.spec.temperature.at(turn)
        messages = view_for(self.spec, actor, self.turns)
        address = CallAddress("dialogue", self.spec.realm, self.thread, turn, actor, model)
        params = actor_params(self.spec, actor, temperature)
        text = transcript(messages, actor)
        return Call(
            kind="dialogue",
            realm=self.spec.realm,
            thread=self.thread,
            step=turn,
            facet=actor,
            model=model,
            key=address.key(text, params),
            step_key=address.step_key,
            parent_key=None,
            input_type="text",
            input_value=text,
            output_type="text",
            params=params,
            seed=derive_seed(self.seed, self.thread, turn) if self.seed is not None else None,
            index=own_turns(self.turns, actor),
            messages=tuple(messages),
            metadata={"actor": actor, "temperature": temperature, "turn": turn},
        )

    def advance(self, call: Call, outcome: Outcome) -> Recorded:
        self.verdict = None
        if not outcome.ok:
            return Recorded()
        content = (outcome.value or "").strip()
        self.repeated = self.spec.stop.stop_on_repeat and repeats(self.turns, content)
        self.turns.append(Turn(call.step, call.facet, content, call.metadata["temperature"]))
        self.tokens += int(outcome.usage.get("output_tokens") or 0)
        return Recorded(output=content)

    def judge_due(self) -> bool:
        judge = self.spec.judge
        return judge is not None and bool(self.turns) and len(self.turns) % judge.every == 0

    def take_verdict(self, verdict: dict[str, Any] | None) -> None:
        self.verdict = verdict

    def stop_reason(self, now: datetime) -> StopReason | None:
        return first_stop(self.stops, self, now)

    def due_at(self) -> datetime | None:
        return None
