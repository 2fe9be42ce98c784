"""Recording throughput: rows/s through sandloop's store vs a bare batched LanceDB `add`.

Both start from the same list of Python dicts (what a flow produces) and write to a fresh table.
sandloop's bulk path de-duplicates the batch and does keyed upserts (`merge_insert` on `key`) in
10k-row batches; the per-step path (write-ahead log, then a flush) is measured too.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import invocation_rows, median_seconds

ROWS = 50_000
WAL_ROWS = 2_000
REPEATS = 5


def main() -> None:
    import lancedb

    from sandloop.storage.schema import INVOCATIONS
    from sandloop.storage.store import AkashicStore
    from sandloop.storage.wal import ThreadLog

    rows = invocation_rows(ROWS)

    def bare() -> None:
        db = lancedb.connect(tempfile.mkdtemp())
        table = db.create_table("invocations", schema=INVOCATIONS)
        for start in range(0, ROWS, 10_000):
            table.add(rows[start : start + 10_000])

    def ours() -> None:
        AkashicStore.open(Path(tempfile.mkdtemp())).upsert("invocations", rows)

    wal_rows = rows[:WAL_ROWS]

    def per_step_path() -> None:
        store = AkashicStore.open(Path(tempfile.mkdtemp()))
        log = ThreadLog(store.wal_dir, "b" * 32)
        for row in wal_rows:
            log.append(row)
        store.flush(log)
        log.close()

    bare_s = median_seconds(bare, REPEATS)
    ours_s = median_seconds(ours, REPEATS)
    wal_s = median_seconds(per_step_path, REPEATS)
    print(f"rows: {ROWS}, median of {REPEATS}")
    print(f"bare LanceDB add (10k batches):   {ROWS / bare_s:9,.0f} rows/s")
    print(f"sandloop store upsert (bulk):     {ROWS / ours_s:9,.0f} rows/s")
    print(f"ratio sandloop/bare:              {bare_s / ours_s:9.2f}x")
    print(
        f"sandloop per-step path (WAL fsync per row + one flush), {WAL_ROWS} rows: "
        f"{WAL_ROWS / wal_s:,.0f} rows/s"
    )


if __name__ == "__main__":
    main()
