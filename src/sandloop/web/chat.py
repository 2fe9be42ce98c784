"""Chats under ``/v1/chat``: a person talking with one actor, recorded as a dialogue. Each
route is a call into `sandloop.api`; a reply is one turn of the dialogue flow, run while the
request waits (a Prefect flow run, its model call a task run). The WebSocket at
``/v1/chat/{chat}/stream`` does the same and sends the reply's text as the model writes it,
where the platform streams."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi import Path as RoutePath
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from sandloop import api
from sandloop.streaming import streaming_to
from sandloop.web import schemas
from sandloop.web.auth import Reader, Runner, reach
from sandloop.web.errors import problem
from sandloop.web.model_refs import check_served_refs
from sandloop.web.served import Served, ServedBy

router = APIRouter()

ChatId = Annotated[str, RoutePath(pattern="^[0-9a-f]{6,32}$", description="a thread or prefix")]
Turn = Annotated[int, RoutePath(ge=0, le=1_000_000)]
FAILED: dict[int | str, dict[str, Any]] = {
    502: {"model": schemas.Problem, "description": "the model gave no reply"}
}


@router.post("/v1/chat", status_code=201, response_model=schemas.Chat)
def start_chat(body: schemas.NewChat, served: ServedBy, grant: Runner) -> dict[str, Any]:
    """Start a chat with a model, route or recipe under a system role; nothing runs until the
    first message. The chat is the token's user's: another user's token gets 404 for it."""
    check_served_refs([body.model], served.models_root(), "model")
    session = None if body.session is None else api.open_session(body.session, served.home)
    run = api.start_chat(
        body.model,
        body.system,
        served.home,
        title=body.title,
        temperature=body.temperature,
        params=body.params,
        session=session,
        owner=grant.user,
    )
    return _chat(run)


@router.get("/v1/chat", response_model=list[schemas.Chat])
def list_chats(served: ServedBy, grant: Reader) -> list[dict[str, Any]]:
    """The token's user's chats, newest first (an admin token: everyone's)."""
    chats = api.list_chats(served.home, store=served.store(), user=reach(grant))
    return [_chat(run) for run in chats]


@router.get("/v1/chat/{chat}/messages", response_model=list[schemas.ChatMessage])
def messages(chat: ChatId, served: ServedBy, grant: Reader) -> list[dict[str, Any]]:
    """A chat's messages in order."""
    said = api.chat_messages(chat, served.home, store=served.store(), user=reach(grant))
    return _messages(said.to_dict(orient="records"))


@router.post("/v1/chat/{chat}/messages", response_model=schemas.Exchange, responses=FAILED)
def say(chat: ChatId, body: schemas.Say, served: ServedBy, grant: Runner) -> dict[str, Any]:
    """Add the person's message and return it with the reply. 409 while another reply to this
    chat is being written; after a 502, sending the same message again asks again."""
    message, reply = api.chat_say(chat, body.content, served.home, user=reach(grant))
    first, second = _messages([message, reply])
    return {"message": first, "reply": second}


@router.delete("/v1/chat/{chat}/messages/{turn}", response_model=schemas.Forgotten)
def forget(chat: ChatId, turn: Turn, served: ServedBy, grant: Runner) -> dict[str, Any]:
    """Delete a message and everything after it; the chat goes on from before it."""
    return {"deleted": api.forget_message(chat, turn, served.home, user=reach(grant))}


@router.delete("/v1/chat/{chat}", response_model=schemas.Chat)
def end(chat: ChatId, served: ServedBy, grant: Runner) -> dict[str, Any]:
    """End a chat: its record stays (and exports as a dialogue); it takes no more messages."""
    return _chat(api.end_chat(chat, served.home, user=reach(grant)))


@router.websocket("/v1/chat/{chat}/stream")
async def stream(websocket: WebSocket, chat: ChatId) -> None:
    """Send ``{"content": …}`` frames; each is answered with ``token`` frames (``text``, as the
    model writes it, where the platform streams), then ``message`` and ``reply`` (the recorded
    pair: the reply's text is authoritative, a retried call repeats its tokens), or ``error``
    (``status``, ``detail``). Needs a run token in the Authorization header."""
    served: Served = websocket.app.state.served
    header = websocket.headers.get("authorization", "")
    grant = websocket.app.state.grants(header.removeprefix("Bearer ").strip())
    if grant is None or not grant.allows("run"):
        status = 401 if grant is None else 403
        detail = "needs a run token: Authorization: Bearer sl_…"
        await websocket.send_denial_response(JSONResponse({"detail": detail}, status))
        return
    await websocket.accept()
    while True:
        try:
            frame = await websocket.receive_json()
            content = schemas.Say.model_validate(frame).content
        except WebSocketDisconnect:
            return
        except (ValidationError, ValueError):  # not JSON, or not a message
            detail = 'content: a frame is {"content": "…"} (1 to 100,000 characters)'
            await websocket.send_json({"type": "error", "status": 422, "detail": detail})
            continue
        await _answer(websocket, served, chat, content, reach(grant))


async def _answer(
    websocket: WebSocket, served: Served, chat: str, content: str, user: str | None
) -> None:
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[str | None] = asyncio.Queue()

    def sink(piece: str) -> None:
        loop.call_soon_threadsafe(pieces.put_nowait, piece)

    def work() -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            with streaming_to(sink):
                return api.chat_say(chat, content, served.home, user=user)
        finally:
            loop.call_soon_threadsafe(pieces.put_nowait, None)

    replying = asyncio.ensure_future(run_in_threadpool(work))
    while (piece := await pieces.get()) is not None:
        await websocket.send_json({"type": "token", "text": piece})
    try:
        message, reply = await replying
    except Exception as exc:
        status, detail = problem(exc)
        await websocket.send_json({"type": "error", "status": status, "detail": detail})
        return
    for kind, row in (("message", message), ("reply", reply)):
        shown = schemas.ChatMessage.model_validate(_messages([row])[0]).model_dump(mode="json")
        await websocket.send_json({"type": kind, **shown})


def _chat(run: dict[str, Any]) -> dict[str, Any]:
    return {**run, "messages": int(run.get("steps") or 0)}


def _messages(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "turn": int(row["turn"])} for row in rows]
