"""The HTTP API (`sandloop api`): read routes over `sandloop.api`, under ``/v1``.

Every route needs a bearer token with its scope. Errors are one ``detail`` line: 404 for an
unknown id, 409 for an ambiguous prefix, 422 for bad input (FastAPI names the field), and a
bare 500 for anything else, its text logged after scrubbing, never returned.
"""

from __future__ import annotations

import base64
import logging
import math
from pathlib import Path
from typing import Annotated, Any

import orjson
import pandas as pd
from fastapi import FastAPI, Query, Request
from fastapi import Path as RoutePath
from fastapi.responses import JSONResponse, Response

from sandloop import __version__, api
from sandloop.errors import SandloopError
from sandloop.scrub import scrub
from sandloop.storage.blobs import sniff_media_type
from sandloop.storage.store import AmbiguousPrefix, NotFound
from sandloop.web import schemas
from sandloop.web.auth import Grants, needs

log = logging.getLogger("sandloop.web")

Thread = Annotated[str, RoutePath(pattern="^[0-9a-fA-F]{1,32}$", description="a thread or prefix")]
Limit = Annotated[int, Query(ge=1, le=1000, description="rows per page")]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.Problem} for code in (401, 403, 404, 409, 422)
}


def create_app(home: Path | str | None = None) -> FastAPI:
    app = FastAPI(
        title="sandloop",
        version=__version__,
        description="Loops of AI models and their exact record. Tokens: `sandloop tokens create`.",
        responses=ERRORS,
    )
    app.state.grants = Grants(lambda token: api.check_token(token, home))
    app.state.embedder = None

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 404)

    @app.exception_handler(AmbiguousPrefix)
    async def ambiguous(_request: Request, exc: AmbiguousPrefix) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 409)

    @app.exception_handler(SandloopError)
    async def refused(_request: Request, exc: SandloopError) -> JSONResponse:
        return JSONResponse({"detail": scrub(str(exc))}, 422)

    @app.exception_handler(Exception)
    async def failed(_request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed: %s: %s", type(exc).__name__, scrub(str(exc)))
        return JSONResponse({"detail": "internal error; see the server's log"}, 500)

    @app.get("/v1/runs", response_model=schemas.RunPage, dependencies=[needs("read")])
    def list_runs(
        limit: Limit = 50,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        kind: Annotated[str | None, Query(pattern="^(network|dialogue|recipe)$")] = None,
        status: Annotated[str | None, Query(max_length=40)] = None,
        name: Annotated[str | None, Query(max_length=200)] = None,
        session: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        """Runs, newest first, a page at a time."""
        frame = api.list_runs(home)
        for column, wanted in (("kind", kind), ("status", status), ("name", name)):
            if wanted is not None and not frame.empty:
                frame = frame[frame[column] == wanted]
        if session is not None and not frame.empty:
            frame = frame[frame["session"] == session]
        rows = _records(frame)
        rows.sort(key=lambda r: (-_stamp(r["created_at"]), r["thread"]))
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

    @app.get("/v1/runs/{thread}", response_model=schemas.Run, dependencies=[needs("read")])
    def show_run(thread: Thread) -> dict[str, Any]:
        """One run, by its thread or a unique prefix of it."""
        run: dict[str, Any] = _clean(api.open_store(home, readonly=True).find_run(thread))
        return run

    @app.get(
        "/v1/runs/{thread}/steps", response_model=schemas.StepPage, dependencies=[needs("read")]
    )
    def run_steps(
        thread: Thread,
        after: Annotated[int, Query(ge=-1, description="the last step already seen")] = -1,
        limit: Annotated[int, Query(ge=1, le=10_000, description="steps per page")] = 1000,
    ) -> Response:
        """A run's recorded steps in order, from after a cursor: a reconnect misses nothing."""
        frame = api.run_steps(thread, home)
        if not frame.empty:
            frame = frame[frame["step"] > after].sort_values(["step", "key"])
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
        if not frame.empty:
            blobs = "/v1/blobs/" + frame["output"].astype(str)
            frame = frame.assign(output_url=blobs.where(frame["output_type"] != "text", None))
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

    @app.get("/v1/search", response_model=list[schemas.Hit], dependencies=[needs("read")])
    def search(
        q: Annotated[str, Query(min_length=1, max_length=2000, description="what to look for")],
        k: Annotated[int, Query(ge=1, le=100)] = 10,
        thread: Annotated[str | None, Query(pattern="^[0-9a-f]{32}$")] = None,
        model: Annotated[str | None, Query(max_length=200)] = None,
    ) -> list[dict[str, Any]]:
        """Recorded outputs nearest in meaning to ``q``."""
        if app.state.embedder is None:
            app.state.embedder = api.load_embedder(home)
        hits = api.search(
            q, home, k=k, embedder=app.state.embedder, thread=thread, from_model=model
        )
        rows = _records(hits)
        for row in rows:
            row["output_url"] = _blob_url(row)
        return rows

    @app.get("/v1/models", response_model=schemas.Catalog, dependencies=[needs("read")])
    def models() -> dict[str, Any]:
        """The model catalog and routes this home knows."""
        return api.catalog_listing(home)

    @app.get("/v1/recipes", response_model=list[str], dependencies=[needs("read")])
    def recipes() -> list[str]:
        """Recipe names: the built-in ones and the home's own."""
        return api.recipe_names(home)

    @app.get("/v1/sessions", response_model=list[schemas.Session], dependencies=[needs("read")])
    def sessions() -> list[dict[str, Any]]:
        return _records(api.list_sessions(home))

    @app.get("/v1/snapshots", response_model=list[schemas.Snapshot], dependencies=[needs("read")])
    def snapshots() -> list[dict[str, Any]]:
        return _records(api.list_snapshots(home))

    @app.get(
        "/v1/blobs/{blob_hash}",
        response_class=Response,
        dependencies=[needs("read")],
        responses={200: {"content": {"image/png": {}, "application/octet-stream": {}}}},
    )
    def blob(
        blob_hash: Annotated[str, RoutePath(pattern="^[0-9a-f]{32}$")],
    ) -> Response:
        """A content-addressed blob (an image), with its media type."""
        found = api.open_store(home, readonly=True).blobs.get_many([blob_hash])[0]
        if found is None:
            raise NotFound(f"no blob {blob_hash}")
        kind = sniff_media_type(found) or "application/octet-stream"
        return Response(found, media_type=kind, headers={"Cache-Control": "max-age=31536000"})

    return app


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


STEP_FIELDS = list(schemas.Step.model_fields)


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
    """A JSON array of the rows' ``fields``: nulls for missing values, ISO 8601 times."""
    if frame.empty:
        return b"[]"
    chosen = frame[[f for f in fields if f in frame.columns]]
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
