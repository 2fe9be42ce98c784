"""A local Hugging Face Hub on 127.0.0.1 that speaks the upload protocol `huggingface_hub`
uses for `create_repo` and `upload_folder`: repo creation, the README metadata check
(`/api/validate-yaml`), the preupload check (every file "regular", so contents come inline in
the commit) and the NDJSON commit. It keeps what was
committed per repo, and refuses requests without the expected bearer token with 401."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeHub:
    token: str
    url: str = ""
    repos: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → private, files
    headers_seen: list[str] = field(default_factory=list)
    cards_seen: list[dict[str, Any]] = field(default_factory=list)  # README metadata checked


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub

    def _send(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.hub.headers_seen.append(self.headers.get("Authorization", ""))
        if self.headers.get("Authorization") != f"Bearer {self.hub.token}":
            self._send(401, {"error": "Invalid credentials in Authorization header"})
            return
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts == ["api", "validate-yaml"]:
            self._validate_card(json.loads(body))
            return
        if parts[:3] == ["api", "repos", "create"]:
            request = json.loads(body)
            repo = f"{request['organization']}/{request['name']}"
            if request.get("type") != "dataset":
                self._send(400, {"error": "only dataset repos here"})
            elif repo in self.hub.repos:
                self._send(
                    409,
                    {
                        "error": "You already created this dataset repo",
                        "url": f"{self.hub.url}/datasets/{repo}",
                    },
                )
            else:
                private = request.get("visibility") == "private" or bool(request.get("private"))
                self.hub.repos[repo] = {"private": private, "files": {}, "commits": 0}
                self._send(200, {"url": f"{self.hub.url}/datasets/{repo}"})
            return
        if len(parts) == 6 and parts[:2] == ["api", "datasets"]:
            repo, action = f"{parts[2]}/{parts[3]}", parts[4]
            if repo not in self.hub.repos:
                self._send(404, {"error": "Repository not found"})
            elif action == "preupload":
                files = json.loads(body)["files"]
                modes = [
                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                    for f in files
                ]
                self._send(200, {"files": modes})
            elif action == "commit":
                self._commit(repo, body)
            else:
                self._send(404, {"error": f"no {action}"})
            return
        self._send(404, {"error": f"no route {self.path}"})

    def _validate_card(self, request: dict[str, Any]) -> None:
        """The Hub checks a README's metadata before a commit: a dataset card needs a YAML
        block, and each config a name and data files."""
        import yaml

        content = str(request.get("content", ""))
        if not content.startswith("---\n") or "\n---\n" not in content[4:]:
            self.hub.cards_seen.append({})
            self._send(200, {"warnings": [{"message": "empty or missing yaml metadata"}]})
            return
        metadata = yaml.safe_load(content[4:].split("\n---\n", 1)[0]) or {}
        self.hub.cards_seen.append(metadata)
        errors = [
            {"message": f"configs[{n}] needs config_name and data_files"}
            for n, config in enumerate(metadata.get("configs", []))
            if not config.get("config_name") or not config.get("data_files")
        ]
        if errors:
            self._send(400, {"errors": errors})
        else:
            self._send(200, {"warnings": []})

    def _commit(self, repo: str, body: bytes) -> None:
        stored = self.hub.repos[repo]
        for line in body.splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                value = item["value"]
                assert value["encoding"] == "base64"
                stored["files"][value["path"]] = base64.b64decode(value["content"])
            elif item["key"] != "header":
                self._send(400, {"error": f"unexpected {item['key']}"})
                return
        stored["commits"] += 1
        oid = hashlib.sha1(f"{repo}{stored['commits']}".encode()).hexdigest()
        self._send(
            200,
            {"commitUrl": f"{self.hub.url}/datasets/{repo}/commit/{oid}", "commitOid": oid},
        )

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start(token: str) -> tuple[ThreadingHTTPServer, FakeHub]:
    hub = FakeHub(token)
    handler = type("Handler", (_Handler,), {"hub": hub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, hub
