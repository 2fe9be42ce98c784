"""A home on object storage (moto's S3 server on 127.0.0.1, in its own process), measured in one
run against the raw libraries on the same endpoint:

- ingest: rows/s through sandloop's store upsert vs bare LanceDB (`merge_insert` on `key`, the
  same operation, and `add`) into a fresh table in the same bucket;
- per step: ms of the write path per step (journal append, a fold every 64 steps) on an
  `s3://` home vs a local home, and vs the alternative the journal replaces, one LanceDB commit
  per step on the same `s3://` home;
- leases: taking and letting go of a thread, and a renewal.

moto is a Python server: absolute numbers are far slower than S3 or MinIO, and both sides of
each ratio pay the same endpoint.

Run: python benchmarks/bench_remote_home.py
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import invocation_rows, median_seconds

ROWS = 100_000
STEPS = 256
REPEATS = 3
FLUSH_EVERY = 64


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            return process, endpoint
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto_server did not start")


def main() -> None:
    process, endpoint = start_moto()
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_REGION": "us-east-1",
        }
    )
    try:
        run(endpoint)
    finally:
        os.killpg(process.pid, signal.SIGTERM)


def run(endpoint: str) -> None:
    import boto3
    import lancedb
    import pyarrow as pa

    from sandloop.storage.location import parse
    from sandloop.storage.schema import INVOCATIONS
    from sandloop.storage.store import AkashicStore

    s3 = boto3.client("s3", endpoint_url=endpoint)

    def fresh_home() -> str:
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=bucket)
        return f"s3://{bucket}/home"

    rows = invocation_rows(ROWS)
    options = parse(fresh_home()).options

    def bare(op: str) -> None:
        db = lancedb.connect(f"{fresh_home()}/akashic", storage_options=options)
        table = db.create_table("invocations", schema=INVOCATIONS)
        batch = pa.Table.from_pylist(rows, schema=INVOCATIONS)
        if op == "add":
            table.add(batch)
        else:
            table.merge_insert(
                "key"
            ).when_matched_update_all().when_not_matched_insert_all().execute(batch)

    def ours() -> None:
        AkashicStore.open(fresh_home()).upsert("invocations", rows)

    bare_merge_s = median_seconds(lambda: bare("merge"), REPEATS)
    bare_add_s = median_seconds(lambda: bare("add"), REPEATS)
    ours_s = median_seconds(ours, REPEATS)

    steps = invocation_rows(STEPS, thread="c" * 32)

    def journal(home: str) -> float:
        store = AkashicStore.open(home)
        log = store.open_thread("c" * 32)
        start = time.perf_counter()
        for i, row in enumerate(steps, 1):
            log.append(row)
            if i % FLUSH_EVERY == 0:
                store.flush(log)
        store.flush(log)
        elapsed = time.perf_counter() - start
        log.close()
        return elapsed / STEPS * 1000

    def per_step_commits(home: str) -> float:
        store = AkashicStore.open(home)
        start = time.perf_counter()
        for row in steps:
            store.upsert("invocations", [row])
        return (time.perf_counter() - start) / STEPS * 1000

    local_ms = statistics.median(journal(tempfile.mkdtemp()) for _ in range(REPEATS))
    remote_ms = statistics.median(journal(fresh_home()) for _ in range(REPEATS))
    commits_ms = per_step_commits(fresh_home())

    home = fresh_home()
    store = AkashicStore.open(home)
    takes, renews = [], []
    for _ in range(20):
        start = time.perf_counter()
        log = store.journal.open(uuid.uuid4().hex)
        log.close()
        takes.append(time.perf_counter() - start)
    log = store.journal.open("d" * 32)
    for _ in range(20):
        start = time.perf_counter()
        log._renew()  # type: ignore[attr-defined]
        renews.append(time.perf_counter() - start)
    log.close()

    print(f"ingest, {ROWS} rows into a fresh table on moto S3, median of {REPEATS}")
    print(f"  bare LanceDB merge_insert:   {ROWS / bare_merge_s:9,.0f} rows/s")
    print(f"  bare LanceDB add:            {ROWS / bare_add_s:9,.0f} rows/s")
    print(f"  sandloop store upsert:       {ROWS / ours_s:9,.0f} rows/s")
    print(f"  ratio sandloop/bare merge:   {bare_merge_s / ours_s:9.2f}x")
    print(f"  ratio sandloop/bare add:     {bare_add_s / ours_s:9.2f}x")
    print(f"write path per step ({STEPS} steps, a fold every {FLUSH_EVERY}), median of {REPEATS}")
    print(f"  local home (fsync'd line):   {local_ms:9.2f} ms/step")
    print(f"  s3:// home (an object/step): {remote_ms:9.2f} ms/step")
    print(f"  s3:// per-step commits:      {commits_ms:9.2f} ms/step")
    print(f"  ratio s3 journal/local:      {remote_ms / local_ms:9.1f}x")
    print(f"  ratio per-step commits/s3 journal: {commits_ms / remote_ms:5.1f}x")
    print(
        f"leases: take + let go {statistics.median(takes) * 1000:.1f} ms, "
        f"renew {statistics.median(renews) * 1000:.1f} ms (median of 20)"
    )


if __name__ == "__main__":
    main()
