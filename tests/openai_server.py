"""A local OpenAI-compatible endpoint on 127.0.0.1 for the official `openai` client.

Speaks `POST /v1/embeddings` (float encoding) like OpenAI, Ollama or vLLM do, records each
request (headers included, so tests can check where a key went), and can answer with errors.
Its vectors are deterministic features of the words, so similar texts get similar vectors.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DIM = 24


def vector(text: str) -> list[float]:
    out = [0.0] * DIM
    for word in text.lower().split():
        digest = hashlib.sha256(word.encode()).digest()
        out[digest[0] % DIM] += 1.0
    return out


@dataclass
class FakeOpenAI:
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_with: int | None = None  # an HTTP status to answer with instead


class _Handler(BaseHTTPRequestHandler):
    state: FakeOpenAI

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.state.requests.append(
            {"path": self.path, "body": body, "authorization": self.headers.get("Authorization")}
        )
        if self.state.fail_with is not None:
            status = self.state.fail_with
            payload: dict[str, Any] = {"error": {"message": f"status {status}", "type": "x"}}
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
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start() -> tuple[ThreadingHTTPServer, FakeOpenAI, str]:
    state = FakeOpenAI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Handler,), {"state": state}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state, f"http://127.0.0.1:{server.server_address[1]}/v1"
