"""The checks the hardened store adds to its read paths, against the raw libraries they wrap.

- Reading a write-ahead log: every line is checked against the invocations schema (and bad lines
  set aside) before it can reach LanceDB, where before it was only `orjson.loads`.
- Reading a table into pandas: missing strings become None (pandas 3 gives NaN), where before it
  was a bare `Table.to_pandas()`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import invocation_rows, median_seconds

LOG_LINES = 2_000  # a thread's log holds at most SANDLOOP_FLUSH_EVERY (64) lines; a crash, more
TABLE_ROWS = 100_000
REPEATS = 7


def main() -> None:
    import orjson
    import pyarrow as pa

    from sandloop.storage.lance_io import to_frame
    from sandloop.storage.schema import INVOCATIONS
    from sandloop.storage.wal import read_log_checked

    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "t.jsonl"
        rows = invocation_rows(LOG_LINES)
        log.write_bytes(
            b"".join(orjson.dumps(r, option=orjson.OPT_NAIVE_UTC) + b"\n" for r in rows)
        )

        def raw_log() -> None:
            [orjson.loads(line) for line in log.read_bytes().splitlines() if line.strip()]

        def checked_log() -> None:
            contents = read_log_checked(log)
            assert len(contents.rows) == LOG_LINES and not contents.bad

        raw_s = median_seconds(raw_log, REPEATS)
        checked_s = median_seconds(checked_log, REPEATS)
    print(f"write-ahead log, {LOG_LINES} lines, median of {REPEATS}:")
    print(f"  orjson.loads per line:            {raw_s * 1e6 / LOG_LINES:6.2f} us/line")
    print(f"  read_log_checked (schema checked): {checked_s * 1e6 / LOG_LINES:6.2f} us/line")
    print(f"  ratio: {checked_s / raw_s:.2f}x")

    clean = invocation_rows(TABLE_ROWS)
    # 1 step in 100 failed (no output) and each 100-step thread starts with no parent: the
    # output and parent_key columns then hold nulls and become Python objects.
    failing = [
        {**r, "output": None, "parent_key": None} if i % 100 == 0 else r
        for i, r in enumerate(clean)
    ]
    for label, rows in (("no nulls in text columns", clean), ("1% failed steps", failing)):
        table = pa.Table.from_pylist(rows, schema=INVOCATIONS)
        bare_s = median_seconds(table.to_pandas, REPEATS)
        framed_s = median_seconds(lambda table=table: to_frame(table), REPEATS)
        print(f"table to pandas, {TABLE_ROWS} rows, {label}, median of {REPEATS}:")
        print(f"  pyarrow Table.to_pandas:          {bare_s * 1e3:7.1f} ms")
        print(f"  store.to_frame (None, not NaN):   {framed_s * 1e3:7.1f} ms")
        print(f"  ratio: {framed_s / bare_s:.2f}x")


if __name__ == "__main__":
    main()
