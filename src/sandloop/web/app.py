"""The HTTP API (`sandloop api`): routes over `sandloop.api`, under ``/v1``, and the public
gallery pages.

Every ``/v1`` route needs a bearer token with its scope. Errors are one ``detail`` line: 404 for
an unknown id, 409 for an ambiguous prefix or a thread already running, 422 for bad input
(the field named), and a bare 500 for anything else, its text logged after scrubbing, never
returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from sandloop import __version__, api
from sandloop.scrub import scrub
from sandloop.web import acts, chat, gallery, live, reads, schemas, work
from sandloop.web.access_log import AccessLog
from sandloop.web.auth import Grants
from sandloop.web.errors import STATUSES, problem
from sandloop.web.guard import Guard
from sandloop.web.headers import SecurityHeaders
from sandloop.web.methods import Methods
from sandloop.web.served import Ceilings, Served
from sandloop.web.streams import StreamSlots

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.Problem} for code in (400, 401, 403, 404, 409, 422)
}


def create_app(
    home: Path | str | None = None,
    *,
    networks: Sequence[Path | str] = (),
    gallery_on: bool = True,
    cors_origins: Sequence[str] = (),
    visitor_run: dict[str, Any] | None = None,
    exports: Path | str | None = None,
    moderation: str | None = None,
    public_url: str | None = None,
    access_log: TextIO | None = None,
) -> FastAPI:
    """The app over one home. ``networks`` are the network files that may be started by name
    (and by visitors, at ``/submit/NAME``, with the stop and pace of ``visitor_run``, each
    prompt first allowed by the ``moderation`` recipe if one is named); CORS admits only
    ``cors_origins`` (none by default). ``access_log``: a stream for a line per request (else
    the ``sandloop.access`` logger, at INFO)."""
    app = FastAPI(
        title="sandloop",
        version=__version__,
        description="Loops of AI models and their exact record. Tokens: `sandloop tokens create`.",
        responses=ERRORS,
    )
    named = {api.load_network(path, home).name: Path(path) for path in networks}
    app.state.served = served = Served(
        home, named, gallery_on, Path(exports) if exports is not None else None
    )
    if visitor_run is not None:
        served.visitor_run = visitor_run
    if moderation is not None:
        api.load_recipe(moderation, home)  # a missing or broken recipe is said now
        served.moderation = moderation
    for path in named.values():  # a bad stop or pace is said now, not to each visitor
        api.run_spec_from({"network": str(path), "genesis": "-", **served.visitor_run}, home)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.state.grants = grants = Grants(lambda token: api.check_token(token, home))
    settings = api.settings_for(home)
    served.stream_slots = StreamSlots(settings.max_streams, settings.max_streams_per_client)
    served.stream_idle_s = settings.stream_idle_s
    served.public_url = public_url or settings.public_url
    served.ceilings = Ceilings(
        settings.served_max_steps, settings.served_max_models, settings.served_max_duration_s
    )
    max_body = round(settings.max_body_mb * 1024 * 1024)
    routers = (reads, acts, live, chat, work, gallery)
    app.add_middleware(Methods, routes=[r for m in routers for r in m.router.routes])
    app.add_middleware(Guard, grants=grants, max_body=max_body)  # inside CORS: preflights pass
    app.add_middleware(SecurityHeaders)  # outermost but CORS: on every answer, refusals too
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )
    app.add_middleware(
        AccessLog, stream=access_log
    )  # outermost: every answer, the door's refusals too
    _answer_errors(app)
    for module in routers:
        app.include_router(module.router)
    return app


def _answer_errors(app: FastAPI) -> None:
    async def answer(_request: Request, exc: Exception) -> JSONResponse:
        status, detail = problem(exc)
        wait = getattr(exc, "retry_after_s", None) if status == 429 else None
        return JSONResponse(
            {"detail": detail}, status, {"Retry-After": str(wait)} if wait is not None else None
        )

    for kind, _status in STATUSES:
        app.add_exception_handler(kind, answer)
    app.add_exception_handler(Exception, answer)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_message(exc.errors())}, 422)


def validation_message(errors: Sequence[Any]) -> str:
    """A refused request's errors as one ``detail`` line naming the field, like every other
    error of the API (FastAPI's default is a list, which the documented error shape is not)."""
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return scrub(f"{where}: {first.get('msg', 'invalid')}{more}")
