"""A home on object storage (moto's S3 server on 127.0.0.1): the store, its journal of step
objects, thread leases with fencing, and the refusals of stores that cannot hold a home."""

from __future__ import annotations

import http.client
import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from _common import invocation_rows
from sandloop.storage.object_log import LeaseLost, read_lease
from sandloop.storage.store import AkashicStore, StoreError
from sandloop.storage.wal import ThreadLocked
from tests import s3_server
from tests.s3_server import S3Server

THREAD = "a" * 32


def row(key: str, step: int, thread: str = THREAD) -> dict[str, Any]:
    return {**invocation_rows(1, thread, step)[0], "key": key, "output": f"out {step}"}


def bucket_of(home: str) -> str:
    return home.removeprefix("s3://").split("/")[0]


def test_tables_blobs_and_pending_steps_live_in_the_bucket(s3: S3Server, s3_home: str) -> None:
    store = AkashicStore.open(s3_home)
    assert store.remote and store.local is None
    log = store.open_thread(THREAD)
    log.append(row("k0", 0))
    log.append(row("k1", 1))
    # Durable on the shared store before any fold: another machine's reader sees both.
    other = AkashicStore.open(s3_home, readonly=True)
    assert list(other.steps(THREAD)["key"]) == ["k0", "k1"]
    assert other.invocations().empty
    store.flush(log)
    log.close()
    assert sorted(other.invocations()["key"]) == ["k0", "k1"]
    assert not s3.keys(bucket_of(s3_home), "home/akashic/_wal/")  # folded, then deleted

    blob = store.blobs.put(b"\x89PNG fake image")
    assert other.blobs.get(blob) == b"\x89PNG fake image"
    assert store.blobs.url(blob).startswith(f"s3://{bucket_of(s3_home)}/home/blobs/")
    absent = "0" * 32
    assert other.blobs.get_many([absent, blob, blob]) == [None, *[b"\x89PNG fake image"] * 2]
    assert other.blobs.get_many([]) == []
    keys = s3.keys(bucket_of(s3_home))
    assert any(k.startswith("home/akashic/invocations.lance/") for k in keys)


def test_a_crashed_writers_steps_are_replayed_by_the_next(s3_home: str) -> None:
    store = AkashicStore.open(s3_home)
    log = store.open_thread(THREAD)
    log.append(row("k0", 0))
    log.append(row("k1", 1))
    log.close()  # released without a fold: what a crash after the puts leaves
    assert store.journal.abandoned() == [THREAD]
    assert AkashicStore.open(s3_home).recover() == 2
    assert sorted(store.invocations()["key"]) == ["k0", "k1"]
    assert store.journal.abandoned() == []


def test_a_second_writer_on_any_machine_is_refused(s3_home: str) -> None:
    first = AkashicStore.open(s3_home).open_thread(THREAD)
    with pytest.raises(ThreadLocked, match="being run by another process"):
        AkashicStore.open(s3_home).open_thread(THREAD)
    assert AkashicStore.open(s3_home).is_live(THREAD)
    first.close()  # let go at once, not after the expiry
    assert not AkashicStore.open(s3_home).is_live(THREAD)
    AkashicStore.open(s3_home).open_thread(THREAD).close()


def test_a_live_writer_keeps_its_lease_past_the_expiry(s3_home: str) -> None:
    store = AkashicStore.open(s3_home, lease_s=2)
    log = store.open_thread(THREAD)
    time.sleep(3)  # past one lifetime: the renewals hold it
    with pytest.raises(ThreadLocked):
        AkashicStore.open(s3_home, lease_s=2).open_thread(THREAD)
    log.append(row("k0", 0))
    store.flush(log)
    log.close()


def test_a_dead_writer_loses_its_lease_and_a_stale_one_cannot_commit(s3_home: str) -> None:
    store = AkashicStore.open(s3_home, lease_s=2)
    stale = store.open_thread(THREAD)
    stale.append(row("k0", 0))
    stale._closed.set()  # type: ignore[attr-defined]  # it stops renewing: paused, or cut off
    # A waiting writer takes over once the lease expires, and replays what the first recorded.
    began = time.monotonic()
    successor = AkashicStore.open(s3_home, lease_s=2).open_thread(THREAD, wait_s=10)
    assert 1 <= time.monotonic() - began < 10
    lease, _ = read_lease(store.journal.store, THREAD)  # type: ignore[attr-defined]
    assert lease is not None and lease.token == 2  # the fencing token went up
    assert list(store.invocations()["key"]) == ["k0"]
    # The stale writer wakes up: it may neither record a step nor fold one into the tables.
    with pytest.raises(LeaseLost, match="may no longer record it"):
        stale.append(row("k1", 1))
    with pytest.raises(LeaseLost):
        store.flush(stale)
    successor.append(row("k1", 1))
    store.flush(successor)
    successor.close()
    frame = store.invocations()
    assert sorted(frame["key"]) == ["k0", "k1"] and frame["key"].is_unique


def test_a_taken_over_writer_is_fenced_off_even_before_its_expiry(s3_home: str) -> None:
    """A lease replaced behind the writer's back (a clock far ahead on another machine): the
    read-back before each fold catches it."""
    store = AkashicStore.open(s3_home, lease_s=30)
    log = store.open_thread(THREAD)
    log.append(row("k0", 0))
    journal: Any = store.journal
    _, etag = read_lease(journal.store, THREAD)
    import obstore
    import orjson

    obstore.put(
        journal.store,
        f"_leases/{THREAD}.json",
        orjson.dumps(
            {"owner": "other", "token": 9, "expires_at": time.time() + 60, "host": "h", "pid": 1}
        ),
        mode={"e_tag": etag},
    )
    with pytest.raises(LeaseLost, match="another writer took its lease over"):
        store.flush(log)
    assert store.invocations().empty


class _DropsConditions(http.server.BaseHTTPRequestHandler):
    """A proxy in front of moto that strips If-None-Match and If-Match: an object store that
    ignores conditional puts, as some S3-compatible servers do."""

    upstream: tuple[str, int]

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("if-none-match", "if-match")
        }
        connection = http.client.HTTPConnection(*self.upstream, timeout=30)
        connection.request(self.command, self.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def careless_endpoint(s3: S3Server) -> Iterator[str]:
    handler = type("Handler", (_DropsConditions,), {"upstream": ("127.0.0.1", s3.port)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_store_that_ignores_conditional_puts_is_refused(
    s3: S3Server, s3_home: str, careless_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", careless_endpoint)
    with pytest.raises(StoreError, match="ignores conditional puts"):
        AkashicStore.open(s3_home)
    assert s3.keys(bucket_of(s3_home)) == []  # the probe cleaned up after itself


@pytest.mark.slow  # its own moto process, with IAM checks on
def test_wrong_credentials_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    server = s3_server.start_process(check_credentials=True)
    try:
        home = f"s3://{server.bucket()}/home"
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        AkashicStore.open(home).open_thread(THREAD).close()  # the right key works
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
        for readonly in (False, True):
            with pytest.raises(StoreError, match="refused the credentials") as caught:
                AkashicStore.open(home, readonly=readonly)
            assert "\n" not in str(caught.value) and "wrong-secret" not in str(caught.value)
    finally:
        server.stop()


def test_an_endpoint_that_does_not_answer_is_one_line(
    s3_home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    for readonly in (False, True):
        with pytest.raises(StoreError, match=r"at http://127\.0\.0\.1:9 does not answer") as caught:
            AkashicStore.open(s3_home, readonly=readonly)
        assert "\n" not in str(caught.value)


def test_a_missing_bucket_is_named(s3_home: str) -> None:
    with pytest.raises(StoreError, match="bucket of home s3://no-such-bucket-x/h does not exist"):
        AkashicStore.open("s3://no-such-bucket-x/h")


def test_a_step_another_writer_recorded_first_stands(s3_home: str) -> None:
    """The same step, recorded by a writer that should not have (a stale one, in the moment
    before it checked its lease): the first record stands, and a writer whose output differs
    stops rather than build on a step the record does not hold."""
    import obstore
    import orjson

    store = AkashicStore.open(s3_home)
    log = store.open_thread(THREAD)
    first = row("k0", 0)
    journal: Any = store.journal
    name = f"_wal/{THREAD}/{0:010d}-k0.json"
    obstore.put(journal.store, name, orjson.dumps(first, option=orjson.OPT_NAIVE_UTC))
    log.append(dict(first))  # the same record again (a retried put): accepted, not doubled
    with pytest.raises(LeaseLost, match="another writer recorded step 0 first"):
        log.append({**first, "output": "something else"})
    assert [r["output"] for r in store.journal.read(THREAD)] == ["out 0"]
