"""A local Hugging Face Inference API on 127.0.0.1 for `huggingface_hub.InferenceClient`.

Answers `POST /models/{org}/{name}` in the HF Inference wire format for the task the test
registers for that model (JSON `{"inputs", "parameters"}` in, or raw bytes for image-to-text
and speech recognition, or base64 in JSON for image-to-image with a prompt; PNG bytes out for
text-to-image and image-to-image, a WAV tone for text-to-speech, which is heard back as the words
it was spoken from). A script of modes shapes the next answers:
401, 402, 429 (with Retry-After), 503, slow and malformed.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fake_audio import heard, sound_key, tone_for
from tests.fake_images import caption_for, edited, png_for

_BYTES_OUT = {
    "text-to-image": "image/png",
    "image-to-image": "image/png",
    "text-to-speech": "audio/wav",
}


@dataclass
class FakeHF:
    url: str = ""
    tasks: dict[str, str] = field(default_factory=dict)  # model id → task
    requests: list[dict[str, Any]] = field(default_factory=list)
    script: list[str] = field(default_factory=list)
    spoken: dict[str, str] = field(default_factory=dict)  # sound key → the words it says

    def answer(self, model: str, body: Any) -> tuple[int, Any]:
        task = self.tasks.get(model, "text-generation")
        if task == "image-to-text":
            return 200, [{"generated_text": caption_for(body)}]
        if task == "automatic-speech-recognition":
            return 200, {"text": heard(body, self.spoken)}
        if task == "image-to-image":
            if isinstance(body, bytes):
                return 200, edited(body, "")
            return 200, edited(base64.b64decode(body["inputs"]), body["parameters"]["prompt"])
        text = str(body["inputs"])
        words = text.split()
        if task == "text-to-image":
            return 200, png_for(text)
        if task == "text-to-speech":
            sound = tone_for(text)
            self.spoken[sound_key(sound)] = text
            return 200, sound
        if task == "text-generation":
            return 200, [{"generated_text": " ".join(reversed(words))}]
        if task == "summarization":
            return 200, [{"summary_text": " ".join(words[:3])}]
        if task == "translation":
            return 200, [{"translation_text": text.upper()}]
        if task == "fill-mask":
            filled = text.replace("[MASK]", "river")
            return 200, [{"sequence": filled, "score": 0.9, "token": 1, "token_str": "river"}]
        if task == "text-classification":
            return 200, [[{"label": "POSITIVE", "score": 0.9}, {"label": "NEGATIVE", "score": 0.1}]]
        if task == "zero-shot-classification":
            labels = body["parameters"]["candidate_labels"]
            ranked = sorted(labels, key=lambda label: (label not in text, label))
            return 200, [{"label": label, "score": 1 / (i + 1)} for i, label in enumerate(ranked)]
        raise ValueError(task)


class _Handler(BaseHTTPRequestHandler):
    state: FakeHF

    def _send(
        self, status: int, payload: Any, headers: dict[str, str] | None = None, model: str = ""
    ) -> None:
        is_bytes = isinstance(payload, bytes)
        data = payload if is_bytes else json.dumps(payload).encode()
        task = self.state.tasks.get(model, "")
        self.send_response(status)
        self.send_header("Content-Type", _BYTES_OUT[task] if is_bytes else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        is_json = (self.headers.get("Content-Type") or "").startswith("application/json")
        body: Any = json.loads(raw) if is_json else raw
        model = self.path.removeprefix("/models/")
        self.state.requests.append(
            {"model": model, "body": body, "authorization": self.headers.get("Authorization")}
        )
        mode = self.state.script.pop(0) if self.state.script else "ok"
        if mode == "401":
            self._send(401, {"error": "Invalid credentials in Authorization header"})
        elif mode == "402":
            self._send(402, {"error": "You have exceeded your monthly included credits"})
        elif mode == "429":
            self._send(429, {"error": "Rate limit reached"}, {"Retry-After": "3"})
        elif mode == "503":
            self._send(503, {"error": "Model is currently loading", "estimated_time": 20.0})
        elif mode == "malformed":
            self._send(200, {"not": "what the task returns"})
        else:
            if mode == "slow":
                time.sleep(2.0)
            status, payload = self.state.answer(model, body)
            self._send(status, payload, model=model)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start() -> tuple[ThreadingHTTPServer, FakeHF]:
    state = FakeHF()
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Handler,), {"state": state}))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state
