"""The parquet files of an export: one per (config, split). The hf format lays them out as the
Hub does (``hf/CONFIG/SPLIT-00000-of-00001.parquet``); the trl format's vision file sits beside
its JSONL files (``trl/vision.SPLIT.parquet``), because only parquet keeps an image an image
(`datasets` decodes it from the features in the file's metadata).

Rows arrive one by one (dialogues, recipes, pairs) or as whole tables (network exchanges and
images, built column-wise). Either way they are cut into row groups at fixed row counts, so
the bytes of a file depend on its rows alone, never on how they arrived.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    import pyarrow.parquet as pq

from sandloop.exports.images import HF_IMAGE_SCHEMAS


def _text_schemas() -> dict[str, pa.Schema]:
    """Every column non-nullable: a trainer never meets a missing prompt or side."""
    message = pa.struct(
        [pa.field("role", pa.string(), nullable=False), pa.field("content", pa.string(), False)]
    )
    chat = pa.list_(pa.field("item", message, nullable=False))
    about = [pa.field(name, pa.string(), nullable=False) for name in ("key", "kind", "model")]
    sides = ("prompt", "chosen", "rejected")
    return {
        "sft": pa.schema([*about, pa.field("messages", chat, nullable=False)]),
        "preference": pa.schema(
            [
                *about,
                *(pa.field(s, chat, nullable=False) for s in sides),
                pa.field("source", pa.string(), nullable=False),  # refine, or user:NAME
            ]
        ),
    }


HF_SCHEMAS = _text_schemas()
SCHEMAS = {**HF_SCHEMAS, **HF_IMAGE_SCHEMAS}
#: Rows per row group: 10,000 texts, or 100 images (what `datasets` writes for image data),
#: which also bounds what is held before it is written.
GROUP_ROWS = {"sft": 10_000, "preference": 10_000}
IMAGE_GROUP_ROWS = 100
#: zstd: files about 40% smaller than snappy's (pyarrow's default) for a few percent of the
#: export's time (bench_export_mixed).
COMPRESSION = "zstd"


class HfParquet:
    def __init__(self, root: Path, fmt: str = "hf") -> None:
        self.root, self.fmt = root, fmt
        self.rows: dict[tuple[str, str], list[dict[str, Any]]] = {}  # by (config, split)
        self.tables: dict[tuple[str, str], list[pa.Table]] = {}
        self.writers: dict[tuple[str, str], pq.ParquetWriter] = {}

    def add_row(self, config: str, split: str, record: dict[str, Any]) -> None:
        rows = self.rows.setdefault((config, split), [])
        rows.append(record)
        if len(rows) >= _group_rows(config):
            self._gather(config, split)

    def add_table(self, config: str, split: str, table: pa.Table) -> None:
        if len(table):
            self._gather(config, split)  # rows given one by one came first
            self._hold(config, split, table)

    def close(self) -> None:
        for config, split in {*self.rows, *self.tables}:
            self._gather(config, split)
            held = self.tables.pop((config, split), [])
            if held:
                self._writer(config, split).write_table(pa.concat_tables(held))
        for writer in self.writers.values():
            writer.close()
        self.rows, self.tables, self.writers = {}, {}, {}

    def _gather(self, config: str, split: str) -> None:
        rows = self.rows.pop((config, split), None)
        if rows:
            self._hold(config, split, pa.Table.from_pylist(rows, schema=SCHEMAS[config]))

    def _hold(self, config: str, split: str, table: pa.Table) -> None:
        held = self.tables.setdefault((config, split), [])
        held.append(table)
        group = _group_rows(config)
        if sum(map(len, held)) < group:
            return
        gathered = pa.concat_tables(held)
        whole = len(gathered) - len(gathered) % group
        self._writer(config, split).write_table(gathered.slice(0, whole), row_group_size=group)
        self.tables[(config, split)] = [gathered.slice(whole)] if whole < len(gathered) else []

    def _writer(self, config: str, split: str) -> pq.ParquetWriter:
        writer = self.writers.get((config, split))
        if writer is None:
            import pyarrow.parquet as pq

            path = self.path(config, split)
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = pq.ParquetWriter(str(path), SCHEMAS[config], compression=COMPRESSION)
            self.writers[(config, split)] = writer
        return writer

    def path(self, config: str, split: str) -> Path:
        if self.fmt == "hf":
            return self.root / "hf" / config / f"{split}-00000-of-00001.parquet"
        return self.root / self.fmt / f"{config}.{split}.parquet"


def _group_rows(config: str) -> int:
    return GROUP_ROWS.get(config, IMAGE_GROUP_ROWS)
