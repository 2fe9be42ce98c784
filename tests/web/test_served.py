"""What an app keeps of the runs it starts: a thread is begun once at a time, a slow start
holds up no other request, and a start that ends without a record is answered as failed."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path

import pytest

from sandloop.storage.store import NotFound
from sandloop.summaries import Started
from sandloop.web.served import Conflict, Served

THREAD = "ab" * 16


def started(done: Future[object]) -> Started:
    return Started(kind="network", thread=THREAD, flow_run_id="f" * 32, done=done)


def test_a_start_that_ends_without_a_record_is_failed_not_starting(tmp_path: Path) -> None:
    served = Served(tmp_path / "home")
    done: Future[object] = Future()
    served.start(THREAD, lambda: started(done), {"name": "echo"})
    assert served.find_run(THREAD)["status"] == "starting"
    done.set_exception(
        RuntimeError("crashed before its first write, key sk-proj-abcdefghijklmnopqrstuvwx123")
    )
    run = served.find_run(THREAD)
    assert (run["status"], run["name"]) == ("failed", "echo")
    assert "crashed before its first write" in run["error"] and "sk-proj" not in run["error"]
    with pytest.raises(NotFound):
        served.find_run("cd" * 16)


def test_a_thread_is_begun_once_and_a_slow_start_blocks_nothing_else(tmp_path: Path) -> None:
    served = Served(tmp_path / "home")
    entered, release = threading.Event(), threading.Event()
    done: Future[object] = Future()

    def slow_begin() -> Started:
        entered.set()
        release.wait(10)
        return started(done)

    first = threading.Thread(target=served.start, args=(THREAD, slow_begin))
    first.start()
    assert entered.wait(10)
    with pytest.raises(Conflict):  # claimed while it is being begun
        served.start(THREAD, slow_begin)
    assert served.lock.acquire(timeout=1)  # not held across begin
    served.lock.release()
    release.set()
    first.join(10)
    with pytest.raises(Conflict):  # and refused while it runs
        served.start(THREAD, slow_begin)
    done.set_result(None)
    assert served.find_run(THREAD)["status"] == "failed"  # ended, yet nothing recorded


def test_a_start_that_raises_frees_its_thread(tmp_path: Path) -> None:
    served = Served(tmp_path / "home")

    def broken() -> Started:
        raise ValueError("bad spec")

    with pytest.raises(ValueError, match="bad spec"):
        served.start(THREAD, broken)
    done: Future[object] = Future()
    assert served.start(THREAD, lambda: started(done)).thread == THREAD
