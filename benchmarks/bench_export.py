"""Export throughput and memory: a snapshot of N network steps to openai-chat JSONL.

sandloop's export (pinned read by key range, split, exact de-duplication, redaction, format
checks, token statistics on a sample, manifest with sha256s) against the same rows read from
LanceDB into pandas and written with `DataFrame.to_json(orient="records", lines=True)`. Every
step is also rated, and the export is timed twice: of a plain snapshot, and of one filtered by
score (`--min-score 3`, which keeps them all, so both sides write the same rows). Peak memory is
measured in a fresh process per size (VmHWM), for 100k and 1M rows, on the scored snapshot.

    python benchmarks/bench_export.py            # 100k: rows/s vs pandas, and peak RSS
    python benchmarks/bench_export.py --million  # also peak RSS at 1M rows
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _common

THREAD = "7" * 32  # a hex thread id, as the API and CLI take them
WORDS = ["amber", "balloon", "cedar", "drift", "ember", "fable"]
WORDS += ["glass", "harbor", "iris", "juniper", "kettle", "lantern"]


def build_store(home: Path, n: int) -> None:
    """N distinct network steps in one completed run, written with bare LanceDB adds."""
    import pyarrow as pa

    from sandloop.hashing import hash_value
    from sandloop.storage.schema import INVOCATIONS, SCORES
    from sandloop.storage.store import AkashicStore

    store = AkashicStore.open(home)
    now = datetime.now(UTC)
    thread = THREAD
    table = store.table("invocations")
    for start in range(0, n, 100_000):
        rows = []
        for i in range(start, min(n, start + 100_000)):
            words = [WORDS[(i >> (3 * j)) % 12] for j in range(8)]
            text = " ".join(words * 4) + f" {i}"
            rows.append(
                {
                    "key": hash_value(i),
                    "parent_key": None,
                    "realm": "r" * 32,
                    "thread": thread,
                    "step": i,
                    "step_key": hash_value(("s", i)),
                    "facet": "dummy:text",
                    "kind": "network",
                    "model": "dummy:text",
                    "input": text,
                    "input_type": "text",
                    "output": text[::-1],
                    "output_type": "text",
                    "params": "{}",
                    "seed": 1,
                    "status": "ok",
                    "error": None,
                    "error_type": None,
                    "started_at": now,
                    "finished_at": now,
                    "latency_ms": 1.0,
                    "flow_run_id": "f",
                    "task_run_id": "t",
                    "metadata": "{}",
                }
            )
        table.add(pa.Table.from_pylist(rows, schema=INVOCATIONS))
    _common.put_completed_run(store, thread, "bench", n, now)
    scores = store.table("scores")
    for start in range(0, n, 100_000):
        ratings = [
            rating(hash_value(i), thread, i, now) for i in range(start, min(n, start + 100_000))
        ]
        scores.add(pa.Table.from_pylist(ratings, schema=SCORES))
    store.compact()


def rating(key: str, thread: str, step: int, now: datetime) -> dict[str, object]:
    """A `scores` row: user:bench's rating of 3, 4 or 5 (all pass ``--min-score 3``)."""
    from sandloop.hashing import hash_value

    return {
        "id": hash_value(("rating", key)),
        "kind": "rating",
        "key": key,
        "other_key": None,
        "thread": thread,
        "step": step,
        "score": 3.0 + step % 3,
        "by": "user:bench",
        "note": None,
        "created_at": now,
    }


def ensure_snapshot(home: Path, min_score: float | None) -> str:
    """Taken before any timing or memory measurement: `snapshot create` is its own command."""
    from sandloop.exports import snapshot as snapshots
    from sandloop.storage.store import AkashicStore

    store = AkashicStore.open(home)
    name = "bench" if min_score is None else "bench-scored"
    if snapshots.get(store, name, missing_ok=True) is None:
        snapshots.create(store, name, snapshots.Selection(min_score=min_score))
    return name


def sandloop_export(home: Path, out: Path, min_score: float | None = None) -> float:
    from sandloop.exports import snapshot as snapshots
    from sandloop.exports.writer import ExportOptions, export
    from sandloop.models.registry import load_catalog
    from sandloop.storage.store import AkashicStore

    name = ensure_snapshot(home, min_score)
    store = AkashicStore.open(home)
    row = snapshots.get(store, name)
    assert row is not None
    started = time.perf_counter()
    manifest = export(
        snapshots.Pinned(store, row),
        ExportOptions(("openai-chat",), out, overwrite=True),
        load_catalog(None),
    )
    elapsed = time.perf_counter() - started
    assert (
        manifest["counts"]["train"]["examples"] + manifest["counts"]["validation"]["examples"] > 0
    )
    return elapsed


def pandas_export(home: Path, out: Path) -> float:
    from sandloop.storage.store import AkashicStore

    store = AkashicStore.open(home)
    started = time.perf_counter()
    frame = store.select("invocations", columns=["input", "output"])
    frame["messages"] = [
        [{"role": "user", "content": i}, {"role": "assistant", "content": o}]
        for i, o in zip(frame["input"], frame["output"], strict=True)
    ]
    out.mkdir(parents=True, exist_ok=True)
    frame[["messages"]].to_json(out / "train.jsonl", orient="records", lines=True)
    return time.perf_counter() - started


def peak_rss_mib(n: int) -> tuple[float, float]:
    """(peak RSS MiB, seconds) of an export in a fresh process."""
    ensure_snapshot(HOMES[n] / "store", 3)
    code = (
        "import bench_export as b;"
        f"seconds = b.sandloop_export(Path({str(HOMES[n] / 'store')!r}), "
        f"Path({str(HOMES[n])!r}) / 'out', min_score=3)"
    )
    return _common.peak_rss(code)


HOMES: dict[int, Path] = {}


def main() -> None:
    sizes = [100_000, 1_000_000] if "--million" in sys.argv else [100_000]
    for n in sizes:
        HOMES[n] = Path(tempfile.mkdtemp(prefix=f"sandloop-bench-export-{n}-"))
        started = time.perf_counter()
        build_store(HOMES[n] / "store", n)
        print(f"built a store of {n} rated steps in {time.perf_counter() - started:.0f} s")
    n = 100_000
    root = HOMES[n]
    home = root / "store"  # exports go beside the home, never inside it
    sandloop_export(home, root / "warm")  # snapshot + first read
    sandloop_export(home, root / "warm", min_score=3)
    ours = min(sandloop_export(home, root / "ours") for _ in range(3))
    scored = min(sandloop_export(home, root / "scored", min_score=3) for _ in range(3))
    theirs = min(pandas_export(home, root / "pandas") for _ in range(3))
    print(f"{n} network steps → openai-chat JSONL, best of 3")
    print(f"pandas read + to_json(lines=True): {n / theirs:9.0f} rows/s ({theirs:.2f} s)")
    print(
        f"sandloop export (checks, manifest): {n / ours:9.0f} rows/s ({ours:.2f} s) "
        f"| ratio {theirs / ours:.2f}x"
    )
    print(
        f"  … of a --min-score 3 snapshot:    {n / scored:9.0f} rows/s ({scored:.2f} s) "
        f"| ratio {theirs / scored:.2f}x"
    )
    for size in sizes:
        rss, seconds = peak_rss_mib(size)
        print(f"peak RSS exporting {size:>9,} rows: {rss:7.0f} MiB ({size / seconds:,.0f} rows/s)")


if __name__ == "__main__":
    main()
