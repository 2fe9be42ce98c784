"""Traces in Langfuse's ingestion format: one trace per run, dialogue or recipe; a span per flow
run that worked on it; a generation per model call (model, parameters, usage, cost, prompt name
and version, session). The file can be posted to `/api/public/ingestion` in batches.

Every id is a UUID, as the SDK documents, derived from the record's key (UUID 5 in a sandloop
namespace): pushing the same runs again updates the same traces and observations instead of
adding copies. The keys themselves stay in the metadata, so a trace leads back to the record."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pandas as pd

from sandloop.exports.redact import Redactor
from sandloop.hashing import hash_value


def _iso(moment: Any) -> str | None:
    if moment is None or (isinstance(moment, float) and moment != moment) or moment is pd.NaT:
        return None
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return str(stamp.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


NAMESPACE = uuid.UUID("5a9d1c3e-7b42-5f0e-9c1a-2d8e6f4b0a17")  # sandloop's, fixed for good


def event_id(key: str) -> str:
    """The Langfuse id of a record key: the same key, the same UUID, on every push."""
    return str(uuid.uuid5(NAMESPACE, key))


def _event(kind: str, body: dict[str, Any], timestamp: str | None) -> dict[str, Any]:
    return {
        "id": event_id(hash_value({"type": kind, "body": body["id"]})),
        "timestamp": timestamp,
        "type": kind,
        "body": {k: v for k, v in body.items() if v is not None},
    }


def _parameters(params_json: str | None) -> dict[str, Any]:
    """Langfuse takes flat string/number/boolean parameters: nest deeper as JSON text."""
    params = orjson.loads(params_json or "{}")
    return {
        k: v if isinstance(v, str | int | float | bool) else orjson.dumps(v).decode()
        for k, v in params.items()
        if v is not None
    }


def run_events(run: dict[str, Any], calls: pd.DataFrame) -> Iterator[dict[str, Any]]:
    thread = str(run["thread"])
    calls = calls.sort_values(["step", "started_at"])
    ok = calls[calls["status"] == "ok"]
    last_output = str(ok["output"].iloc[-1]) if not ok.empty else None
    session = run.get("session")
    trace_id = event_id(thread)
    yield _event(
        "trace-create",
        {
            "id": trace_id,
            "timestamp": _iso(run["created_at"]),
            "name": f"{run['kind']}:{run['name']}",
            "sessionId": session if isinstance(session, str) else None,
            "input": run.get("genesis"),
            "output": last_output,
            "metadata": {
                "thread": thread,
                "realm": run["realm"],
                "kind": run["kind"],
                "status": run["status"],
                "stop_reason": run.get("stop_reason"),
                "seed": None if pd.isna(run.get("seed")) else int(run["seed"]),
                "steps": int(run["steps"]),
            },
            "tags": [str(run["kind"]), f"realm:{str(run['realm'])[:8]}"],
        },
        _iso(run["created_at"]),
    )
    spans: dict[str, str] = {}
    for flow_run, chunk in calls.groupby(calls["flow_run_id"].fillna("local"), sort=False):
        span_id = event_id(hash_value({"trace": thread, "flow_run": flow_run}))
        spans[str(flow_run)] = span_id
        yield _event(
            "span-create",
            {
                "id": span_id,
                "traceId": trace_id,
                "name": f"{run['kind']} flow run {str(flow_run)[:8]}",
                "startTime": _iso(chunk["started_at"].min()),
                "endTime": _iso(chunk["finished_at"].max()),
                "metadata": {"flow_run_id": None if flow_run == "local" else flow_run},
            },
            _iso(chunk["started_at"].min()),
        )
    for call in calls.to_dict("records"):
        meta = orjson.loads(call["metadata"] or "{}")
        usage = meta.get("usage") or {}
        failed = call["status"] != "ok"
        yield _event(
            "generation-create",
            {
                "id": event_id(str(call["key"])),
                "traceId": trace_id,
                "parentObservationId": spans[str(call["flow_run_id"] or "local")],
                "name": f"{call['step']} · {call['facet']}",
                "startTime": _iso(call["started_at"]),
                "endTime": _iso(call["finished_at"]),
                "model": call["model"],
                "modelParameters": _parameters(call["params"]),
                "input": call["input"],
                "output": call["output"],
                "usageDetails": {
                    k: int(v)
                    for k, v in (
                        ("input", usage.get("input_tokens")),
                        ("output", usage.get("output_tokens")),
                    )
                    if v is not None
                }
                or None,
                "costDetails": {"total": meta["cost_usd"]} if "cost_usd" in meta else None,
                "promptName": meta.get("promptName"),
                "promptVersion": _version(meta.get("promptVersion")),
                "level": "ERROR" if failed else "DEFAULT",
                "statusMessage": call["error"] if failed else None,
                "metadata": {
                    k: meta[k]
                    for k in ("role", "round", "actor", "temperature", "route")
                    if k in meta
                }
                | _prompt_version_text(meta.get("promptVersion"))
                | {
                    "key": str(call["key"]),
                    "step": int(call["step"]),
                    "seed": None if pd.isna(call["seed"]) else int(call["seed"]),
                },
            },
            _iso(call["started_at"]),
        )


def _version(value: Any) -> int | None:
    """Langfuse prompt versions are integers; ours are strings such as "2" (or "1.3")."""
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _prompt_version_text(value: Any) -> dict[str, str]:
    """A version Langfuse cannot hold as an integer ("1.3") is kept, as text, in metadata."""
    if value is None or _version(value) is not None:
        return {}
    return {"prompt_version": str(value)}


def redact_event(event: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    """The event with every text in it redacted, as dataset exports are: traces are shared too."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return redactor(value)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return {**event, "body": clean(event["body"])}
