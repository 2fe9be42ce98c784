"""A local OpenAI-compatible endpoint on 127.0.0.1 for the official `openai` client.

Speaks `POST /v1/embeddings` (float encoding), `POST /v1/chat/completions` (text, or an image
as a data URL for vision models), `POST /v1/images/generations` (base64) like OpenAI, Ollama or
vLLM do, and OpenAI's multipart `POST /v1/images/edits`, `POST /v1/audio/speech` (a WAV, FLAC
or MP3 tone) and `POST /v1/audio/transcriptions`. It records each request (headers included, so
tests can check where a key went), and answers from a script of failures when given one (401,
429 with Retry-After, quota, 500, a slow answer, a malformed body, a content filter).

Embeddings are deterministic features of the words; a chat answer is a deterministic function
of the last user message; a sound it spoke is heard back as the words it was made from, and any
other sound as its length.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fake_audio import heard, seconds_of, sound_key, tone_for
from tests.fake_images import caption_for, edited, from_data_url, png_for

DIM = 24
_SCRIPTED = (
    "/v1/chat/completions",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/audio/speech",
    "/v1/audio/transcriptions",
)
_AUDIO_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg"}


def vector(text: str) -> list[float]:
    out = [0.0] * DIM
    for word in text.lower().split():
        digest = hashlib.sha256(word.encode()).digest()
        out[digest[0] % DIM] += 1.0
    return out


def chat_answer(text: str) -> str:
    words = text.lower().split()
    return " ".join(reversed(words[-6:])) + f" ({len(words)} words)"


def form(content_type: str, raw: bytes) -> dict[str, Any]:
    """A multipart/form-data body: text fields as str, files as {filename, content_type, data}."""
    header = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(header + raw)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        filename = part.get_filename()
        if filename is None:
            fields[name] = payload.decode()
        else:
            fields[name] = {
                "filename": filename,
                "content_type": part.get_content_type(),
                "data": payload,
            }
    return fields


@dataclass
class FakeOpenAI:
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_with: int | None = None  # an HTTP status to answer every request with
    script: list[str] = field(default_factory=list)  # failures for the next chat requests
    chat_delay_s: float = 0.0  # how long each chat answer takes
    in_flight: int = 0  # chat requests being answered right now
    max_in_flight: int = 0  # the most ever answered at once: what a concurrency limit bounds
    spoken: dict[str, str] = field(default_factory=dict)  # sound hash → the words it says
    _counting: threading.Lock = field(default_factory=threading.Lock)

    def enter(self) -> None:
        with self._counting:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._counting:
            self.in_flight -= 1

    def scripted(self, authorization: str | None = None) -> tuple[int, Any, dict[str, str]] | None:
        if not self.script:
            return None
        mode = self.script.pop(0)
        error = {"message": mode, "type": "x", "code": None}
        # "401-echo", "429-masked", …: a provider repeating the key it was sent, as some do.
        mode, _, echo = mode.partition("-")
        mode, _, retry_after = mode.partition(":")  # "429:2": come back in 2 s
        if echo:
            key = (authorization or "").removeprefix("Bearer ")
            shown = key if echo == "echo" else f"{key[:8]}{'*' * 20}…{key[-4:]}"
            error["message"] = f"Incorrect API key provided: {shown}. Key {shown} was refused."
        if mode == "401":
            return 401, {"error": {**error, "code": "invalid_api_key"}}, {}
        if mode == "429":
            wait = retry_after or "0.05"
            return 429, {"error": {**error, "code": "rate_limit_exceeded"}}, {"Retry-After": wait}
        if mode == "quota":
            return 429, {"error": {**error, "code": "insufficient_quota"}}, {}
        if mode == "500":
            return 500, {"error": error}, {}
        if mode == "ok":
            return None
        if mode == "slow":
            time.sleep(1.5)
            return None
        if mode == "malformed":
            return 200, {"unexpected": "shape"}, {}
        if mode == "filtered":
            return 200, _completion("", finish_reason="content_filter"), {}
        raise ValueError(mode)


def _completion(text: str, finish_reason: str = "stop", model: str = "m") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": finish_reason,
                "message": {"role": "assistant", "content": text},
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
    }


class _Handler(BaseHTTPRequestHandler):
    state: FakeOpenAI

    def do_POST(self) -> None:
        if self.path != "/v1/chat/completions":
            self._answer()
            return
        # Counted while it "works", and let go before the answer is sent: a client cannot start
        # its next call before this one is no longer counted, so overlaps are real ones.
        self.state.enter()
        try:
            time.sleep(self.state.chat_delay_s)
        finally:
            self.state.leave()
        self._answer()

    def _answer(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        content_type = self.headers.get("Content-Type", "")
        body = form(content_type, raw) if "multipart" in content_type else json.loads(raw)
        authorization = self.headers.get("Authorization")
        scripted = self.state.scripted(authorization) if self.path in _SCRIPTED else None
        self.state.requests.append(
            {
                "path": self.path,
                "body": body,
                "authorization": authorization,
                "at": time.time(),  # when it was answered (after chat_delay_s)
                "status": scripted[0] if scripted else 200,
            }
        )
        headers: dict[str, str] = {}
        payload: Any
        if scripted is not None:
            status, payload, headers = scripted
        elif self.state.fail_with is not None:
            status = self.state.fail_with
            payload = {"error": {"message": f"status {status}", "type": "x"}}
        elif self.path == "/v1/chat/completions":
            last = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
            if isinstance(last, list):  # vision: [{"type": "text"}, {"type": "image_url"}]
                image = next(p for p in last if p["type"] == "image_url")["image_url"]["url"]
                answer = caption_for(from_data_url(image))
            else:
                answer = chat_answer(last)
            status, payload = 200, _completion(answer, model=body["model"])
        elif self.path == "/v1/images/generations":
            png = base64.b64encode(png_for(body["prompt"])).decode()
            status, payload = 200, {"created": 0, "data": [{"b64_json": png}]}
        elif self.path == "/v1/images/edits":
            png = edited(body["image"]["data"], body["prompt"])
            status, payload = (
                200,
                {"created": 0, "data": [{"b64_json": base64.b64encode(png).decode()}]},
            )
        elif self.path == "/v1/audio/speech":
            fmt = body.get("response_format", "mp3")
            sound = tone_for(body["input"], fmt)
            self.state.spoken[sound_key(sound)] = body["input"]
            self._send(200, sound, _AUDIO_TYPES[fmt], headers)
            return
        elif self.path == "/v1/audio/transcriptions":
            sound = body["file"]["data"]
            seconds = round(seconds_of(sound), 2)
            status, payload = (
                200,
                {
                    "text": heard(sound, self.state.spoken),
                    "usage": {"type": "duration", "seconds": seconds},
                },
            )
        elif self.path != "/v1/embeddings":
            status, payload = 404, {"error": {"message": "not found", "type": "x"}}
        else:
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            status, payload = (
                200,
                {
                    "object": "list",
                    "model": body["model"],
                    "data": [
                        {"object": "embedding", "index": i, "embedding": vector(t)}
                        for i, t in enumerate(inputs)
                    ],
                    "usage": {"prompt_tokens": 1, "total_tokens": 1},
                },
            )
        if status == 200 and body.get("stream") and self.path == "/v1/chat/completions":
            self._stream(payload)
            return
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, completion: dict[str, Any]) -> None:
        """The completion as server-sent chunks, a word at a time, then the usage chunk."""
        choice = completion["choices"][0]
        words = choice["message"]["content"].split(" ")
        base = {k: completion[k] for k in ("id", "created", "model")}
        chunks = [
            {
                **base,
                "object": "chat.completion.chunk",
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": word if i == len(words) - 1 else word + " "},
                        "finish_reason": choice["finish_reason"] if i == len(words) - 1 else None,
                    }
                ],
            }
            for i, word in enumerate(words)
        ]
        chunks.append(
            {**base, "object": "chat.completion.chunk", "choices": [], "usage": completion["usage"]}
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start() -> tuple[ThreadingHTTPServer, FakeOpenAI, str]:
    state = FakeOpenAI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Handler,), {"state": state}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state, f"http://127.0.0.1:{server.server_address[1]}/v1"
