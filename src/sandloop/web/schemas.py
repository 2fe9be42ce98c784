"""What the HTTP API returns, as pydantic models: they make the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class Run(BaseModel):
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
