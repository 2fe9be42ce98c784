"""The read routes under ``/v1``: runs, steps from a cursor, search, the catalog, recipes,
sessions, snapshots and blobs, each a call into `sandloop.api`."""

from __future__ import annotations

import base64
import math
from typing import Annotated, Any

import orjson
import pandas as pd
from fastapi import APIRouter, Query
from fastapi import Path as RoutePath
from fastapi.responses import Response

from sandloop import api
from sandloop.chats import is_chat
from sandloop.errors import SandloopError
from sandloop.records import with_metadata_objects
from sandloop.storage.blobs import blob_media_type
from sandloop.storage.store import AkashicStore, NotFound
from sandloop.web import schemas
from sandloop.web.auth import Reader, needs, reach
from sandloop.web.served import SEARCH_CATCH_UP, ServedBy

Thread = Annotated[str, RoutePath(pattern="^[0-9a-fA-F]{1,32}$", description="a thread or prefix")]
BlobHash = Annotated[str, RoutePath(pattern="^[0-9a-f]{32}$", description="a blob's hash")]
Limit = Annotated[int, Query(ge=1, le=1000, description="rows per page")]

router = APIRouter()


@router.get("/v1/runs", response_model=schemas.RunPage)
def list_runs(
    served: ServedBy,
    grant: Reader,
    limit: Limit = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    kind: Annotated[str | None, Query(pattern="^(network|dialogue|recipe)$")] = None,
    status: Annotated[str | None, Query(max_length=40)] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    session: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """Runs, newest first, a page at a time."""
    wanted = {"kind": kind, "status": status, "name": name, "session": session}
    rows = _records(api.newest_runs(served.home, store=served.store(), **wanted))
    if (user := reach(grant)) is not None:  # someone else's chat is not listed
        rows = [r for r in rows if not (is_chat(r) and r.get("owner") != user)]
    if cursor is not None:
        after = _cursor(cursor)
        rows = [r for r in rows if (-_stamp(r["created_at"]), r["thread"]) > after]
    page = rows[:limit]
    more = len(rows) > limit
    last = page[-1] if page and more else None
    token = None
    if last is not None:
        position = [-_stamp(last["created_at"]), last["thread"]]
        token = base64.urlsafe_b64encode(orjson.dumps(position)).decode()
    return {"runs": page, "next_cursor": token}


@router.get("/v1/runs/{thread}", response_model=schemas.Run)
def show_run(thread: Thread, served: ServedBy, grant: Reader) -> dict[str, Any]:
    """One run, by its thread or a unique prefix of it (someone else's chat is a 404)."""
    run: dict[str, Any] = _clean(served.readable_run(thread, reach(grant)))
    return run


@router.get("/v1/runs/{thread}/steps", response_model=schemas.StepPage)
def run_steps(
    thread: Thread,
    served: ServedBy,
    grant: Reader,
    after: Annotated[int, Query(ge=-1, le=2**53, description="the last step already seen")] = -1,
    limit: Annotated[int, Query(ge=1, le=10_000, description="steps per page")] = 1000,
) -> Response:
    """A run's recorded steps in order, from after a cursor: a reconnect misses nothing."""
    served.readable_run(thread, reach(grant))  # someone else's chat is a 404
    try:
        frame = api.run_steps(thread, served.home, after, store=served.store())
    except NotFound:
        served.find_run(thread)  # a run announced but not yet recorded has no steps; else 404
        return Response(b'{"steps":[],"next_cursor":null}', media_type="application/json")
    frame = frame.sort_values(["step", "key"])
    more = len(frame) > limit
    if more:  # the cursor is a step number: a page never ends inside a step
        last = frame["step"].iloc[limit - 1]
        cut = frame["step"].iloc[limit] == last
        whole = frame.head(limit)
        if cut:
            before = whole[whole["step"] < last]
            whole = before if not before.empty else frame[frame["step"] <= last]
        more = len(whole) < len(frame)
        frame = whole
    frame = with_urls(frame, "/v1/blobs/")
    cursor = int(frame["step"].iloc[-1]) if more and not frame.empty else None
    # Written by pandas in C, not validated row by row against the model: a page may
    # hold 10,000 steps.
    return Response(
        b'{"steps":'
        + _rows_json(frame, STEP_FIELDS)
        + b',"next_cursor":'
        + orjson.dumps(cursor)
        + b"}",
        media_type="application/json",
    )


@router.get("/v1/search", response_model=list[schemas.Hit])
def search(
    served: ServedBy,
    grant: Reader,
    q: Annotated[str, Query(min_length=1, max_length=2000, description="what to look for")],
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    thread: Annotated[str | None, Query(pattern="^[0-9a-f]{32}$")] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    images: Annotated[
        bool, Query(description="search image outputs by words (needs an image embedding model)")
    ] = False,
) -> list[dict[str, Any]]:
    """Recorded outputs nearest in meaning to ``q``."""
    if images:
        if served.image_embedder is None:
            served.image_embedder = api.load_embedder(served.home, images=True)
        embedder = served.image_embedder
    else:
        if served.embedder is None:
            served.embedder = api.load_embedder(served.home)
        embedder = served.embedder
    hits = api.search(
        q,
        served.home,
        k=k,
        embedder=embedder,
        thread=thread,
        from_model=model,
        catch_up=SEARCH_CATCH_UP,
    )
    hidden = served.hidden_threads(reach(grant))  # another user's chats are not found
    rows = [row for row in _records(hits) if row.get("thread") not in hidden]
    for row in rows:
        row["output_url"] = _blob_url(row)
    return rows


@router.get("/v1/models", response_model=schemas.Catalog, dependencies=[needs("read")])
def models(served: ServedBy) -> dict[str, Any]:
    """The model catalog and routes this home knows."""
    return api.catalog_listing(served.home)


@router.get("/v1/recipes", response_model=list[str], dependencies=[needs("read")])
def recipes(served: ServedBy) -> list[str]:
    """Recipe names: the built-in ones and the home's own."""
    return api.recipe_names(served.home)


@router.get("/v1/sessions", response_model=list[schemas.Session], dependencies=[needs("read")])
def sessions(served: ServedBy) -> list[dict[str, Any]]:
    return _records(api.list_sessions(served.home, store=served.store()))


@router.get("/v1/snapshots", response_model=list[schemas.Snapshot], dependencies=[needs("read")])
def snapshots(served: ServedBy) -> list[dict[str, Any]]:
    return _records(api.list_snapshots(served.home, store=served.store()))


@router.get(
    "/v1/blobs/{blob_hash}",
    response_class=Response,
    dependencies=[needs("read")],
    responses={200: {"content": {"image/png": {}, "application/octet-stream": {}}}},
)
def blob(
    blob_hash: BlobHash,
    served: ServedBy,
) -> Response:
    """A content-addressed blob (an image), with its media type."""
    return blob_response(served.store(), blob_hash)


def _clean(value: Any) -> Any:
    """A store value as JSON takes it: pandas' missing values as None."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):  # lists and arrays
        pass
    return value


STEP_FIELDS = schemas.STEP_FIELDS


def _records(frame: pd.DataFrame, fields: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows as dicts, missing values as None, whole columns at a time."""
    if frame.empty:
        return []
    if fields is not None:
        frame = frame[[f for f in fields if f in frame.columns]]
    plain = frame.astype(object).where(frame.notna(), None)
    rows: list[dict[str, Any]] = plain.to_dict("records")
    return rows


def _rows_json(frame: pd.DataFrame, fields: list[str]) -> bytes:
    """A JSON array of the rows' ``fields``: nulls for missing values, ISO 8601 times, and
    metadata as an object."""
    if frame.empty:
        return b"[]"
    chosen = with_metadata_objects(frame[[f for f in fields if f in frame.columns]])
    text = chosen.to_json(orient="records", date_format="iso", date_unit="us")
    return str(text).encode()


def _stamp(value: Any) -> float:
    return pd.Timestamp(value).timestamp() if value is not None else 0.0


def _cursor(text: str) -> tuple[float, str]:
    try:
        first, second = orjson.loads(base64.urlsafe_b64decode(text.encode()))
        return float(first), str(second)
    except (ValueError, TypeError) as exc:
        raise CursorError("cursor is not one this API gave out") from exc


class CursorError(SandloopError, ValueError):
    """A ?cursor= that this API did not make."""


def _blob_url(row: dict[str, Any]) -> str | None:
    return None if row.get("output_type") == "text" else f"/v1/blobs/{row['output']}"


def with_urls(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Steps with ``output_url``: where a non-text output (an image) is served."""
    if frame.empty:
        return frame
    blobs = prefix + frame["output"].astype(str)
    return frame.assign(output_url=blobs.where(frame["output_type"] != "text", None))


def blob_response(store: AkashicStore, blob_hash: str) -> Response:
    found = store.blobs.get_many([blob_hash])[0]
    if found is None:
        raise NotFound(f"no blob {blob_hash}")
    kind = blob_media_type(found)
    return Response(found, media_type=kind, headers={"Cache-Control": "max-age=31536000"})
