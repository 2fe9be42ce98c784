"""A local Replicate API on 127.0.0.1 for the official `replicate` client.

Speaks `POST /v1/models/{owner}/{name}/predictions` and `POST /v1/predictions` (with `Prefer:
wait`), `GET /v1/predictions/{id}` for polling, `POST /v1/predictions/{id}/cancel`, and serves
output files under `/files/`, like replicate.delivery. Errors are RFC 7807 problem details, as
Replicate sends them. A script of modes shapes the next predictions: 401, 402, 429 (with
Retry-After), 500, slow, malformed, nsfw, failed, poll (answers "starting" first) and expired (the
output URL is gone before the client fetches it). Models whose name contains "llama" (and versioned
refs) stream text tokens; an input image is captioned, or edited by a "kontext" model; a sound is
transcribed as Whisper answers; "musicgen" and "tts" models speak their prompt as a WAV; anything
else draws a PNG of its prompt.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fake_audio import heard, sound_key, tone_for
from tests.fake_images import caption_for, edited, from_data_url, png_for

_FILE_TYPES = {"png": "image/png", "wav": "audio/wav"}


@dataclass
class FakeReplicate:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    script: list[str] = field(default_factory=list)
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # "p0.png" → its bytes
    spoken: dict[str, str] = field(default_factory=dict)  # sound key → the words it says
    downloads: int = 0
    ids: itertools.count[int] = field(default_factory=itertools.count)

    def create(self, model: str, version: str | None, inputs: dict[str, Any]) -> tuple[int, Any]:
        mode = self.script.pop(0) if self.script else "ok"
        problems = {
            "401": (401, "Unauthenticated", "You did not pass a valid authentication token"),
            "402": (402, "Payment required", "Add a payment method to run this model"),
            "429": (429, "Too many requests", "Request was throttled"),
            "500": (500, "Internal server error", "Something went wrong"),
        }
        if mode in problems:
            status, title, detail = problems[mode]
            return status, {"title": title, "detail": detail, "status": status}
        if mode == "slow":
            time.sleep(2.0)
        if mode == "malformed":
            return 201, "this is not a prediction"
        pid = f"p{next(self.ids)}"
        prediction: dict[str, Any] = {
            "id": pid,
            "model": model,
            "version": version or "",
            "input": inputs,
            "logs": "",
            "error": None,
            "metrics": {"predict_time": 0.01},
            "created_at": "2026-11-22T00:00:00Z",
            "urls": {
                "get": f"{self.url}/v1/predictions/{pid}",
                "cancel": f"{self.url}/v1/predictions/{pid}/cancel",
            },
        }
        if mode in ("nsfw", "failed"):
            prediction["status"] = "failed"
            prediction["error"] = (
                "NSFW content detected. Try running it again, or try a different prompt."
                if mode == "nsfw"
                else "prompt must be shorter than 77 tokens"
            )
            prediction["output"] = None
        else:
            prediction["status"] = "succeeded"
            prediction["output"] = self._output(pid, model, inputs, expired=mode == "expired")
        self.predictions[pid] = prediction
        if mode == "poll":
            return 201, {**prediction, "status": "starting", "output": None}
        return 201, prediction

    def _output(self, pid: str, model: str, inputs: dict[str, Any], expired: bool) -> Any:
        prompt = str(inputs.get("prompt", ""))
        if isinstance(inputs.get("audio"), str):
            text = heard(from_data_url(inputs["audio"]), self.spoken)
            return {"transcription": text, "segments": [], "detected_language": "english"}
        if "kontext" in model:
            return self._file(pid, "png", edited(from_data_url(inputs["input_image"]), prompt))
        if isinstance(inputs.get("image"), str):
            return caption_for(from_data_url(inputs["image"]))
        if "llama" in model:
            return [f"{w} " for w in reversed(prompt.split())]
        if "musicgen" in model or "tts" in model:
            sound = tone_for(prompt)
            self.spoken[sound_key(sound)] = prompt
            return self._file(pid, "wav", sound, expired)
        return [self._file(pid, "png", png_for(prompt), expired)]

    def _file(self, pid: str, ext: str, data: bytes, expired: bool = False) -> str:
        if not expired:
            self.files[f"{pid}.{ext}"] = data
        return f"{self.url}/files/{pid}.{ext}"


class _Handler(BaseHTTPRequestHandler):
    state: FakeReplicate

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        if isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if status == 429:
            self.send_header("Retry-After", "2")
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.state.requests.append(
            {
                "path": self.path,
                "body": body,
                "authorization": self.headers.get("Authorization"),
                "prefer": self.headers.get("Prefer"),
            }
        )
        parts = self.path.strip("/").split("/")
        if self.path.endswith("/cancel"):
            prediction = self.state.predictions[parts[2]]
            prediction["status"] = "canceled"
            self._send(200, prediction)
        elif parts[:2] == ["v1", "models"] and parts[-1] == "predictions":
            self._send(*self.state.create(f"{parts[2]}/{parts[3]}", None, body["input"]))
        elif self.path == "/v1/predictions":
            self._send(*self.state.create("versioned/llama", body["version"], body["input"]))
        else:
            self._send(404, {"title": "Not found", "detail": self.path, "status": 404})

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if parts[0] == "files":
            data = self.state.files.get(parts[1])
            self.state.downloads += 1
            if data is None:
                self._send(404, "expired", "text/plain")
            else:
                self._send(200, data, _FILE_TYPES[parts[1].rpartition(".")[2]])
        elif parts[:2] == ["v1", "predictions"] and parts[2] in self.state.predictions:
            self._send(200, self.state.predictions[parts[2]])
        else:
            self._send(404, {"title": "Not found", "detail": self.path, "status": 404})

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start() -> tuple[ThreadingHTTPServer, FakeReplicate]:
    state = FakeReplicate()
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Handler,), {"state": state}))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state
