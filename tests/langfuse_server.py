"""A local Langfuse ingestion API on 127.0.0.1 (`POST /api/public/ingestion`, basic auth with
the project's public and secret key). Each event is parsed with the langfuse SDK's own
ingestion models; an event with a field they do not know, or one they reject, is answered as
Langfuse answers it: a 207 with a per-event error. Accepted events are kept by type and body
id, as Langfuse keeps traces and observations, so a re-push updates them. A script of status
codes shapes the next answers (503, 429) to exercise the client's retries."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeLangfuse:
    public_key: str
    secret_key: str
    url: str = ""
    kept: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    requests: int = 0
    script: list[int] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    langfuse: FakeLangfuse

    def _send(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        from langfuse.api.core.pydantic_utilities import parse_obj_as
        from langfuse.api.ingestion.types import IngestionEvent

        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        state = self.langfuse
        state.requests += 1
        if self.path != "/api/public/ingestion":
            self._send(404, {"message": "not found"})
            return
        pair = f"{state.public_key}:{state.secret_key}".encode()
        if self.headers.get("Authorization") != f"Basic {base64.b64encode(pair).decode()}":
            self._send(401, {"message": "Invalid credentials"})
            return
        if state.script:
            self._send(state.script.pop(0), {"message": "try again"})
            return
        successes, errors = [], []
        for event in json.loads(body)["batch"]:
            try:
                parsed = parse_obj_as(IngestionEvent, event)  # type: ignore[arg-type]
                unknown = set(parsed.model_extra or {}) | set(parsed.body.model_extra or {})
                if unknown:
                    raise ValueError(f"unknown fields {sorted(unknown)}")
            except Exception as exc:
                errors.append({"id": event.get("id"), "status": 400, "message": str(exc)[:200]})
                continue
            state.kept[(event["type"], event["body"]["id"])] = event["body"]
            successes.append({"id": event["id"], "status": 201})
        self._send(207, {"successes": successes, "errors": errors})

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start(public_key: str, secret_key: str) -> tuple[ThreadingHTTPServer, FakeLangfuse]:
    state = FakeLangfuse(public_key, secret_key)
    handler = type("Handler", (_Handler,), {"langfuse": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state
