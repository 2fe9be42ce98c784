"""The task queue: leases that lapse and are taken again, stale tokens refused, results landing
as records (ratings in the scores table), on a real home with a real run's steps. The queue's
clock is moved by hand, so nothing here sleeps; the HTTP routes are checked against uvicorn."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sandloop import api
from sandloop.storage.store import NotFound
from sandloop.work_queue import QueueError, StaleLease, WorkQueue, lease_hash
from tests.web.serving import client, serving

pytestmark = pytest.mark.usefixtures("prefect_api_url")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Path:
    home = tmp_path_factory.mktemp("queue-home")
    spec = api.run_spec_from(
        {
            "network": {"name": "echo-pair", "models": ["dummy:text", "dummy:text"]},
            "genesis": "a red balloon",
            "seed": 5,
            "stop": {"max_steps": 6, "stop_on_repeat": False},
        }
    )
    assert api.run_network(spec, home).steps_total == 6
    return home


@pytest.fixture(scope="module")
def keys(home: Path) -> list[str]:
    (thread,) = api.list_runs(home)["thread"]
    return [str(k) for k in api.run_steps(str(thread), home)["key"]]


def queue(home: Path, clock: Clock) -> WorkQueue:
    return WorkQueue(api.open_store(home), clock)


def test_a_lapsed_lease_is_taken_again_and_its_first_holder_is_refused(
    home: Path, keys: list[str]
) -> None:
    clock = Clock()
    work = queue(home, clock)
    task, new = work.create("lapse", "label", keys[:3])
    assert new and task["subtasks"] == 3
    first = work.take(task["id"], "ann", 2, 60)
    assert first is not None
    assert [r["key"] for r in first.subtasks] == keys[:2]
    clock.advance(61)
    second = work.take(task["id"], "bob", 5, 60)
    assert second is not None
    assert [r["key"] for r in second.subtasks] == keys[:3]  # the lapsed two come back first
    assert [r["attempts"] for r in second.subtasks] == [2, 2, 1]
    with pytest.raises(StaleLease, match="another worker took it"):
        work.complete(task["id"], keys[0], first.token, {"caption": "late"})
    with pytest.raises(StaleLease, match="holds no subtask"):
        work.renew(task["id"], first.token, 60)
    done = work.complete(task["id"], keys[0], second.token, {"caption": "on time"})
    assert done["state"] == "done" and done["worker"] == "bob"
    assert {k: work.task(task["id"])[k] for k in ("open", "leased", "done")} == {
        "open": 0,
        "leased": 2,
        "done": 1,
    }


def test_a_lapsed_lease_nobody_took_is_still_its_holders_and_can_be_renewed(
    home: Path, keys: list[str]
) -> None:
    clock = Clock()
    work = queue(home, clock)
    task, _ = work.create("renew", "label", keys[:2])
    lease = work.take(task["id"], "ann", 2, 10)
    assert lease is not None
    clock.advance(11)
    assert work.task(task["id"])["open"] == 2  # lapsed: counted as free
    renewed = work.renew(task["id"], lease.token, 30)
    assert renewed.expires_at == clock.now + timedelta(seconds=30)
    assert work.task(task["id"])["leased"] == 2
    clock.advance(20)
    assert work.take(task["id"], "bob", 5, 10) is None  # held by the renewal
    work.complete(task["id"], keys[1], lease.token, {"ok": True})


def test_a_retried_answer_returns_the_done_subtask_and_the_queue_empties(
    home: Path, keys: list[str]
) -> None:
    work = queue(home, Clock())
    task, _ = work.create("retry", "label", keys[:1])
    lease = work.take(task["id"], "ann", 1, 60)
    assert lease is not None
    once = work.complete(task["id"], keys[0], lease.token, {"tag": "sky"})
    again = work.complete(task["id"], keys[0], lease.token, {"tag": "sky"})
    assert again["done_at"] == once["done_at"] and again["result"] == '{"tag":"sky"}'
    other = work.create("retry-other", "label", keys[:1])[0]
    stranger = work.take(other["id"], "bob", 1, 60)
    assert stranger is not None
    with pytest.raises(StaleLease, match="done already"):
        work.complete(task["id"], keys[0], stranger.token, {"tag": "sea"})
    assert work.take(task["id"], "bob", 1, 60) is None


def test_ratings_land_in_the_scores_table_under_the_workers_name(
    home: Path, keys: list[str]
) -> None:
    work = queue(home, Clock())
    task, _ = work.create("rate", "rate", keys[2:4], instructions="1 bad, 5 good")
    lease = work.take(task["id"], "carla", 2, 60)
    assert lease is not None
    done = work.complete(task["id"], keys[2], lease.token, {"score": 4, "note": "vivid"})
    (score,) = api.open_store(home).rows("scores", f"id = '{done['score_id']}'")
    assert (score["key"], score["score"], score["by"], score["note"]) == (
        keys[2],
        4.0,
        "user:carla",
        "vivid",
    )
    for bad, message in [
        ({"score": 6}, "outside 1-5"),
        ({"score": "4"}, "result.score"),
        ({"score": 3, "mood": "x"}, "only score and note"),
    ]:
        with pytest.raises(QueueError, match=message):
            work.complete(task["id"], keys[3], lease.token, bad)
    assert work.task(task["id"])["done"] == 1


def test_posting_a_task_again_names_the_same_task(home: Path, keys: list[str]) -> None:
    work = queue(home, Clock())
    first, new = work.create("same", "label", keys)
    again, new_again = work.create("same", "label", keys)
    assert (new, new_again) == (True, False) and first["id"] == again["id"]
    assert len(work.subtasks(first["id"], limit=1000)) == len(keys)


def test_bad_tasks_are_refused_and_write_nothing(home: Path, keys: list[str]) -> None:
    work = queue(home, Clock())
    store = work.store
    before = (store.count("tasks"), store.count("subtasks"))
    for args, message in [
        (("x", "paint", keys), "unknown kind"),
        (("x", "label", []), "at least one"),
        (("x", "label", [*keys, "f" * 32]), "1 of 7 are not recorded"),
    ]:
        with pytest.raises(QueueError, match=message):
            work.create(*args)
    with pytest.raises(NotFound):
        work.take("0" * 16, "ann", 1, 60)
    with pytest.raises(QueueError, match="max"):
        work.take(work.create("x", "label", keys)[0]["id"], "ann", 0, 60)
    before = (before[0] + 1, before[1] + len(keys))  # that one was made: the take was refused
    assert (store.count("tasks"), store.count("subtasks")) == before


def test_the_store_keeps_a_hash_of_a_lease_token_never_the_token(
    home: Path, keys: list[str]
) -> None:
    work = queue(home, Clock())
    task, _ = work.create("hashes", "label", keys[:1])
    lease = work.take(task["id"], "ann", 1, 60)
    assert lease is not None
    (row,) = work.store.rows("subtasks", f"task = '{task['id']}'")
    assert row["lease"] == lease_hash(lease.token) != lease.token
    stored = b"".join(p.read_bytes() for p in Path(work.store.path).rglob("*") if p.is_file())
    assert lease.token.encode() not in stored


@pytest.fixture(scope="module")
def base_url(home: Path) -> Iterator[str]:
    from sandloop.web.app import create_app

    with serving(create_app(home)) as url:
        yield url


@pytest.fixture(scope="module")
def tokens(home: Path) -> dict[str, str]:
    return {scope: api.create_token(scope, "dora", home)[0] for scope in ("read", "run")}


def test_the_queue_over_http(base_url: str, tokens: dict[str, str], keys: list[str]) -> None:
    with client(base_url, tokens["run"]) as http, client(base_url, tokens["read"]) as reader:
        made = http.post("/v1/tasks", json={"name": "http", "kind": "rate", "keys": keys[:2]})
        assert made.status_code == 201, made.text
        task = made.json()
        assert (task["subtasks"], task["open"], task["created_by"]) == (2, 2, "dora")
        again = http.post("/v1/tasks", json={"name": "http", "kind": "rate", "keys": keys[:2]})
        assert again.status_code == 200 and again.json()["id"] == task["id"]

        taken = http.post(
            f"/v1/tasks/{task['id']}/subtasks/take", json={"worker_id": "w1", "max": 1}
        )
        assert taken.status_code == 200, taken.text
        lease = taken.json()
        (item,) = lease["subtasks"]
        assert item["id"] == keys[0] and item["output"] and item["model"] == "dummy:text"
        assert lease["lease_token"].startswith("lt_")

        put = f"/v1/tasks/{task['id']}/subtasks/{keys[0]}"
        refused = http.put(put, json={"lease_token": "lt_forged", "result": {"score": 5}})
        assert refused.status_code == 409
        stale = http.put(
            f"/v1/tasks/{task['id']}/subtasks/{keys[1]}",
            json={"lease_token": lease["lease_token"], "result": {"score": 5}},
        )
        assert stale.status_code == 409 and "take it first" in stale.json()["detail"]
        bad = http.put(put, json={"lease_token": lease["lease_token"], "result": {"score": 9}})
        assert bad.status_code == 422 and "result.score" in bad.json()["detail"]
        done = http.put(put, json={"lease_token": lease["lease_token"], "result": {"score": 5}})
        assert done.status_code == 200 and done.json()["state"] == "done"
        assert done.json()["result"] == {"score": 5}
        renewed = http.post(
            f"/v1/tasks/{task['id']}/leases/renew",
            json={"lease_token": lease["lease_token"], "lease_s": 60},
        )
        assert renewed.status_code == 409  # its one subtask is done

        rest = http.post(f"/v1/tasks/{task['id']}/subtasks/take", json={"worker_id": "w2"})
        assert rest.status_code == 200
        assert (
            http.post(f"/v1/tasks/{task['id']}/subtasks/take", json={"worker_id": "w3"}).status_code
            == 204
        )

        listed = reader.get(f"/v1/tasks/{task['id']}/subtasks", params={"state": "done"})
        assert [s["id"] for s in listed.json()] == [keys[0]]
        assert "lease" not in listed.json()[0]  # not even its hash
        assert task["id"] in [t["id"] for t in reader.get("/v1/tasks").json()]
        assert (
            reader.post(
                f"/v1/tasks/{task['id']}/subtasks/take", json={"worker_id": "w4"}
            ).status_code
            == 403
        )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "kind": "rate"}, "keys, threads"),
        ({"name": "x", "kind": "paint", "keys": ["a" * 32]}, "kind"),
        ({"name": "x", "kind": "rate", "keys": ["f" * 32]}, "keys"),
        ({"name": "x", "kind": "rate", "threads": ["zzzz"]}, "zzzz"),
        ({"name": "", "kind": "rate", "keys": ["f" * 32]}, "name"),
    ],
)
def test_bad_tasks_over_http_are_422_or_404_naming_the_field(
    base_url: str, tokens: dict[str, str], body: dict[str, object], field: str
) -> None:
    with client(base_url, tokens["run"]) as http:
        before = len(http.get("/v1/tasks").json())
        answer = http.post("/v1/tasks", json=body)
        assert answer.status_code in (404, 422), answer.text
        assert field in answer.text
        assert len(http.get("/v1/tasks").json()) == before
