"""The public gallery, as PANIC hangs it: a running thread's latest outputs in a grid that
updates live (`/gallery/{thread}`), one output at a time full screen (`.../screen`), and the
visitor's page that starts a new thread from a genesis prompt (`/submit/{network}`), with a QR
code that leads there.

The pages are plain HTML over the same step stream as the API (`streams.step_events`); they need
no token, show only what a permalink (a whole thread id) names, and can be switched off
(`sandloop api --no-gallery`), which makes every one of them a 404.
"""

from __future__ import annotations

import html
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi import Path as RoutePath
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.sse import EventSourceResponse
from pydantic import BaseModel, Field

from sandloop import api
from sandloop.loops.spec_files import SpecError
from sandloop.storage.store import NotFound
from sandloop.web.live import After, LastEventId, StreamSlot, resume_at
from sandloop.web.reads import BlobHash, blob_response
from sandloop.web.served import Served, ServedBy
from sandloop.web.streams import step_events

router = APIRouter(include_in_schema=False)

Permalink = Annotated[str, RoutePath(pattern="^[0-9a-f]{32}$", description="a whole thread id")]
NetworkName = Annotated[str, RoutePath(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
GRID = 24  # outputs on the wall at once


def public(served: ServedBy) -> Served:
    if not served.gallery:
        raise NotFound("the gallery is off on this server")
    return served


Public = Annotated[Served, Depends(public)]


def gallery_run(thread: Permalink, served: Public) -> dict[str, Any]:
    """Only a network run is on the wall: a chat, a dialogue or a recipe is someone's
    conversation or work, never public (the same 404 as an unknown thread)."""
    run = served.find_run(thread)
    if run["thread"] != thread or run.get("kind") != "network":
        raise NotFound(f"no run {thread}")
    if not api.is_public(thread, served.home, store=served.store()):
        raise NotFound(f"no run {thread}")  # private: the same answer as none at all
    return run


GalleryRun = Annotated[dict[str, Any], Depends(gallery_run)]


@router.get("/gallery/{thread}", response_class=HTMLResponse)
def gallery(run: GalleryRun, served: Public) -> str:
    return _page(run, served, "grid")


@router.get("/gallery/{thread}/screen", response_class=HTMLResponse)
def screen(run: GalleryRun, served: Public) -> str:
    return _page(run, served, "screen")


@router.get("/gallery/{thread}/events", response_class=EventSourceResponse)
async def gallery_events(
    run: GalleryRun,
    served: Public,
    _slot: StreamSlot,
    after: After = -1,
    last_event_id: LastEventId = None,
) -> Any:
    thread = str(run["thread"])
    prefix = f"/gallery/{thread}/blobs/"
    cursor = resume_at(after, last_event_id)
    events = step_events(served, thread, cursor, prefix, served.stream_idle_s, public=True)
    async for event in events:
        yield event


@router.get("/gallery/{thread}/blobs/{blob_hash}")
def gallery_blob(run: GalleryRun, blob_hash: BlobHash, served: Public) -> Response:
    """Only the thread's own images: a permalink shows its run and nothing else."""
    store = served.store()
    if blob_hash != run.get("genesis") and not store.has_output(str(run["thread"]), blob_hash):
        raise NotFound(f"no image {blob_hash} in this run")
    return blob_response(store, blob_hash)


@router.get("/submit/{network}", response_class=HTMLResponse)
def submit_page(network: NetworkName, served: Public) -> str:
    _offered(served, network)
    name = html.escape(network)
    return _html(
        f"Start a {name} loop",
        "submit",
        f"""<main class="visitor">
<h1>Start a loop</h1>
<p>Your words become the first input of <strong>{name}</strong>: each model's output is the
next one's input. Then watch where it goes.</p>
<form id="submit" data-action="/submit/{name}">
<label for="prompt">Your prompt</label>
<textarea id="prompt" name="prompt" required maxlength="{served.max_prompt}" rows="3"
 autofocus></textarea>
<button type="submit">Start</button>
<p class="error" id="error" role="alert"></p>
</form>
</main>""",
    )


class Submission(BaseModel):
    prompt: str = Field(max_length=100_000)


@router.post("/submit/{network}", response_model=None)
def submit(
    network: NetworkName, body: Submission, request: Request, served: Public
) -> dict[str, Any] | JSONResponse:
    """A visitor's genesis: length-checked, rate-limited per client (kept as a salted hash in
    memory, never recorded), passed by the moderation recipe if the server has one, and started
    as a new thread with the server's stop and pace."""
    path = _offered(served, network)
    prompt = " ".join(body.prompt.split())
    if not prompt:
        raise SpecError("prompt: empty; type a few words")
    if len(prompt) > served.max_prompt:
        raise SpecError(f"prompt: at most {served.max_prompt} characters")
    wait = served.submissions.allow(request.client.host if request.client else "?")
    if wait is not None:
        return JSONResponse(
            {"detail": f"too many prompts; try again in {wait:.0f} s"},
            429,
            {"Retry-After": str(max(1, round(wait)))},
        )
    if served.moderation is not None:
        declined = api.moderate(prompt, served.moderation, served.home)
        if declined is not None:
            raise SpecError(f"prompt: declined by this gallery's moderation: {declined}")
    fields: dict[str, Any] = {"network": str(path), "genesis": prompt, **served.visitor_run}
    spec = api.run_spec_from(fields, served.home)
    api.publish_start(api.thread_of(spec), served.home)
    started = served.start(
        api.thread_of(spec),
        lambda: api.start_network(spec, served.visitor_launcher, served.home),
        {"name": spec.network.name, "genesis": prompt},
    )
    return {"thread": started.thread, "gallery": f"/gallery/{started.thread}"}


@router.get("/submit/{network}/qr.svg")
def submit_qr(network: NetworkName, request: Request, served: Public) -> Response:
    """The visitor page's address as a QR code (SVG), for the gallery's wall: from the
    server's public address (``SANDLOOP_PUBLIC_URL``, else where it listens), never from the
    request's Host header, which any client may set."""
    import qrcode
    import qrcode.image.svg

    _offered(served, network)
    base = served.public_url or str(request.base_url)
    url = f"{base.rstrip('/')}/submit/{network}"
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, border=2)
    return Response(image.to_string(), media_type="image/svg+xml")


def _offered(served: Served, network: str) -> Any:
    if network not in served.networks:
        raise NotFound(f"no network {network} open to visitors here")
    return served.networks[network]


def _page(run: dict[str, Any], served: Served, layout: str) -> str:
    thread = str(run["thread"])
    name = html.escape(str(run["name"]))
    config = html.escape(
        orjson.dumps({"events": f"/gallery/{thread}/events", "keep": GRID}).decode()
    )
    extra = ""
    if layout == "grid":
        links = f'<a href="/gallery/{thread}/screen">full screen</a>'
        if run["name"] in served.networks:
            submit = f"/submit/{name}"
            extra = f"""<aside class="invite"><img src="{submit}/qr.svg" alt="QR code for {submit}"
 width="120" height="120"><p>Start your own: <a href="{submit}">{submit}</a></p></aside>"""
    else:
        links = f'<a href="/gallery/{thread}">grid</a>'
    genesis = html.escape(str(run.get("genesis") or ""))
    return _html(
        f"{name} · sandloop",
        layout,
        f"""<header><h1>{name}</h1><p class="genesis">{genesis}</p>
<p class="status" id="status" data-state="connecting">connecting…</p>{links}</header>
<main id="outputs" class="outputs" aria-live="polite" data-config="{config}"></main>
{extra}""",
    )


def _html(title: str, layout: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="stylesheet" href="/static/gallery.css"></head>
<body class="{layout}">
{body}
<script src="/static/gallery.js"></script>
</body></html>
"""
