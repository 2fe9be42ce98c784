"""The task queue against the LanceDB calls it is made of, in one run.

A store of N recorded steps (bare LanceDB adds) and one `rate` task over them, worked to the end
in takes of 5, each subtask answered with a score:

- raw LanceDB: per take, a filtered read of the task's undone subtasks and one merge_insert of
  the leased rows; per answer, a read of the subtask, a merge_insert into scores and one into
  subtasks. The least the queue's bookkeeping can cost on this store.
- `WorkQueue`, called directly, in one thread.
- over HTTP: 8 workers (threads with their own httpx clients) against uvicorn on 127.0.0.1.

    python benchmarks/bench_work_queue.py [--n 500]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))

from tests.web.serving import client, serving

import _common  # noqa: F401 - quiet Prefect settings
import bench_export

TAKE = 5


def raw_lancedb(folder: Path, keys: list[str], compact_every: int | None) -> float:
    """The same reads and merge_inserts the queue makes, on tables of the same schemas;
    ``compact_every`` commits a table is optimized, as the store does (None: never)."""
    import lancedb
    import pyarrow as pa

    from sandloop.storage.schema import SCORES, SUBTASKS

    db = lancedb.connect(folder)
    subtasks = db.create_table("subtasks", schema=SUBTASKS)
    scores = db.create_table("scores", schema=SCORES)
    now = datetime.now(UTC)
    rows = [
        {
            "id": f"{i:032x}",
            "task": "t",
            "key": key,
            "position": i,
            "thread": bench_export.THREAD,
            "step": i,
            "state": "open",
            "attempts": 0,
        }
        for i, key in enumerate(keys)
    ]
    subtasks.add(pa.Table.from_pylist(rows, schema=SUBTASKS))

    commits = {"subtasks": 0, "scores": 0}

    def upsert(table: Any, batch: list[dict[str, object]], schema: pa.Schema) -> None:
        (
            table.merge_insert("id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(pa.Table.from_pylist(batch, schema=schema))
        )
        commits[table.name] += 1
        if compact_every and commits[table.name] % compact_every == 0:
            table.optimize()

    started = time.perf_counter()
    while True:
        free = subtasks.search().where("task = 't' AND state != 'done'").to_arrow().to_pylist()
        free.sort(key=lambda r: r["position"])
        if not free:
            break
        lease = secrets.token_hex(16)
        taken = [
            {**r, "state": "leased", "lease": lease, "lease_expires": now + timedelta(60)}
            for r in free[:TAKE]
        ]
        upsert(subtasks, taken, SUBTASKS)
        for row in taken:
            (current,) = subtasks.search().where(f"id = '{row['id']}'").to_arrow().to_pylist()
            assert current["lease"] == lease
            score = {"id": row["id"], "kind": "rating", "key": row["key"], "thread": "t"}
            upsert(scores, [{**score, "step": row["step"], "score": 3.0, "by": "user:w"}], SCORES)
            upsert(subtasks, [{**current, "state": "done", "result": '{"score":3}'}], SUBTASKS)
    return time.perf_counter() - started


def queue_direct(home: Path, keys: list[str]) -> float:
    from sandloop import api

    queue = api.work_queue(home)
    task, _ = queue.create("direct", "rate", keys)
    started = time.perf_counter()
    while (lease := queue.take(str(task["id"]), "w", TAKE, 60)) is not None:
        for row in lease.subtasks:
            queue.complete(str(task["id"]), str(row["key"]), lease.token, {"score": 3})
    elapsed = time.perf_counter() - started
    assert queue.task(str(task["id"]))["done"] == len(keys)
    return elapsed


def over_http(home: Path, keys: list[str], workers: int) -> float:
    from sandloop import api
    from sandloop.web.app import create_app

    token, _ = api.create_token("run", "bench", home)
    with serving(create_app(home)) as url, client(url, token) as http:
        task = http.post("/v1/tasks", json={"name": "http", "kind": "rate", "keys": keys}).json()

        def work(worker: str) -> None:
            with client(url, token) as own:
                while True:
                    taken = own.post(
                        f"/v1/tasks/{task['id']}/subtasks/take",
                        json={"worker_id": worker, "max": TAKE, "lease_s": 60},
                    )
                    if taken.status_code == 204:
                        return
                    lease = taken.json()
                    for item in lease["subtasks"]:
                        own.put(
                            f"/v1/tasks/{task['id']}/subtasks/{item['id']}",
                            json={"lease_token": lease["lease_token"], "result": {"score": 3}},
                        ).raise_for_status()

        started = time.perf_counter()
        crew = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(workers)]
        for worker in crew:
            worker.start()
        for worker in crew:
            worker.join()
        elapsed = time.perf_counter() - started
        assert http.get(f"/v1/tasks/{task['id']}").json()["done"] == len(keys)
    return elapsed


def main() -> None:
    from sandloop import api

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sandloop-bench-queue-"))
    home = root / "home"
    bench_export.build_store(home, args.n)
    keys = [str(k) for k in api.run_steps(bench_export.THREAD, home)["key"]]
    raw = raw_lancedb(root / "raw", keys, compact_every=None)
    compacted = raw_lancedb(root / "raw-compacted", keys, compact_every=100)
    direct = queue_direct(home, keys)
    http = over_http(home, keys, args.workers)
    n = len(keys)
    print(f"{n} subtasks taken {TAKE} at a time and rated, {time.strftime('%Y-%m-%d')}")
    print(f"raw LanceDB reads and merge_inserts: {raw:6.1f} s  {n / raw:6.1f} subtasks/s")
    print(
        f"raw, compacted every 100 commits:    {compacted:6.1f} s  {n / compacted:6.1f} subtasks/s"
    )
    for name, took in (("WorkQueue, direct:", direct), (f"HTTP, {args.workers} workers:", http)):
        print(
            f"{name:37s}{took:6.1f} s  {n / took:6.1f} subtasks/s"
            f" | {compacted / took:.2f}x the compacted raw, {raw / took:.2f}x the raw"
        )


if __name__ == "__main__":
    main()
