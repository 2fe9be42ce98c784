"""What the HTTP API returns, as pydantic models: they make the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sandloop.exports.formats import FORMATS, formats_problem
from sandloop.exports.language import language_problem
from sandloop.exports.snapshot import Selection


class Run(BaseModel):
    """What the API shows of a `registration.RunRecord`: its fields, less those that are the
    engine's business (the realm, the spec as stored, the continuation, when it is next due).
    Written out, not derived, so the published document changes only when this does; a test
    holds it to a subset of the record's fields."""

    thread: str
    kind: str = Field(description="network | dialogue | recipe")
    name: str
    status: str
    steps: int
    genesis: str | None = None
    seed: int | None = None
    stop_reason: str | None = None
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    flow_run_id: str | None = None
    session: str | None = None
    phase: str | None = None


class RunPage(BaseModel):
    runs: list[Run]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page")


class Step(BaseModel):
    key: str
    thread: str
    step: int
    facet: str
    model: str
    input: str
    input_type: str
    output: str = Field(description="the text, or an image's blob hash")
    output_type: str
    output_url: str | None = Field(None, description="the blob route, for a non-text output")
    status: str
    error: str | None = None
    latency_ms: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    metadata: dict[str, Any] | None = Field(
        None,
        description="the step's recorded metadata: its role, usage, cost_usd, route; "
        "an audio output's media_type, sample_rate and duration_s",
    )


#: The step fields every route and stream shows, in order.
STEP_FIELDS = list(Step.model_fields)


class StepPage(BaseModel):
    steps: list[Step]
    next_cursor: int | None = Field(None, description="pass as ?after= for the next page")


class Hit(BaseModel):
    score: float
    key: str
    thread: str
    step: int
    model: str
    output: str
    output_type: str
    output_url: str | None = None


class Snapshot(BaseModel):
    name: str
    created_at: datetime | None = None
    runs: int | None = None
    selection: Any = None


class Session(BaseModel):
    id: str
    title: str | None = None
    status: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    runs: int = 0


class Catalog(BaseModel):
    models: list[dict[str, Any]]
    routes: dict[str, Any]
    models_file: str | None = None


class Problem(BaseModel):
    detail: str


# -- what the act routes take and give -------------------------------------------------------

Text = Field(min_length=1, max_length=100_000)
SessionId = Field(None, max_length=64, description="a session id (or prefix) to file it under")


class StartNetwork(BaseModel):
    model_config = ConfigDict(extra="forbid")
    network: str | dict[str, Any] = Field(
        description="a network this server offers by name (`sandloop api --network FILE`), "
        "or the network itself: {name, models, …}"
    )
    genesis: str | None = Field(
        None, min_length=1, max_length=100_000, description="the first input, for a text network"
    )
    genesis_blob: str | None = Field(
        None,
        pattern="^[0-9a-f]{32}$",
        description="for a network that starts from an image or a sound: a blob's hash, from "
        "POST /v1/blobs or a step's output",
    )
    seed: int | None = None
    stop: dict[str, Any] = Field(
        default_factory=dict,
        description="max_steps, max_duration_s, stop_on_repeat, converge_above, …",
    )
    pace: dict[str, Any] | None = Field(None, description="e.g. {kind: constant, seconds: 2}")
    session: str | None = SessionId

    @model_validator(mode="after")
    def _one_genesis(self) -> StartNetwork:
        if (self.genesis is None) == (self.genesis_blob is None):
            raise ValueError("give genesis (text) or genesis_blob (an uploaded image or sound)")
        return self


class StartDialogue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dialogue: dict[str, Any] = Field(description="the dialogue: {name, question, actors, …}")
    question: str | None = Field(None, min_length=1, max_length=100_000)
    seed: int | None = None
    session: str | None = SessionId


class StartRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: str = Text
    context: dict[str, Any] = Field(default_factory=dict, description="the recipe's slots")
    seed: int | None = None
    model: str | None = Field(None, max_length=200, description="another model for the recipe")
    session: str | None = SessionId


class NewSnapshot(Selection):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class StartExport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    formats: list[str] = Field(min_length=1, max_length=10, description=", ".join(FORMATS))
    val_fraction: float = Field(0.1, ge=0, le=0.5)
    dedupe: str = Field("exact", pattern="^(none|exact|near)$")
    redact: list[str] = Field(default_factory=list, max_length=50)
    license: str = Field("unknown", max_length=100)
    language: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="the card's language codes (en, fr, pt-BR); none: detected where it can be",
    )

    @field_validator("language")
    @classmethod
    def _codes(cls, codes: list[str]) -> list[str]:
        problem = language_problem(codes)
        if problem is not None:
            raise ValueError(problem.removeprefix("--language "))
        return codes

    @field_validator("formats")
    @classmethod
    def _known(cls, formats: list[str]) -> list[str]:
        """Checked here, before the route builds the export's folder from the names."""
        problem = formats_problem(formats)
        if problem is not None:
            raise ValueError(problem)
        return formats


class Started(BaseModel):
    kind: str = Field(description="network | dialogue | recipe | export")
    thread: str = Field(description="the run's thread (for an export, the snapshot)")
    flow_run_id: str
    links: dict[str, str] = Field(description="where to follow it")


class Uploaded(BaseModel):
    hash: str = Field(description="the blob's hash: a network's genesis_blob")
    media_type: str
    bytes: int


class Published(BaseModel):
    thread: str
    public: bool = Field(description="whether /gallery/{thread} shows it")


class Cancel(BaseModel):
    thread: str
    flow_run_id: str = Field(description="the flow run asked to stop")
    state: str = Field(
        description="CANCELLING: it stops after the step under way; CANCELLED: it had not "
        "started, or waited for a scheduled continuation"
    )


class FlowRun(BaseModel):
    id: str
    name: str
    state: str | None = Field(None, description="Prefect's state type: RUNNING, COMPLETED, …")
    state_name: str | None = None
    message: str | None = None


# -- the task queue ---------------------------------------------------------------------------

Key = str  # an invocation key: 32 hex digits
WorkerId = Field(pattern=r"^\S{1,100}$", description="who is working: one word (a rating's by)")
LeaseToken = Field(min_length=1, max_length=200, description="from the take that leased it")
LeaseSeconds = Field(300.0, ge=1, le=3600, description="how long the lease lasts unrenewed")


class NewTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(
        pattern="^(rate|label)$",
        description="rate: a result is {score: 1-5, note?}, recorded as a rating in the scores "
        "table; label: a result is any JSON object, kept on the subtask",
    )
    keys: list[Key] = Field(
        default_factory=list,
        max_length=10_000,
        description="invocation keys, one subtask each, in hand-out order",
    )
    threads: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="or threads (ids or prefixes): every step with an output, in order",
    )
    instructions: str | None = Field(None, max_length=10_000)


class Task(BaseModel):
    id: str
    name: str
    kind: str
    instructions: str | None = None
    subtasks: int
    open: int = Field(description="subtasks nobody holds (a lapsed lease's among them)")
    leased: int
    done: int
    created_by: str
    created_at: datetime | None = None


class Subtask(BaseModel):
    id: str = Field(description="the invocation key (PUT /v1/tasks/TASK/subtasks/ID)")
    position: int = Field(description="its place in the task: ?after= for the next page")
    thread: str
    step: int
    state: str = Field(description="open | leased | done")
    worker: str | None = None
    lease_expires: datetime | None = None
    attempts: int
    result: Any = None
    score_id: str | None = None
    done_at: datetime | None = None


class WorkItem(BaseModel):
    """A leased subtask with what there is to work on."""

    id: str
    thread: str
    step: int
    model: str
    input: str
    input_type: str
    output: str
    output_type: str
    output_url: str | None = None


class Take(BaseModel):
    model_config = ConfigDict(extra="forbid")
    worker_id: str = WorkerId
    max: int = Field(1, ge=1, le=100)
    lease_s: float = LeaseSeconds


class Lease(BaseModel):
    lease_token: str = Field(description="send it with each result; shown only here")
    expires_at: datetime
    subtasks: list[WorkItem]


class Renew(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lease_token: str = LeaseToken
    lease_s: float = LeaseSeconds


class Result(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lease_token: str = LeaseToken
    result: dict[str, Any]


# -- chats --------------------------------------------------------------------------------------


class NewChat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(
        min_length=1, max_length=200, description="a model, route:NAME or recipe:NAME"
    )
    system: str = Field("", max_length=100_000, description="the actor's system role")
    title: str | None = Field(None, pattern=r"^[A-Za-z0-9][\w.\- ]*$", max_length=120)
    temperature: float = Field(0.7, ge=0, le=5)
    params: dict[str, Any] = Field(default_factory=dict, description="the model's parameters")
    session: str | None = SessionId


class Chat(BaseModel):
    thread: str = Field(description="the chat's id: its dialogue thread")
    name: str
    status: str = Field(description="registered | waiting (your turn) | running | completed")
    stop_reason: str | None = None
    messages: int = Field(description="turns so far, the person's and the actor's")
    created_at: datetime | None = None
    updated_at: datetime | None = None
    session: str | None = None


class ChatMessage(BaseModel):
    turn: int = Field(description="DELETE …/messages/TURN deletes it and all after it")
    actor: str = Field(description="user (the person) or assistant")
    model: str = Field(description="human, or the actor's model")
    content: str
    key: str = Field(description="its invocation key")
    created_at: datetime | None = None


class Say(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = Field(min_length=1, max_length=100_000)


class Exchange(BaseModel):
    message: ChatMessage
    reply: ChatMessage


class Forgotten(BaseModel):
    deleted: int = Field(description="how many messages went (that one and all after it)")
