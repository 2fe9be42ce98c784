"""The task queue under contention: 8 workers over HTTP take from one task of 500 subtasks.
One of them takes a lease and dies; its subtasks lapse, are taken by the others, and its late
answers are refused. Every subtask is done exactly once, and each rating is one scores row."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sandloop import api
from tests.web.serving import client, serving

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api_url")]

WORKERS = 8
SUBTASKS = 500


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Path:
    home = tmp_path_factory.mktemp("contention-home")
    for seed in (1, 2):
        spec = api.run_spec_from(
            {
                "network": {"name": "echo-pair", "models": ["dummy:text", "dummy:text"]},
                "genesis": "a red balloon",
                "seed": seed,
                "stop": {"max_steps": SUBTASKS // 2, "stop_on_repeat": False},
            }
        )
        assert api.run_network(spec, home).steps_total == SUBTASKS // 2
    return home


def work(
    base_url: str, token: str, task: str, worker: str, done: list[str], errors: list[str]
) -> None:
    """Take five at a time until the task is done; on 204 (all held) wait for lapses."""
    with client(base_url, token) as http:
        while True:
            taken = http.post(
                f"/v1/tasks/{task}/subtasks/take",
                json={"worker_id": worker, "max": 5, "lease_s": 30},
            )
            if taken.status_code == 204:
                if http.get(f"/v1/tasks/{task}").json()["done"] == SUBTASKS:
                    return
                time.sleep(0.1)
                continue
            if taken.status_code != 200:
                errors.append(f"take: {taken.status_code} {taken.text}")
                return
            lease = taken.json()
            for item in lease["subtasks"]:
                answer = http.put(
                    f"/v1/tasks/{task}/subtasks/{item['id']}",
                    json={
                        "lease_token": lease["lease_token"],
                        "result": {"score": item["step"] % 5 + 1},
                    },
                )
                if answer.status_code != 200:
                    errors.append(f"put: {answer.status_code} {answer.text}")
                    return
                done.append(item["id"])


def test_eight_workers_do_each_of_500_subtasks_exactly_once(home: Path) -> None:
    from sandloop.web.app import create_app

    token = api.create_token("run", "crew", home)[0]
    threads = list(api.list_runs(home)["thread"].astype(str))
    with serving(create_app(home)) as base_url, client(base_url, token) as http:
        task = http.post(
            "/v1/tasks", json={"name": "rate them all", "kind": "rate", "threads": threads}
        ).json()
        assert task["subtasks"] == SUBTASKS

        # A worker that takes a short lease and dies holding it.
        dead = http.post(
            f"/v1/tasks/{task['id']}/subtasks/take",
            json={"worker_id": "ghost", "max": 5, "lease_s": 1},
        ).json()
        abandoned = [item["id"] for item in dead["subtasks"]]

        done: list[str] = []
        errors: list[str] = []
        crew = [
            threading.Thread(target=work, args=(base_url, token, task["id"], f"w{i}", done, errors))
            for i in range(WORKERS)
        ]
        for worker in crew:
            worker.start()
        for worker in crew:
            worker.join(300)
        assert not errors, errors[:3]
        assert not any(worker.is_alive() for worker in crew)

        counts = Counter(done)
        assert len(counts) == SUBTASKS and max(counts.values()) == 1  # exactly once
        assert set(abandoned) <= set(done)

        late = http.put(
            f"/v1/tasks/{task['id']}/subtasks/{abandoned[0]}",
            json={"lease_token": dead["lease_token"], "result": {"score": 1}},
        )
        assert late.status_code == 409, late.text
        assert (
            http.post(
                f"/v1/tasks/{task['id']}/leases/renew",
                json={"lease_token": dead["lease_token"], "lease_s": 30},
            ).status_code
            == 409
        )
        subtasks: list[dict[str, Any]] = http.get(
            f"/v1/tasks/{task['id']}/subtasks", params={"limit": 1000}
        ).json()

    assert {s["state"] for s in subtasks} == {"done"}
    retaken = {s["id"]: s for s in subtasks if s["id"] in abandoned}
    assert all(s["attempts"] == 2 and s["worker"] != "ghost" for s in retaken.values())
    by_worker = Counter(s["worker"] for s in subtasks)
    assert len(by_worker) > 1  # the work was shared, not done by the first to arrive

    scores = api.open_store(home).select("scores", "by LIKE 'user:w%'")
    assert len(scores) == SUBTASKS and scores["key"].is_unique
    assert set(scores["key"]) == {s["id"] for s in subtasks}
