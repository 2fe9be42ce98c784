"""Export of a rated snapshot that mixes text and image steps, to the formats that carry both
(openai-chat: text lines and vision lines with data URLs; hf: the sft, vision and
text-to-image configs), against pandas: the same rows read from LanceDB, each image blob read,
the messages built and written with ``DataFrame.to_json(orient="records", lines=True)`` and
``DataFrame.to_parquet``. Every step is rated and the snapshot is filtered by score
(``--min-score 3``, which keeps every row, so both sides write the same rows). Peak memory
(VmHWM) of the sandloop export in a fresh process.

    python benchmarks/bench_export_mixed.py                 # 100k steps, a tenth of them images
    python benchmarks/bench_export_mixed.py --n 1000000     # the 1M-row figure
"""

from __future__ import annotations

import argparse
import base64
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _common
import bench_export
import bench_image_export

FORMATS = ("openai-chat", "hf")


def add_images(home: Path, n: int) -> None:
    """N image steps (captions and drawings alternating, each a distinct PNG), rated, in a
    second completed network run beside the text steps of ``bench_export.build_store``."""
    import pyarrow as pa

    from sandloop.hashing import hash_value
    from sandloop.storage.schema import INVOCATIONS, SCORES
    from sandloop.storage.store import AkashicStore

    store = AkashicStore.open(home)
    now = datetime.now(UTC)
    thread = "i" * 32
    rows, ratings = [], []
    for i in range(n):
        key = hash_value(("image", i))
        rows.append(bench_image_export.image_step(store, i, thread, key, now))
        ratings.append(bench_export.rating(key, thread, i, now))
    store.table("invocations").add(pa.Table.from_pylist(rows, schema=INVOCATIONS))
    store.table("scores").add(pa.Table.from_pylist(ratings, schema=SCORES))
    _common.put_completed_run(store, thread, "bench-images", n, now)
    store.compact()


def sandloop_export(home: Path, out: Path) -> float:
    from sandloop.exports import snapshot as snapshots
    from sandloop.exports.writer import ExportOptions, export
    from sandloop.models.registry import load_catalog
    from sandloop.storage.store import AkashicStore

    name = bench_export.ensure_snapshot(home, 3)
    store = AkashicStore.open(home)
    row = snapshots.get(store, name)
    assert row is not None
    started = time.perf_counter()
    options = ExportOptions(FORMATS, out, overwrite=True)
    manifest = export(snapshots.Pinned(store, row), options, load_catalog(None))
    elapsed = time.perf_counter() - started
    kinds = manifest["counts"]["train"]["by_kind"]
    assert kinds["network"] and kinds["vision"] and kinds["text-to-image"], kinds
    return elapsed


def pandas_export(home: Path, out: Path) -> float:
    import pandas as pd

    from sandloop.storage.store import AkashicStore

    store = AkashicStore.open(home)
    started = time.perf_counter()
    frame = store.select(
        "invocations", columns=["key", "model", "input", "input_type", "output", "output_type"]
    )

    def blob(blob_hash: str) -> bytes:
        with open(store.blobs.path(blob_hash), "rb") as handle:
            return handle.read()

    texts = frame[(frame["input_type"] == "text") & (frame["output_type"] == "text")]
    captions = frame[frame["input_type"] == "image"]
    drawings = frame[frame["output_type"] == "image"]
    text_messages = [
        [{"role": "user", "content": i}, {"role": "assistant", "content": o}]
        for i, o in zip(texts["input"], texts["output"], strict=True)
    ]
    caption_images = [blob(h) for h in captions["input"]]
    vision_messages = [
        [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image_url",
                        "image_url": {
                            "url": f"data:image/png;base64,{base64.b64encode(d).decode()}"
                        },
                    }
                ],
            },
            {"role": "assistant", "content": o},
        ]
        for d, o in zip(caption_images, captions["output"], strict=True)
    ]
    out.mkdir(parents=True, exist_ok=True)
    chat = pd.DataFrame({"messages": text_messages + vision_messages})
    chat.to_json(out / "train.jsonl", orient="records", lines=True)
    sft = pd.DataFrame({"key": texts["key"], "model": texts["model"], "messages": text_messages})
    sft.to_parquet(out / "sft.parquet")
    vision = pd.DataFrame(
        {
            "key": captions["key"],
            "text": captions["output"],
            "image": [{"bytes": d, "path": None} for d in caption_images],
        }
    )
    vision.to_parquet(out / "vision.parquet")
    drawn = pd.DataFrame(
        {
            "key": drawings["key"],
            "prompt": drawings["input"],
            "image": [{"bytes": blob(h), "path": None} for h in drawings["output"]],
        }
    )
    drawn.to_parquet(out / "drawn.parquet")
    return time.perf_counter() - started


def peak_rss_mib(home: Path, out: Path) -> tuple[float, float]:
    """(peak RSS MiB, seconds) of the sandloop export in a fresh process."""
    code = (
        "import bench_export_mixed as b;"
        f"seconds = b.sandloop_export(Path({str(home)!r}), Path({str(out)!r}))"
    )
    return _common.peak_rss(code)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000, help="steps in all")
    parser.add_argument("--image-share", type=float, default=0.1, help="of them, image steps")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    images = int(args.n * args.image_share)
    root = Path(tempfile.mkdtemp(prefix="sandloop-bench-mixed-"))
    home = root / "store"
    started = time.perf_counter()
    bench_export.build_store(home, args.n - images)
    add_images(home, images)
    print(
        f"built {args.n - images} text and {images} image steps, all rated, in "
        f"{time.perf_counter() - started:.0f} s"
    )
    bench_export.ensure_snapshot(home, 3)
    rss, first = peak_rss_mib(home, root / "rss")
    our_times, their_times = [first], []
    for _ in range(args.repeat):  # interleaved, so a slow minute of the machine hits both
        their_times.append(pandas_export(home, root / "pandas"))
        our_times.append(sandloop_export(home, root / "ours"))
    ours, theirs = min(our_times), min(their_times)
    print(
        f"{args.n} steps ({images} images) → openai-chat + hf, --min-score 3, best of "
        f"{args.repeat}, {time.strftime('%Y-%m-%d')}"
    )
    print(f"pandas read + to_json + to_parquet: {args.n / theirs:9.0f} rows/s ({theirs:.2f} s)")
    print(
        f"sandloop export:                    {args.n / ours:9.0f} rows/s ({ours:.2f} s) "
        f"| ratio {theirs / ours:.2f}x"
    )
    print(f"peak RSS of the sandloop export: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
