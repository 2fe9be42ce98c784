"""The journal of a home on object storage: thread leases and one object per step.

**Leases.** A thread's writer holds ``_leases/<thread>.json``: its owner, a fencing token and an
expiry, written only with conditional puts (create-if-absent, replace-if-unchanged), so of two
machines racing for a thread exactly one wins. The holder renews it every third of its
lifetime; a writer that dies (SIGKILL, a lost machine) stops renewing, and after the expiry any
worker may take the thread over, with the token one higher. Chosen over Prefect's concurrency
slots with ``lease_duration`` because the lease must guard the store's commits whoever writes
them (notebooks, CLI runs without a server, two Prefect servers), and because it lives beside
the data it fences: no second system has to agree.

**Fencing.** A writer that was paused or cut off past its lease (a stale writer) must not
commit. It checks its own lease on this machine's monotonic clock before every step it records
(with a quarter of the lifetime as margin against clock skew, so it gives up before anyone can
take over), and it reads the lease back from the store before every fold into LanceDB, refusing
if the token is no longer its own.

**Steps.** Each step is one object ``_wal/<thread>/<step>-<key>.json``, created only if absent:
durable on the shared store as soon as the put returns, and idempotent by key. Batches are
folded into LanceDB by the writer (or, after a crash, by the next one), then deleted.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, TypeVar

import obstore
import orjson
from obstore.exceptions import (
    AlreadyExistsError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)

from sandloop.storage.errors import StoreError, StoreUnavailable
from sandloop.storage.location import Location
from sandloop.storage.wal import BadLine, ThreadLocked, decode_row, locked_message

log = logging.getLogger("sandloop.store")
T = TypeVar("T")

DEFAULT_LEASE_S = 30.0


class LeaseLost(ThreadLocked):
    """This writer's lease expired or was taken over: it may not record anything more."""


def unavailable(exc: BaseException, location: str) -> StoreUnavailable:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    first = first.split(" in ", 1)[0] if "Error performing" in first else first
    return StoreUnavailable(
        f"the object store of home {location} stopped answering ({first[:200]}); every step "
        "recorded so far is kept: run the same command again once it answers"
    )


_UNREACHABLE = ("error sending request", "connection refused", "tcp connect error", "timed out")


def is_unreachable(exc: BaseException) -> bool:
    """A failure to reach the object store at all (LanceDB's errors say so only in text)."""
    text = str(exc).lower()
    return any(sign in text for sign in _UNREACHABLE)


def _reaching(method: Callable[..., T]) -> Callable[..., T]:
    """An object-store failure that outlasted the client's retries, as one line."""

    @functools.wraps(method)
    def wrapper(self: ObjectThreadLog, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except (ThreadLocked, StoreError):
            raise
        except obstore.exceptions.BaseError as exc:
            raise unavailable(exc, self.home) from None

    return wrapper


def connect(location: Location, subpath: str = "akashic", *, patient: bool = True) -> Any:
    """An obstore store at ``<home>/<subpath>``. A patient one (the journal's) backs off for up
    to 30 s, riding out an endpoint restarting mid-run; a probe at opening is not patient, so an
    endpoint that does not answer is a prompt error, not half a minute of silence."""
    from obstore.store import from_url

    config, client = location.obstore_options()
    options: Any = {
        "config": config,
        "client_options": {"timeout": "30s", "connect_timeout": "5s", **client},
        "retry_config": {
            "max_retries": 10 if patient else 2,
            "retry_timeout": timedelta(seconds=30 if patient else 5),
            "backoff": {
                "init_backoff": timedelta(milliseconds=100),
                "max_backoff": timedelta(seconds=5),
                "base": 2,
            },
        },
    }
    return from_url(location.child(subpath), **options)


def describe(exc: BaseException, location: Location) -> str:
    """What went wrong reaching a remote home, as one line that names the fix."""
    text = str(exc)
    endpoint = location.options.get("aws_endpoint", "the default endpoint")
    if "NoSuchBucket" in text or "bucket does not exist" in text.lower():
        return f"the bucket of home {location.url} does not exist; create it or fix the URL"
    if isinstance(exc, UnauthenticatedError | PermissionDeniedError) or any(
        word in text
        for word in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403 Forbidden")
    ):
        return (
            f"the object store refused the credentials for home {location.url}; check "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or SANDLOOP_STORAGE_OPTIONS)"
        )
    if "error sending request" in text or "connect" in text.lower() or "timed out" in text:
        return (
            f"the object store at {endpoint} does not answer (home {location.url}); check "
            "AWS_ENDPOINT_URL and that the server is up"
        )
    first = text.splitlines()[0] if text else type(exc).__name__
    return f"home {location.url}: {first[:300]}"


def probe(location: Location) -> None:
    """Refuse a remote home that cannot be written, or whose store ignores conditional puts:
    LanceDB's commits and the leases rely on them, and without them concurrent writers would
    silently lose commits."""
    store = connect(location, patient=False)
    name = f"_probe/{uuid.uuid4().hex}"
    try:
        obstore.put(store, name, b"probe", mode="create")
        try:
            obstore.put(store, name, b"again", mode="create")
        except (AlreadyExistsError, PreconditionError):
            pass
        else:
            raise StoreError(
                f"the object store of home {location.url} ignores conditional puts "
                "(If-None-Match): concurrent writers would overwrite each other's commits, so it "
                "cannot hold a sandloop home"
            )
        finally:
            obstore.delete(store, name)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(describe(exc, location)) from None


def reach(location: Location) -> None:
    """For readers: the home's bucket answers to these credentials (nothing is written)."""
    try:
        obstore.list_with_delimiter(connect(location, patient=False), "_leases/")
    except Exception as exc:
        raise StoreError(describe(exc, location)) from None


@dataclass(frozen=True)
class Lease:
    owner: str
    token: int
    expires_at: float  # epoch seconds, by the holder's clock
    host: str
    pid: int
    released: bool = False

    def live(self, now: float | None = None) -> bool:
        return not self.released and (now or time.time()) < self.expires_at


def _lease_path(thread: str) -> str:
    return f"_leases/{thread}.json"


def read_lease(store: Any, thread: str) -> tuple[Lease | None, str | None]:
    """The lease and its ETag (what a conditional replace must match)."""
    try:
        result = obstore.get(store, _lease_path(thread))
    except FileNotFoundError:
        return None, None
    data = bytes(result.bytes())
    etag = result.meta.get("e_tag")
    try:
        return Lease(**orjson.loads(data)), etag
    except (orjson.JSONDecodeError, TypeError):
        return None, etag  # unreadable: treated as expired, replaced conditionally


class ObjectThreadLog:
    """The exclusive writer of one thread on a remote home, for as long as its lease holds."""

    def __init__(
        self,
        store: Any,
        thread: str,
        wait_s: float = 0.0,
        lease_s: float = DEFAULT_LEASE_S,
        home: str = "",
    ) -> None:
        self.store = store
        self.home = home
        self.thread = thread
        self.lease_s = lease_s
        self.owner = uuid.uuid4().hex
        self._prefix = f"_wal/{thread}/"
        self._written: dict[str, dict[str, Any]] = {}  # this writer's own objects
        self._folding: list[str] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._lost: str | None = None
        give_up = time.monotonic() + wait_s
        while not self._take():
            if time.monotonic() >= give_up:
                raise ThreadLocked(locked_message(thread))
            time.sleep(0.5)
        self._renewer = threading.Thread(
            target=self._renew_forever, name=f"lease {thread[:12]}", daemon=True
        )
        self._renewer.start()

    # -- the lease ----------------------------------------------------------------------

    def _write_lease(self, lease: Lease, etag: str | None) -> str | None:
        """Create (etag None) or replace-if-unchanged; the new ETag, or None if we lost."""
        mode: Any = "create" if etag is None else {"e_tag": etag}
        try:
            result = obstore.put(
                self.store, _lease_path(self.thread), orjson.dumps(asdict(lease)), mode=mode
            )
        except (AlreadyExistsError, PreconditionError):
            return None
        return str(result["e_tag"])

    def _take(self) -> bool:
        current, etag = read_lease(self.store, self.thread)
        if current is not None and current.live():
            return False
        token = (current.token if current else 0) + 1
        started = time.monotonic()
        lease = Lease(
            self.owner, token, time.time() + self.lease_s, socket.gethostname(), os.getpid()
        )
        new_etag = self._write_lease(lease, etag)
        if new_etag is None:
            return False  # another writer took it between our read and our write
        if current is not None and not current.released:
            log.warning(
                "took over thread %s from a writer on %s (pid %d) whose lease expired",
                self.thread[:12],
                current.host,
                current.pid,
            )
        self.token, self._etag = token, new_etag
        self._valid_until = started + self.lease_s * 0.75
        return True

    def _renew(self) -> None:
        started = time.monotonic()
        if started >= self._valid_until:
            self._lost = "its lease expired before it could be renewed"
            return
        lease = Lease(
            self.owner, self.token, time.time() + self.lease_s, socket.gethostname(), os.getpid()
        )
        etag = self._write_lease(lease, self._etag)
        if etag is None:
            self._lost = "another writer took its lease over"
            return
        self._etag = etag
        self._valid_until = started + self.lease_s * 0.75

    def _renew_forever(self) -> None:
        while not self._closed.wait(self.lease_s / 3):
            with self._lock:
                if self._closed.is_set() or self._lost:
                    return
                try:
                    self._renew()
                except Exception as exc:  # the store is unreachable: try again until expiry
                    log.warning(
                        "could not renew the lease of thread %s: %s",
                        self.thread[:12],
                        str(exc).splitlines()[0],
                    )

    @_reaching
    def check(self) -> None:
        """Refuse to go on unless this writer's lease certainly still holds."""
        if self._lost is None and time.monotonic() >= self._valid_until:
            self._lost = "its lease expired (the process was paused or cut off from the store)"
        if self._lost is None:
            current, _ = read_lease(self.store, self.thread)
            if current is None or current.owner != self.owner or current.token != self.token:
                self._lost = "another writer took its lease over"
        if self._lost is not None:
            raise LeaseLost(
                f"thread {self.thread[:12]}: this process may no longer record it ({self._lost}); "
                "every step recorded so far is kept, and the thread resumes wherever it is run next"
            )

    def _check_local(self) -> None:
        if self._lost is None and time.monotonic() >= self._valid_until:
            self._lost = "its lease expired (the process was paused or cut off from the store)"
        if self._lost is not None:
            self.check()

    # -- steps --------------------------------------------------------------------------

    @_reaching
    def append(self, row: dict[str, Any]) -> None:
        self._check_local()
        name = f"{self._prefix}{int(row['step']):010d}-{row['key']}.json"
        data = orjson.dumps(row, option=orjson.OPT_NAIVE_UTC)
        try:
            obstore.put(self.store, name, data, mode="create")
        except (AlreadyExistsError, PreconditionError):
            # Already there: this writer's retried put, or another writer's record of the same
            # step. The first record stands; one whose output differs ends this writer, so the
            # thread stays one lineage (a resume goes on from what was recorded).
            existing = _read_row(self.store, name, quarantine=False)
            if existing is not None and existing.get("output") != row.get("output"):
                self._lost = f"another writer recorded step {row['step']} first"
                self.check()
            return
        self._written[name] = row

    @_reaching
    def pending(self) -> list[dict[str, Any]]:
        """Every step object of the thread, this writer's from memory, a predecessor's read."""
        rows, self._folding = [], []
        for name in _list(self.store, self._prefix):
            row = self._written.get(name)
            if row is None:
                row = _read_row(self.store, name, quarantine=True)
            if row is not None:
                rows.append(row)
                self._folding.append(name)
        return rows

    @_reaching
    def truncate(self) -> None:
        """Called only after the pending rows are committed to LanceDB."""
        for name in self._folding:
            obstore.delete(self.store, name)
            self._written.pop(name, None)
        self._folding = []

    def close(self) -> None:
        """Let the thread go at once (idempotent), rather than after the lease's expiry."""
        if self._closed.is_set():
            return
        self._closed.set()
        with self._lock:
            if self._lost is not None:
                return
            lease = Lease(
                self.owner, self.token, 0.0, socket.gethostname(), os.getpid(), released=True
            )
            try:
                self._write_lease(lease, self._etag)
            except Exception as exc:
                log.warning(
                    "could not release thread %s (it frees itself when its lease expires): %s",
                    self.thread[:12],
                    str(exc).splitlines()[0],
                )


def _list(store: Any, prefix: str) -> list[str]:
    names = [str(meta["path"]) for batch in obstore.list(store, prefix) for meta in batch]
    return sorted(n for n in names if n.endswith(".json"))


def _read_row(store: Any, name: str, *, quarantine: bool) -> dict[str, Any] | None:
    try:
        data = bytes(obstore.get(store, name).bytes())
    except FileNotFoundError:
        return None  # folded and deleted since it was listed
    try:
        return decode_row(data)
    except BadLine as exc:
        if quarantine:  # moved aside so the thread can go on; a person can look at it
            obstore.put(store, f"_quarantine/{name}", data)
            obstore.delete(store, name)
            log.warning("moved %s aside to _quarantine/: not a step record (%s)", name, exc)
        else:
            log.warning("skipped %s: not a step record (%s)", name, exc)
        return None


class ObjectJournal:
    def __init__(self, location: Location, lease_s: float = DEFAULT_LEASE_S) -> None:
        self.location = location
        self.lease_s = lease_s
        self.store = connect(location)

    def open(self, thread: str, wait_s: float = 0.0) -> ObjectThreadLog:
        try:
            return ObjectThreadLog(self.store, thread, wait_s, self.lease_s, self.location.url)
        except obstore.exceptions.BaseError as exc:
            raise unavailable(exc, self.location.url) from None

    def read(self, thread: str) -> list[dict[str, Any]]:
        rows = []
        for name in _list(self.store, f"_wal/{thread}/"):
            row = _read_row(self.store, name, quarantine=False)
            if row is not None:
                rows.append(row)
        return rows

    def is_live(self, thread: str) -> bool:
        lease, _ = read_lease(self.store, thread)
        return lease is not None and lease.live()

    def abandoned(self) -> list[str]:
        threads = {name.split("/")[1] for name in _list(self.store, "_wal/")}
        return sorted(t for t in threads if not self.is_live(t))
