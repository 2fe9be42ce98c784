"""Chats over HTTP, against uvicorn on a real home with the dummy model: a chat is a dialogue
whose other speaker is the person; replies are dialogue turns with the whole conversation as
context; a deleted message takes what follows with it; an ended chat takes no more; and a chat
exports as a dialogue, the person's words on the user side."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandloop import api
from tests.web.serving import client, serving

pytestmark = pytest.mark.usefixtures("prefect_api_url")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Path:
    return tmp_path_factory.mktemp("chat-home")


@pytest.fixture(scope="module")
def http(home: Path) -> Iterator[httpx.Client]:
    from sandloop.web.app import create_app

    token = api.create_token("run", "ada", home)[0]
    with serving(create_app(home)) as url, client(url, token) as http:
        yield http


def new_chat(http: httpx.Client, **fields: object) -> str:
    made = http.post("/v1/chat", json={"model": "dummy:text", "system": "Be brief.", **fields})
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "registered" and made.json()["messages"] == 0
    return str(made.json()["thread"])


def say(http: httpx.Client, chat: str, content: str) -> dict[str, dict[str, object]]:
    answer = http.post(f"/v1/chat/{chat}/messages", json={"content": content})
    assert answer.status_code == 200, answer.text
    exchange: dict[str, dict[str, object]] = answer.json()
    return exchange


def test_a_chat_is_a_dialogue_with_the_person_as_its_other_speaker(
    http: httpx.Client, home: Path
) -> None:
    chat = new_chat(http, title="balloons")
    first = say(http, chat, "What lifts a balloon?")
    assert first["message"] | {"key": None, "created_at": None} == {
        "turn": 0,
        "actor": "user",
        "model": "human",
        "content": "What lifts a balloon?",
        "key": None,
        "created_at": None,
    }
    assert (first["reply"]["turn"], first["reply"]["actor"]) == (1, "assistant")
    second = say(http, chat[:10], "And a red one?")
    assert (second["message"]["turn"], second["reply"]["turn"]) == (2, 3)

    steps = api.run_steps(chat, home)
    assert list(steps["model"]) == ["human", "dummy:text", "human", "dummy:text"]
    # The reply saw the whole conversation, the person's words as they were typed.
    context = str(steps["input"].iloc[3])
    assert context.startswith("Be brief.\n\nWhat lifts a balloon?")
    assert str(first["reply"]["content"]) in context and "And a red one?" in context

    run = api.list_runs(home).set_index("thread").loc[chat]
    assert (run["kind"], run["status"], run["stop_reason"]) == ("dialogue", "waiting", "your_turn")
    listed = http.get(f"/v1/chat/{chat}/messages").json()
    assert [m["content"] for m in listed][::2] == ["What lifts a balloon?", "And a red one?"]
    assert chat in [c["thread"] for c in http.get("/v1/chat").json()]


def test_a_chat_belongs_to_its_tokens_user_and_an_admin(http: httpx.Client, home: Path) -> None:
    """Issue 37, item 7: a run token of another user deleted a message from someone's chat."""
    chat = new_chat(http)
    say(http, chat, "my own words")
    bob = {"Authorization": f"Bearer {api.create_token('run', 'bob', home)[0]}"}
    root = {"Authorization": f"Bearer {api.create_token('admin', 'root', home)[0]}"}
    api.embed(home)  # the chat's words, searchable
    base = str(http.base_url).rstrip("/")
    with httpx.Client(base_url=base, headers=bob, timeout=60) as other:
        refused = [
            other.get(f"/v1/chat/{chat}/messages"),
            other.post(f"/v1/chat/{chat}/messages", json={"content": "hijack"}),
            other.delete(f"/v1/chat/{chat}/messages/0"),
            other.delete(f"/v1/chat/{chat}"),
            other.get(f"/v1/chat/{chat[:8]}/messages"),  # by prefix, too
            other.get(f"/v1/runs/{chat}"),  # nor as a run
            other.get(f"/v1/runs/{chat}/steps"),
            other.get(f"/v1/runs/{chat}/events"),
            other.post(f"/v1/runs/{chat}/cancel"),
            other.post(f"/v1/runs/{chat}/publish"),
        ]
        theirs = other.get("/v1/chat").json()
        listed = [r["thread"] for r in other.get("/v1/runs", params={"limit": 1000}).json()["runs"]]
        found = other.get("/v1/search", params={"q": "my own words", "k": 100}).json()
    with httpx.Client(base_url=base, headers=root, timeout=60) as admin:
        every = [c["thread"] for c in admin.get("/v1/chat").json()]
        as_run = admin.get(f"/v1/runs/{chat}")
        found_by_admin = admin.get("/v1/search", params={"q": "my own words", "k": 100}).json()
        read = admin.get(f"/v1/chat/{chat}/messages").json()
    assert [r.status_code for r in refused] == [404] * 10
    assert all(r.json()["detail"].startswith(("no chat ", "no run ")) for r in refused)
    assert theirs == [] and chat not in listed
    assert chat not in {hit["thread"] for hit in found}
    assert chat in {hit["thread"] for hit in found_by_admin}
    assert chat in every and read[0]["content"] == "my own words" and as_run.status_code == 200
    kept = http.get(f"/v1/chat/{chat}/messages").json()
    assert len(kept) == 2  # bob's delete took nothing


def test_two_chats_with_the_same_actor_and_words_are_two_threads(http: httpx.Client) -> None:
    one, two = new_chat(http), new_chat(http)
    assert one != two


def test_deleting_a_message_takes_what_follows_and_the_chat_goes_on(
    http: httpx.Client, home: Path
) -> None:
    chat = new_chat(http)
    say(http, chat, "my key is sk-secret-123, oops")
    gone = http.delete(f"/v1/chat/{chat}/messages/0")
    assert gone.json() == {"deleted": 2}
    assert http.get(f"/v1/chat/{chat}/messages").json() == []
    again = say(http, chat, "Let me start over.")
    assert again["message"]["turn"] == 0
    steps = api.run_steps(chat, home)
    assert len(steps) == 2 and not steps["input"].str.contains("sk-secret").any()
    assert http.delete(f"/v1/chat/{chat}/messages/7").status_code == 404


def test_an_ended_chat_keeps_its_record_and_takes_no_more(http: httpx.Client) -> None:
    chat = new_chat(http)
    say(http, chat, "hello")
    ended = http.delete(f"/v1/chat/{chat}")
    assert ended.json()["status"] == "completed" and ended.json()["stop_reason"] == "ended"
    refused = http.post(f"/v1/chat/{chat}/messages", json={"content": "more"})
    assert refused.status_code == 422 and "ended" in refused.json()["detail"]
    assert len(http.get(f"/v1/chat/{chat}/messages").json()) == 2


@pytest.mark.parametrize(
    ("path", "body", "code", "field"),
    [
        ("/v1/chat", {"model": "nope:nothing"}, 422, "model"),
        ("/v1/chat", {"model": "dummy:text", "params": {"vocab": -1}}, 422, "vocab"),
        ("/v1/chat", {"model": "dummy:text", "system": "{{ unknown }}"}, 422, "role"),
        ("/v1/chat/" + "e" * 32 + "/messages", {"content": "hi"}, 404, "e" * 12),
        ("/v1/chat/" + "e" * 32 + "/messages", {"content": ""}, 422, "content"),
    ],
)
def test_bad_chats_name_the_field_and_write_nothing(
    http: httpx.Client, home: Path, path: str, body: dict[str, object], code: int, field: str
) -> None:
    before = len(api.list_runs(home))
    answer = http.post(path, json=body)
    assert answer.status_code == code, answer.text
    assert field in answer.json()["detail"]
    assert len(api.list_runs(home)) == before


def test_a_chat_exports_as_a_dialogue(http: httpx.Client, home: Path, tmp_path: Path) -> None:
    chat = new_chat(http, system="You answer in colours.")
    said = [say(http, chat, text) for text in ("Sky?", "Grass?")]
    http.delete(f"/v1/chat/{chat}")  # a snapshot takes completed runs unless told otherwise
    api.create_snapshot("one-chat", home, thread=chat)
    api.export_snapshot("one-chat", ["openai-chat"], tmp_path / "out", home)
    records = [
        json.loads(line)
        for f in (tmp_path / "out" / "openai-chat").glob("*.jsonl")
        for line in f.read_text().splitlines()
    ]
    (example,) = records
    roles = [m["role"] for m in example["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant"]
    contents = [m["content"] for m in example["messages"]]
    assert contents[1::2] == ["Sky?", "Grass?"]
    assert contents[2::2] == [s["reply"]["content"] for s in said]


def stream_url(http: httpx.Client, chat: str) -> str:
    return str(http.base_url).replace("http://", "ws://").rstrip("/") + f"/v1/chat/{chat}/stream"


def frames_until_reply(socket: Any) -> list[dict[str, Any]]:
    frames = []
    while True:
        frames.append(json.loads(socket.recv(timeout=60)))
        if frames[-1]["type"] in ("reply", "error"):
            return frames


def test_the_stream_sends_the_reply_as_it_is_written(http: httpx.Client) -> None:
    from websockets.sync.client import connect

    chat = new_chat(http)
    headers = {"Authorization": http.headers["Authorization"]}
    with connect(stream_url(http, chat), additional_headers=headers) as socket:
        socket.send(json.dumps({"content": "Tell me of kites."}))
        frames = frames_until_reply(socket)
        socket.send("not json")
        refused = json.loads(socket.recv(timeout=60))
    kinds = [f["type"] for f in frames]
    assert kinds[-2:] == ["message", "reply"] and set(kinds[:-2]) == {"token"}
    assert len(kinds) > 3  # the dummy streams word by word
    reply = frames[-1]
    assert "".join(f["text"] for f in frames[:-2]) == reply["content"]
    assert (frames[-2]["content"], frames[-2]["turn"], reply["turn"]) == ("Tell me of kites.", 0, 1)
    assert refused["type"] == "error" and refused["status"] == 422
    recorded = http.get(f"/v1/chat/{chat}/messages").json()
    assert [m["content"] for m in recorded] == ["Tell me of kites.", reply["content"]]


def test_the_stream_needs_a_run_token(http: httpx.Client, home: Path) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    chat = new_chat(http)
    reader = {"Authorization": f"Bearer {api.create_token('read', 'eve', home)[0]}"}
    for headers, status in (({}, 401), (reader, 403)):
        with pytest.raises(InvalidStatus) as refused:
            connect(stream_url(http, chat), additional_headers=headers)
        assert refused.value.response.status_code == status


def test_a_chat_with_an_openai_compatible_endpoint_streams_its_tokens(
    http: httpx.Client, endpoint: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from websockets.sync.client import connect

    from tests import openai_server

    state, url = endpoint
    monkeypatch.setenv("SANDLOOP_OPENAI_BASE_URL", url)
    chat = new_chat(http, model="openai:llama3")
    headers = {"Authorization": http.headers["Authorization"]}
    with connect(stream_url(http, chat), additional_headers=headers) as socket:
        socket.send(json.dumps({"content": "what lifts a red balloon"}))
        frames = frames_until_reply(socket)
    expected = openai_server.chat_answer("what lifts a red balloon")
    assert frames[-1]["content"] == expected
    tokens = [f["text"] for f in frames if f["type"] == "token"]
    assert len(tokens) == len(expected.split(" ")) and "".join(tokens) == expected
    sent = state.requests[-1]["body"]
    assert sent["stream"] is True and sent["messages"][-1] == {
        "role": "user",
        "content": "what lifts a red balloon",
    }
