"""Export throughput of image exchanges: N captions (image→text) and N drawings (text→image),
each a distinct 64×64 PNG blob, to openai-chat (vision) and hf (vision, text-to-image).

sandloop's export (pinned read, blob reads, media check, split, redaction, de-duplication,
format checks of every image part, parquet with `datasets` Image features, manifest with
sha256s) against a bare pandas loop: the same rows read from LanceDB into pandas, each blob
read, the vision lines written as JSON with data URLs, and both tables written with pyarrow.
Peak memory in a fresh process (VmHWM).

    python benchmarks/bench_image_export.py [--n 5000]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import _common


def png(i: int) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (64, 64), (i % 256, (i >> 8) % 256, (i >> 16) % 256))
    image.putpixel((i % 64, (i // 64) % 64), (255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def image_step(store: Any, i: int, thread: str, key: str, now: datetime) -> dict[str, Any]:
    """Step ``i`` of an image network: a caption when even, a drawing when odd, with its own
    PNG blob."""
    from sandloop.hashing import hash_value

    blob = store.blobs.put(png(i))
    caption = i % 2 == 0
    text = f"a picture of balloon number {i}"
    return {
        "key": key,
        "realm": "r" * 32,
        "thread": thread,
        "step": i,
        "step_key": hash_value((thread, i)),
        "facet": "dummy",
        "kind": "network",
        "model": "dummy:image-to-text" if caption else "dummy:text-to-image",
        "input": blob if caption else text,
        "input_type": "image" if caption else "text",
        "output": text if caption else blob,
        "output_type": "text" if caption else "image",
        "params": "{}",
        "seed": 1,
        "status": "ok",
        "started_at": now,
        "finished_at": now,
        "latency_ms": 1.0,
        "metadata": "{}",
    }


def build_store(home: Path, n: int) -> None:
    import pyarrow as pa

    from sandloop.hashing import hash_value
    from sandloop.storage.schema import INVOCATIONS
    from sandloop.storage.store import AkashicStore

    store = AkashicStore.open(home)
    now = datetime.now(UTC)
    thread = "t" * 32
    rows = [image_step(store, i, thread, hash_value(i), now) for i in range(2 * n)]
    store.table("invocations").add(pa.Table.from_pylist(rows, schema=INVOCATIONS))
    _common.put_completed_run(store, thread, "bench", 2 * n, now)
    store.compact()


def sandloop_export(home: Path, out: Path) -> float:
    from sandloop.exports import snapshot as snapshots
    from sandloop.exports.writer import ExportOptions, export
    from sandloop.models.registry import load_catalog
    from sandloop.storage.store import AkashicStore

    store = AkashicStore.open(home)
    if snapshots.get(store, "bench", missing_ok=True) is None:
        snapshots.create(store, "bench", snapshots.Selection())
    row = snapshots.get(store, "bench")
    assert row is not None
    started = time.perf_counter()
    options = ExportOptions(("openai-chat", "hf"), out, overwrite=True)
    manifest = export(snapshots.Pinned(store, row), options, load_catalog(None))
    elapsed = time.perf_counter() - started
    assert manifest["counts"]["train"]["by_kind"]["vision"] > 0
    return elapsed


def bare_export(home: Path, out: Path) -> float:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sandloop.storage.store import AkashicStore

    store = AkashicStore.open(home)
    started = time.perf_counter()
    frame = store.select("invocations", columns=["key", "input", "input_type", "output"])
    out.mkdir(parents=True, exist_ok=True)
    vision, drawn = [], []

    def blob(blob_hash: str) -> bytes:  # a plain read of the file, as fast as Python reads
        with open(store.blobs.path(blob_hash), "rb") as handle:
            return handle.read()

    with (out / "vision.jsonl").open("w") as lines:
        for key, given, input_type, made in frame.itertuples(index=False):
            if input_type == "image":
                data = blob(given)
                url = f"data:image/png;base64,{base64.b64encode(data).decode()}"
                user = {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": url}}],
                }
                lines.write(
                    json.dumps({"messages": [user, {"role": "assistant", "content": made}]})
                )
                lines.write("\n")
                vision.append({"key": key, "text": made, "image": data})
            else:
                drawn.append({"key": key, "prompt": given, "image": blob(made)})
    pq.write_table(pa.Table.from_pylist(vision), out / "vision.parquet")
    pq.write_table(pa.Table.from_pylist(drawn), out / "drawn.parquet")
    return time.perf_counter() - started


def peak_rss_mib(home: Path) -> float:
    code = (
        "import tempfile; import bench_image_export as b;"
        f"b.sandloop_export(Path({str(home)!r}), Path(tempfile.mkdtemp()) / 'out')"
    )
    return _common.peak_rss(code)[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000, help="captions, and as many drawings")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="sandloop-bench-images-")) / "home"
    build_store(home, args.n)
    rows = 2 * args.n
    sandloop_s = min(sandloop_export(home, Path(tempfile.mkdtemp()) / "out") for _ in range(3))
    bare_s = min(bare_export(home, Path(tempfile.mkdtemp()) / "out") for _ in range(3))
    print(f"{rows} image exchanges (64x64 PNGs), {time.strftime('%Y-%m-%d')}")
    print(
        f"sandloop export (openai-chat + hf): {rows / sandloop_s:8.0f} rows/s ({sandloop_s:.2f} s)"
    )
    print(f"bare pandas + json + pyarrow:       {rows / bare_s:8.0f} rows/s ({bare_s:.2f} s)")
    print(f"sandloop / bare: {bare_s / sandloop_s:.2f}x; peak RSS {peak_rss_mib(home):.0f} MiB")


if __name__ == "__main__":
    main()
