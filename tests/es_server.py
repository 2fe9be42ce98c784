"""A local stand-in for an Elasticsearch node, on 127.0.0.1, for the official client.

No Elasticsearch server installs on these machines, so the adapter is tested against this: it
speaks the REST wire format for the calls sandloop makes (index exists/create/mapping/delete,
_bulk, _refresh, _count, _search with knn + filters + match), records every request so tests
can assert their exact shape, and answers kNN by brute-force cosine so results are real.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class FakeElasticsearch:
    indices: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> mappings
    docs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], raw: bytes
    ) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        body: Any = None
        if raw:
            if parts and parts[-1] == "_bulk":
                body = [json.loads(line) for line in raw.splitlines() if line.strip()]
            else:
                body = json.loads(raw)
        with self.lock:
            self.requests.append(Recorded(method, path, query, body))
            return self._route(method, parts, query, body)

    def _route(
        self, method: str, parts: list[str], query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        if parts == ["_bulk"] and method in ("POST", "PUT"):
            return self._bulk(body)
        if not parts:
            return 200, {"version": {"number": "9.0.0"}, "tagline": "You Know, for Search"}
        name = parts[0]
        if len(parts) == 1:
            if method == "HEAD":
                return (200 if name in self.indices else 404), None
            if method == "PUT":
                if name in self.indices:
                    return 400, {
                        "error": {"type": "resource_already_exists_exception"},
                        "status": 400,
                    }
                self.indices[name] = body["mappings"]
                self.docs[name] = {}
                return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}
            if method == "DELETE":
                if name not in self.indices:
                    if query.get("ignore_unavailable") == ["true"]:
                        return 200, {"acknowledged": True}
                    return 404, {"error": {"type": "index_not_found_exception"}, "status": 404}
                del self.indices[name], self.docs[name]
                return 200, {"acknowledged": True}
        if name not in self.indices:
            return 404, {
                "error": {"type": "index_not_found_exception", "index": name},
                "status": 404,
            }
        action = parts[1]
        if action == "_mapping":
            return 200, {name: {"mappings": self.indices[name]}}
        if action == "_refresh":
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if action == "_count":
            return 200, {"count": len(self.docs[name])}
        if action == "_search":
            return 200, self._search(name, body)
        return 400, {"error": {"type": "unsupported", "reason": "/".join(parts)}, "status": 400}

    def _bulk(self, lines: list[dict[str, Any]]) -> tuple[int, Any]:
        items = []
        for action, doc in zip(lines[::2], lines[1::2], strict=True):
            meta = action["index"]
            index, doc_id = meta["_index"], meta["_id"]
            if index not in self.indices:
                items.append(
                    {
                        "index": {
                            "_index": index,
                            "_id": doc_id,
                            "status": 404,
                            "error": {"type": "index_not_found_exception"},
                        }
                    }
                )
                continue
            dims = self.indices[index]["properties"]["vector"]["dims"]
            if len(doc["vector"]) != dims:
                items.append(
                    {
                        "index": {
                            "_index": index,
                            "_id": doc_id,
                            "status": 400,
                            "error": {
                                "type": "document_parsing_exception",
                                "reason": f"expected {dims} dims",
                            },
                        }
                    }
                )
                continue
            created = doc_id not in self.docs[index]
            self.docs[index][doc_id] = doc
            items.append(
                {
                    "index": {
                        "_index": index,
                        "_id": doc_id,
                        "status": 201 if created else 200,
                        "result": "created" if created else "updated",
                    }
                }
            )
        errors = any("error" in item["index"] for item in items)
        return 200, {"took": 1, "errors": errors, "items": items}

    @staticmethod
    def _matches(doc: dict[str, Any], clauses: list[dict[str, Any]]) -> bool:
        for clause in clauses:
            ((kind, spec),) = clause.items()
            ((field_name, value),) = spec.items()
            if kind == "prefix" and not str(doc.get(field_name, "")).startswith(value):
                return False
            if kind == "term" and doc.get(field_name) != value:
                return False
        return True

    def _search(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        knn = body["knn"]
        clauses = knn.get("filter", {}).get("bool", {}).get("filter", [])
        query = np.asarray(knn["query_vector"], dtype=np.float32)
        scored = []
        for doc_id, doc in self.docs[name].items():
            if not self._matches(doc, clauses):
                continue
            vector = np.asarray(doc["vector"], dtype=np.float32)
            cosine = float(vector @ query / (np.linalg.norm(vector) * np.linalg.norm(query)))
            scored.append(((1 + cosine) / 2, doc_id, doc))  # ES's cosine score
        scored.sort(key=lambda t: -t[0])
        scored = scored[: knn["k"]]
        terms = set()
        for should in body.get("query", {}).get("bool", {}).get("should", []):
            terms |= set(should["match"]["text"].lower().split())
        hits = []
        for score, doc_id, doc in scored:
            overlap = len(terms & set(str(doc.get("text") or "").lower().split()))
            source = {k: doc[k] for k in body.get("_source", doc.keys())}
            hits.append(
                {"_index": name, "_id": doc_id, "_score": score + overlap, "_source": source}
            )
        hits.sort(key=lambda h: -h["_score"])
        return {
            "took": 1,
            "timed_out": False,
            "hits": {"total": {"value": len(hits), "relation": "eq"}, "hits": hits[: body["size"]]},
        }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeElasticsearch

    def _serve(self) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        status, payload = self.fake.handle(
            self.command, url.path, parse_qs(url.query), self.rfile.read(length) if length else b""
        )
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Type", "application/vnd.elasticsearch+json;compatible-with=9")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start() -> tuple[ThreadingHTTPServer, FakeElasticsearch, str]:
    fake = FakeElasticsearch()
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, fake, f"http://127.0.0.1:{server.server_address[1]}"
