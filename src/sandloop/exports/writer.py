"""Writing a snapshot as datasets: select, map, redact, split, de-duplicate, check, write.

Streaming: network steps (the bulk of any store) are read from the pinned `invocations` in key
ranges, so memory holds one range at a time; dialogues and recipes are few and read whole.
Deterministic: examples go out in key order and split by a hash of the key, so exporting the
same snapshot twice writes the same bytes. Nothing is half-written: files go to a temporary
folder next to the target and are moved into place only when every check passed.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import statistics
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sandloop import __version__
from sandloop.exports import token_counts
from sandloop.exports.arrow_lists import exchanges
from sandloop.exports.card import card
from sandloop.exports.examples import (
    Example,
    dialogue_examples,
    network_examples,
    passes_checks,
    recipe_examples,
    usable_network_steps,
)
from sandloop.exports.formats import PROVENANCE, WRITERS, formats_problem, provenance
from sandloop.exports.groups import split_groups
from sandloop.exports.hf_parquet import HF_SCHEMAS, HfParquet
from sandloop.exports.images import (
    IMAGE_CHUNK_ROWS,
    IMAGE_FORMATS,
    TEXT_TO_IMAGE,
    VISION,
    examples_of,
    hf_row,
    hf_table,
    image_batch,
    image_chunk_rows,
    image_exchanges,
    image_rows,
    images_pass_checks,
    vision_lines,
)
from sandloop.exports.json_columns import has_odd_control, json_string
from sandloop.exports.language import language_of, language_problem
from sandloop.exports.paths import cannot_write, check_output
from sandloop.exports.redact import Redactor
from sandloop.exports.snapshot import Pinned, SnapshotError
from sandloop.exports.validate import DEFAULT_MAX_TOKENS, Report, check, check_shape
from sandloop.loops.dialogue.spec import DialogueSpec
from sandloop.loops.spec_check import stored
from sandloop.models.registry import Catalog
from sandloop.scoring import preference_pairs
from sandloop.storage.lance_io import scan
from sandloop.storage.store import sql_str

SPLITS = ("train", "validation")
RANGE_ROWS = 25_000  # network rows per spill bucket, roughly: bounds the export's memory
TOKEN_SAMPLE = 2_000  # examples tokenised for the manifest's statistics of a large export
IMAGE_KINDS = (VISION, TEXT_TO_IMAGE)  # examples the token statistics do not count
#: Up to this many examples every one is tokenised and the totals are exact; beyond, a sample
#: of `TOKEN_SAMPLE`. Measured (bench_export, 100k rows): counting all 100k took the export from
#: 1.8x pandas to 0.22x, ~55 us an example, so the exact count stops at 10k (~0.5 s).
EXACT_TOKENS = 10_000
NETWORK_COLUMNS = [
    "key",
    "thread",
    "step",
    "facet",
    "model",
    "input",
    "input_type",
    "output",
    "output_type",
    "status",
]


class ExportError(SnapshotError):
    """Bad export options, an empty selection, or a dataset that failed its checks."""


@dataclass(frozen=True)
class ExportOptions:
    formats: tuple[str, ...]
    out: Path
    val_fraction: float = 0.1
    dedupe: str = "exact"  # none | exact | near
    near_threshold: float = 0.95
    embedding_model: str | None = None  # for near dedupe; default: the most used one
    compress: str | None = None  # None | zstd
    overwrite: bool = False
    allow_invalid: bool = False
    redact: tuple[str, ...] = ()
    max_tokens: int = DEFAULT_MAX_TOKENS
    license: str = "unknown"  # the card's license id (Hub ids: apache-2.0, cc-by-4.0, …)
    language: tuple[str, ...] = ()  # the card's language codes; none: detected where it can be

    def check(self, home: Path | str | None = None) -> None:
        """``home``: the store's, which the output must not overlap."""
        problem = formats_problem(self.formats)  # first: a format's name is part of a path
        if problem is not None:
            raise ExportError(problem)
        check_output(self.out, home, folder=True)
        if not 0 <= self.val_fraction < 1:
            raise ExportError("--val-fraction must be at least 0 and below 1")
        if (problem := language_problem(self.language)) is not None:
            raise ExportError(problem)
        if self.dedupe not in ("none", "exact", "near"):
            raise ExportError("--dedupe is none, exact or near")
        if self.compress not in (None, "zstd"):
            raise ExportError("--compress takes zstd")
        if self.out.exists() and any(self.out.iterdir()) and not self.overwrite:
            raise ExportError(f"{self.out} exists and is not empty; pass --overwrite to replace it")


@dataclass
class Stats:
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (split, kind)
    skipped: Counter[str] = field(default_factory=Counter)
    dedupe: Counter[str] = field(default_factory=Counter)
    pairs: Counter[str] = field(default_factory=Counter)  # preference pairs by their source
    token_sample: dict[str, array[int]] = field(
        default_factory=lambda: {s: array("I") for s in SPLITS}
    )


def _val_threshold(val_fraction: float) -> int:
    return math.ceil(val_fraction * 0x1_0000_0000)


def split_of(key: str, val_fraction: float) -> str:
    """Keys are BLAKE2b hex digests, uniform already: their first 8 hex digits decide."""
    return "validation" if int(key[:8], 16) < _val_threshold(val_fraction) else "train"


@dataclass(frozen=True)
class Split:
    """Which side each example goes to: decided by its thread's group (`exports.groups`), so
    that no prompt is on both sides."""

    groups: dict[str, str]  # thread: group key
    val_fraction: float

    def of(self, example: Example) -> str:
        return split_of(self.groups.get(example.thread, example.key), self.val_fraction)

    def in_validation(self, threads: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
        """`of` over a column of threads (every one of them in ``groups``)."""
        known = pa.array(list(self.groups), pa.string())
        keys = pa.array(list(self.groups.values()), pa.string())
        taken = pc.take(keys, pc.index_in(threads, value_set=known))
        return pc.fill_null(_in_validation(taken, self.val_fraction), False)

    @classmethod
    def of_snapshot(cls, pinned: Pinned, runs: pd.DataFrame, val_fraction: float) -> Split:
        """The groups of the snapshot's threads: by genesis, and by every text prompt a
        network step was given that another thread was given too (the text a dialogue or
        recipe is asked is its genesis). The prompts are read a batch at a time and kept as
        8-byte digests, each with the first thread that had it: memory grows with distinct
        prompts, not with their text."""
        threads = runs["thread"].astype(str)
        genesis = runs["genesis"].where(runs["genesis"].notna(), threads).astype(str)
        network = runs.loc[runs["kind"] == "network", "thread"].astype(str).tolist()
        shared: list[tuple[str, str]] = []
        if len(network) > 1:
            where = "kind = 'network' AND input_type = 'text' AND status = 'ok'"
            wanted = pa.array(network, pa.string())
            first: dict[bytes, str] = {}
            for batch in scan(pinned.table("invocations"), where, ["thread", "input"]).to_batches():
                batch = batch.filter(pc.is_in(batch.column("thread"), wanted))
                texts, owners = (
                    batch.column("input").to_pylist(),
                    batch.column("thread").to_pylist(),
                )
                for text, thread in zip(texts, owners, strict=True):
                    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
                    seen = first.setdefault(digest, thread)
                    if seen != thread:  # two threads were given this prompt: one group
                        shared += [(seen, digest.hex()), (thread, digest.hex())]
        pairs = zip(threads.tolist(), genesis.tolist(), strict=True)
        return cls(split_groups(pairs, shared), val_fraction)


def _in_validation(keys: pa.ChunkedArray, val_fraction: float) -> pa.ChunkedArray:
    """``split_of`` over a whole column: hex prefixes compare as strings."""
    limit = _val_threshold(val_fraction)
    # "~" sorts after every hex digit: a limit of 16^8 puts every key in validation.
    threshold = "~" if limit >= 0x1_0000_0000 else format(limit, "08x")
    return pc.less(pc.utf8_slice_codeunits(keys, 0, 8), threshold)


# Writing openai-chat lines column-wise gives the bytes orjson gives row by row (see
# `exports.json_columns`); buckets with a text it cannot write so go row by row.
COLUMNAR = True


@dataclass
class _Columnar:
    """A bucket of network exchanges that passed every check column-wise."""

    rows: pa.Table


def _chat_lines(rows: pa.Table) -> Any:
    return pc.binary_join_element_wise(
        '{"messages":[{"role":"user","content":"',
        json_string(rows["input"]),
        '"},{"role":"assistant","content":"',
        json_string(rows["output"]),
        '"}]}\n',
        "",
    )


def _in_token_sample(key: str, total: int) -> bool:
    if total <= EXACT_TOKENS:
        return True
    return int(key[-6:], 16) % max(1, total // TOKEN_SAMPLE) == 0


def _token_sample_rows(keys: pa.ChunkedArray, total: int) -> list[int]:
    """The rows of a bucket that `_in_token_sample` picks, found without a Python loop over
    the bucket: the keys' last six hex digits read as numbers from the column's bytes."""
    if total <= EXACT_TOKENS:
        return list(range(len(keys)))
    tails = pc.utf8_slice_codeunits(keys, -6).combine_chunks()
    offsets = np.frombuffer(tails.buffers()[1], np.int32, len(tails) + 1, tails.offset * 4)
    if len(tails) == 0 or not (np.diff(offsets) == 6).all():  # not hex keys: one at a time
        return [i for i, key in enumerate(keys.to_pylist()) if _in_token_sample(key, total)]
    digits = np.frombuffer(tails.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
    values = _HEX_VALUE[digits].reshape(-1, 6) @ (16 ** np.arange(5, -1, -1))
    return np.flatnonzero(values % max(1, total // TOKEN_SAMPLE) == 0).tolist()


_HEX_VALUE = np.zeros(256, np.int64)
_HEX_VALUE[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_HEX_VALUE[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
_HEX_VALUE[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)


def _exchange_hashes(rows: pa.Table) -> list[bytes]:
    """`messages_hash` of each row's user→assistant exchange, so a duplicate is found whichever
    path wrote the first copy: the joined text built column-wise, one BLAKE2b a row."""
    joined = pc.binary_join_element_wise(
        "user\x1f", rows["input"], "\x1eassistant\x1f", rows["output"], "\x1e", ""
    ).cast(pa.binary())
    blake2b = hashlib.blake2b
    return [blake2b(text, digest_size=16).digest() for text in joined.to_pylist()]


def _prefix_width(total: int) -> int:
    """Hex digits of key prefix per spill bucket, so a bucket holds about RANGE_ROWS rows."""
    width = 0
    while total / 16**width > RANGE_ROWS and width < 3:
        width += 1
    return width


class _Examples:
    """Examples of the snapshot, in key order, one key range at a time."""

    def __init__(
        self,
        pinned: Pinned,
        runs: pd.DataFrame,
        stats: Stats,
        redact: Redactor,
        max_tokens: int,
        catalog: Catalog,
    ) -> None:
        self.pinned, self.runs, self.stats, self.redact = pinned, runs, stats, redact
        self.catalog = catalog  # what the recorded dialogue specs are read against
        self.max_tokens = max_tokens
        self.columnar = True  # off for near de-duplication, which needs every example's vector
        self.network_threads = set(runs.loc[runs["kind"] == "network", "thread"])
        self.kept_keys = pinned.passing()  # None: no score filter
        self.pair_keys: pa.Array | None = None
        self.pairs = self._human_pairs(pinned.scores("kind = 'preference'"))
        self.others = sorted(self._kept(list(self._dialogues_and_recipes())), key=lambda e: e.key)

    def _kept(self, examples: list[Example]) -> list[Example]:
        """Dialogue and recipe examples that pass the score filter (by their final output)."""
        if self.kept_keys is None or not examples:
            return examples
        keys = pa.array([e.vector_key or "" for e in examples], pa.string())
        keep = pc.is_in(keys, self.kept_keys).to_pylist()
        self.stats.skipped["below_score_filter"] += keep.count(False)
        return [e for e, kept in zip(examples, keep, strict=True) if kept]

    def _human_pairs(self, scores: pa.Table) -> dict[str, tuple[str, str]]:
        """Preferred key → (the other output, who preferred): the first pair per preferred
        output (by id), with the other side's text read from the pinned invocations."""
        every = preference_pairs(scores)
        beyond = sum(len(found) - 1 for found in every.values())
        if beyond:  # an example has one rejected side
            self.stats.skipped["preference_pair_beyond_the_first_per_output"] += beyond
        pairs = {k: v[0] for k, v in every.items()}
        if not pairs:
            return {}
        others = ", ".join(sql_str(other) for other, _ in pairs.values())
        texts = self.pinned.read("invocations", f"key IN ({others})", ["key", "output"])
        text_of = dict(zip(texts["key"], texts["output"], strict=True))
        missing = sum(other not in text_of for other, _ in pairs.values())
        if missing:
            self.stats.skipped["preference_pair_other_side_not_in_snapshot"] += missing
        return {
            key: (self.redact(str(text_of[other])), by)
            for key, (other, by) in pairs.items()
            if other in text_of
        }

    def _dialogues_and_recipes(self) -> Iterator[Example]:
        dialogues = self.runs[self.runs["kind"] == "dialogue"]
        if not dialogues.empty:
            threads = ", ".join(sql_str(t) for t in dialogues["thread"])
            turns = self.pinned.read("messages", f"thread IN ({threads})")
            for run in dialogues.itertuples(index=False):
                spec = stored(run.spec, DialogueSpec, self.catalog)
                yield from dialogue_examples(spec, run.thread, turns[turns["thread"] == run.thread])
        recipes = self.runs[self.runs["kind"] == "recipe"]
        if not recipes.empty:
            threads = ", ".join(sql_str(t) for t in recipes["thread"])
            calls = self.pinned.read("invocations", f"thread IN ({threads})")
            for run in recipes.to_dict("records"):
                before = self.stats.skipped["recipe_not_accepted"]
                found = list(recipe_examples(run, calls[calls["thread"] == run["thread"]]))
                if not found:
                    self.stats.skipped["recipe_not_accepted"] = before + 1
                yield from found

    def _network_rows(self, rows: pa.Table) -> pa.Table:
        """The selected threads' usable steps, redacted column-wise."""
        # One filter for every condition: each filter copies the texts.
        selected = pc.is_in(rows["thread"], pa.array(sorted(self.network_threads)))
        keep = pc.and_(selected, usable_network_steps(rows))
        unusable = _count(selected) - _count(keep)
        # Audio exchanges are left out, counted on their own: no format here carries sound.
        audio = _count(pc.and_(selected, _has_audio(rows)))
        # image exchanges go to `_write_images`, which counts what it leaves out itself
        images = _count(pc.and_(selected, image_exchanges(rows)))
        if skipped := unusable - audio - images:
            self.stats.skipped["network_not_text_or_failed"] += skipped
        if audio:
            self.stats.skipped["audio_exchange_not_exported"] += audio
        if self.kept_keys is not None:
            usable = _count(keep)
            keep = pc.and_(keep, pc.is_in(rows["key"], self.kept_keys))
            self.stats.skipped["below_score_filter"] += usable - _count(keep)
        usable = rows.filter(keep)
        for column in ("input", "output"):
            index = usable.schema.get_field_index(column)
            usable = usable.set_column(index, column, self.redact.arrow(usable[column]))
        return usable

    def _network_buckets(self, total: int) -> Iterator[pa.Table]:
        """Network rows in key-prefix buckets, in prefix order. A small store is one bucket;
        a large one is read in one scan and spilled to a file per prefix (Arrow IPC), so memory
        holds one batch or one bucket, never the table."""
        import tempfile

        width = _prefix_width(total)
        query = scan(self.pinned.table("invocations"), "kind = 'network'", NETWORK_COLUMNS)
        if width == 0:
            yield self._network_rows(query.to_arrow())
            return
        with tempfile.TemporaryDirectory(prefix="sandloop-export-") as spill:
            writers: dict[str, Any] = {}
            for batch in query.to_batches(50_000):
                table = self._network_rows(pa.Table.from_batches([batch]))
                prefixes = pc.utf8_slice_codeunits(table["key"], 0, width)
                for prefix in pc.unique(prefixes).to_pylist():
                    part = table.filter(pc.equal(prefixes, prefix))
                    if prefix not in writers:
                        path = Path(spill) / f"{prefix}.arrow"
                        writers[prefix] = pa.ipc.new_file(str(path), part.schema)
                    writers[prefix].write_table(part)
            for writer in writers.values():
                writer.close()
            for prefix in sorted(writers):
                with pa.OSFile(str(Path(spill) / f"{prefix}.arrow")) as source:
                    table = pa.ipc.open_file(source).read_all()
                yield table

    def ranges(self) -> Iterator[list[Example] | _Columnar]:
        """Examples in key order, a bucket at a time; dialogues and recipes merged in."""
        total = self.pinned.count("invocations", "kind = 'network'") if self.network_threads else 0
        others = iter(self.others)
        pending = next(others, None)
        buckets = self._network_buckets(total) if self.network_threads else iter(())
        for rows in buckets:
            rows = rows.sort_by("key")
            checked = passes_checks(rows, self.max_tokens)
            last = rows["key"][-1].as_py() if len(rows) else ""
            merged: list[Example] = []
            while pending is not None and pending.key <= last:
                merged.append(pending)
                pending = next(others, None)
            paired = bool(self.pairs) and bool(
                pc.any(pc.is_in(rows["key"], self._pair_keys())).as_py()
            )
            columnar = COLUMNAR and self.columnar and not merged and not paired and len(rows)
            if columnar and all(checked) and not _odd(rows):
                yield _Columnar(rows)
                continue
            batch = list(network_examples(rows, redacted=True, prechecked=checked))
            if paired:
                batch = [self._with_pair(e) for e in batch]
            if merged:
                batch = sorted([*batch, *merged], key=lambda e: e.key)
            yield batch
        rest = [] if pending is None else [pending, *others]
        if rest:
            yield rest

    def _pair_keys(self) -> pa.Array:
        if self.pair_keys is None:
            self.pair_keys = pa.array(sorted(self.pairs), pa.string())
        return self.pair_keys

    def _with_pair(self, example: Example) -> Example:
        pair = self.pairs.get(example.key)
        if pair is None:
            return example
        return replace(example, rejected=pair[0], source=pair[1])


def _has_audio(rows: pa.Table) -> Any:
    either = pc.or_(pc.equal(rows["input_type"], "audio"), pc.equal(rows["output_type"], "audio"))
    return pc.fill_null(either, False)


def _count(mask: Any) -> int:
    return int(pc.sum(mask).as_py() or 0)


def _odd(rows: pa.Table) -> bool:
    return any(has_odd_control(rows[c]) for c in ("input", "output"))


class _NearDuplicates:
    """Near-duplicate removal over stored embeddings: validation examples are kept and indexed
    first, then a train example near one of them (cosine ≥ threshold) is dropped, as is any
    example near one already kept in its split."""

    def __init__(self, pinned: Pinned, model: str | None, threshold: float) -> None:
        import faiss

        self.pinned, self.threshold = pinned, threshold
        embeddings = pinned.read("embeddings", columns=["embedding_model"])
        if embeddings.empty:
            raise ExportError("--dedupe near needs embeddings; run `sandloop embed` first")
        self.model = model or str(embeddings["embedding_model"].value_counts().idxmax())
        self.faiss = faiss
        self.index: dict[str, Any] = {}

    def vectors(self, keys: list[str]) -> dict[str, Any]:
        import numpy as np

        if not keys:
            return {}
        quoted = ", ".join(sql_str(k) for k in keys)
        rows = self.pinned.read(
            "embeddings",
            f"embedding_model = {sql_str(self.model)} AND key IN ({quoted})",
            ["key", "vector"],
        )
        return {
            str(k): np.asarray(v, dtype="float32")
            for k, v in zip(rows["key"], rows["vector"], strict=True)
        }

    def near(self, split: str, vector: Any) -> bool:
        index = self.index.get(split)
        if index is None or index.ntotal == 0:
            return False
        scores, _ = index.search(vector.reshape(1, -1), 1)
        return bool(scores[0][0] >= self.threshold)

    def keep(self, split: str, vector: Any) -> None:
        if split not in self.index:
            self.index[split] = self.faiss.IndexFlatIP(vector.shape[0])
        self.index[split].add(vector.reshape(1, -1))


class _Sink:
    """One output file per (format, part, split): JSONL (optionally zstd) or parquet."""

    def __init__(self, root: Path, compress: str | None) -> None:
        self.root, self.compress = root, compress
        self.files: dict[tuple[str, str, str], Any] = {}
        self.parquet = {fmt: HfParquet(root, fmt) for fmt in ("hf", "trl")}

    def path(self, fmt: str, part: str, split: str) -> Path:
        name = f"{part}.{split}" if part else split
        return self.root / fmt / f"{name}.jsonl{'.zst' if self.compress else ''}"

    def write_raw(self, fmt: str, part: str, split: str, data: bytes) -> None:
        """Lines already serialised (the column-wise openai-chat path)."""
        if data:
            self._handle(fmt, part, split).write(data)

    def write(self, fmt: str, part: str, split: str, record: dict[str, Any]) -> None:
        if fmt == "hf":
            self.parquet[fmt].add_row(part, split, record)
            return
        self._handle(fmt, part, split).write(orjson.dumps(record) + b"\n")

    def write_table(self, fmt: str, config: str, split: str, table: pa.Table) -> None:
        """Rows of a parquet file set (an hf config, trl's vision) built column-wise."""
        self.parquet[fmt].add_table(config, split, table)

    def _handle(self, fmt: str, part: str, split: str) -> IO[bytes]:
        """The file of one (format, part, split), opened on its first line."""
        handle = self.files.get((fmt, part, split))
        if handle is None:
            path = self.path(fmt, part, split)
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.files[(fmt, part, split)] = self._open(path)
        return handle

    def _open(self, path: Path) -> IO[bytes]:
        if self.compress:
            stream: IO[bytes] = pa.CompressedOutputStream(str(path), "zstd")
            return stream
        return path.open("wb", buffering=1 << 20)

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()
        self.files = {}
        for parquet in self.parquet.values():
            parquet.close()


def snapshot_examples(pinned: Pinned, catalog: Catalog) -> Iterator[Example]:
    """The examples an export of the snapshot starts from (after its score filter, before
    formats and de-duplication), redacted as an export is: what a judge reads, perhaps a remote
    one, so it is shown nothing an export would not show."""
    redact = Redactor()
    source = _Examples(pinned, pinned.runs(), Stats(), redact, 1 << 40, catalog)
    for item in source.ranges():
        if isinstance(item, _Columnar):
            yield from network_examples(item.rows, redacted=True)
        else:
            yield from (e if e.redacted else _redacted(e, redact) for e in item)


def _redacted(example: Example, redact: Redactor) -> Example:
    messages = tuple({**m, "content": redact(str(m["content"]))} for m in example.messages)
    rejected = redact(example.rejected) if example.rejected is not None else None
    return replace(example, messages=messages, rejected=rejected, redacted=True)


def export(
    pinned: Pinned,
    options: ExportOptions,
    catalog: Catalog,
    progress: Callable[[int], None] = lambda _n: None,
) -> dict[str, Any]:
    """Write the snapshot's datasets into ``options.out``; returns the manifest."""
    options.check(pinned.store.home)
    runs = pinned.runs()
    if runs.empty:
        raise ExportError(f"snapshot {pinned.name!r} selects no runs")
    stats = Stats()
    if not pinned.selection.include_judges:  # the report says what the selection left out
        every = pinned.read("runs")  # read once, selected with and without the judges
        asked = pinned.selection.model_copy(update={"include_judges": True})
        if judging := len(asked.apply(every)) - len(pinned.selection.apply(every)):
            stats.skipped["judge_or_moderation_runs"] = judging
    split_by = Split.of_snapshot(pinned, runs, options.val_fraction)
    redact = Redactor.with_extra(list(options.redact))
    near = (
        _NearDuplicates(pinned, options.embedding_model, options.near_threshold)
        if options.dedupe == "near"
        else None
    )
    seen: set[bytes] = set()
    reports: dict[tuple[str, str, str], Report] = {}
    staging = options.out.parent / f".{options.out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        raise cannot_write(options.out, exc) from None
    sink = _Sink(staging, options.compress)
    source = _Examples(pinned, runs, stats, redact, options.max_tokens, catalog)
    source.columnar = near is None
    written = 0
    try:
        batches: Any = source.ranges()
        if near is not None:  # every item is a list of examples: columnar is off
            batches = _validation_first(list(batches), split_by, near)
        total_hint = pinned.count("invocations") + len(source.others)
        dedupe = options.dedupe in ("exact", "near")
        writers = [(fmt, WRITERS[fmt]) for fmt in options.formats]
        for item in batches:
            if isinstance(item, _Columnar):  # never yielded with near de-duplication
                written += _write_columnar(
                    item.rows, options, split_by, writers, sink, reports, stats, seen, total_hint
                )
                progress(written)
                continue
            batch = item
            vectors = near.vectors([e.vector_key for e in batch if e.vector_key]) if near else {}
            for example in batch:
                split = split_by.of(example)
                if not example.redacted:
                    example = _redacted(example, redact)
                if dedupe:
                    digest = example.content_hash()
                    if digest in seen:
                        stats.dedupe["exact"] += 1
                        continue
                    seen.add(digest)
                if near is not None and split == "train" and example.vector_key in vectors:
                    vector = vectors[example.vector_key]
                    if near.near("validation", vector):
                        stats.dedupe["near_validation"] += 1
                        continue
                    if near.near("train", vector):
                        stats.dedupe["near_train"] += 1
                        continue
                    near.keep("train", vector)
                stats.counts[(split, example.kind)] += 1
                if example.rejected is not None:
                    stats.pairs[example.source or "unknown"] += 1
                token_count = None
                if _in_token_sample(example.key, total_hint):
                    token_count = token_counts.count_messages(list(example.messages))
                    stats.token_sample[split].append(token_count)
                for fmt, to_records in writers:
                    for part, record in to_records(example):
                        report = reports.get((fmt, part, split))
                        if report is None:
                            report = reports[(fmt, part, split)] = Report()
                        if example.prechecked:
                            report.examples += 1
                        else:
                            check(
                                fmt,
                                part,
                                record,
                                report,
                                report.examples + 1,
                                options.max_tokens,
                                token_count,
                            )
                        sink.write(fmt, part, split, record)
                        if fmt == "openai-dpo":
                            origin = provenance(example, report.examples)
                            sink.write(PROVENANCE, part, split, origin)
                written += 1
                if written % 10_000 == 0:
                    progress(written)
        written += _write_images(
            pinned, source, options, split_by, sink, reports, stats, redact, seen
        )
        sink.close()
        if written == 0:
            raise ExportError(
                f"snapshot {pinned.name!r} has no usable examples "
                f"(skipped: {dict(stats.skipped) or 'none'})"
            )
        invalid = {k: r for k, r in reports.items() if not r.ok}
        if invalid and not options.allow_invalid:
            details = "; ".join(f"{f}/{p or s}: {r.summary()}" for (f, p, s), r in invalid.items())
            raise ExportError(f"the dataset failed its checks, nothing was written: {details}")
        manifest = _manifest(pinned, options, stats, reports, redact, staging, near)
        manifest["language"] = language_of(options.language, staging, manifest["files"])
        (staging / "manifest.json").write_bytes(
            orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        )
        (staging / "README.md").write_text(card(manifest, options.license), encoding="utf-8")
        try:
            if options.out.exists():
                shutil.rmtree(options.out)
            staging.rename(options.out)
        except OSError as exc:
            raise cannot_write(options.out, exc) from None
    except BaseException:
        sink.close()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress(written)
    return manifest


def _write_images(
    pinned: Pinned,
    source: _Examples,
    options: ExportOptions,
    split_by: Split,
    sink: _Sink,
    reports: dict[tuple[str, str, str], Report],
    stats: Stats,
    redact: Redactor,
    seen: set[bytes],
) -> int:
    """The snapshot's image exchanges, into the formats that carry images (see
    `exports.images`); returns how many were written."""
    if not source.network_threads:
        return 0
    where = "kind = 'network' AND (input_type = 'image' OR output_type = 'image')"
    rows = scan(pinned.table("invocations"), where, NETWORK_COLUMNS).to_arrow()
    rows = image_rows(
        rows.filter(pc.is_in(rows["thread"], pa.array(sorted(source.network_threads))))
    )
    if source.kept_keys is not None:
        passing = rows.filter(pc.is_in(rows["key"], source.kept_keys))
        stats.skipped["below_score_filter"] += len(rows) - len(passing)
        rows = passing
    carriers = [fmt for fmt in options.formats if fmt in IMAGE_FORMATS]
    for fmt in options.formats:
        if fmt not in IMAGE_FORMATS and len(rows):
            stats.skipped[f"image_exchange_not_in:{fmt}"] += len(rows)
    if not carriers or not len(rows):
        return 0
    written = 0
    rows = rows.sort_by("key")
    seen_images = seen if options.dedupe in ("exact", "near") else None
    start, chunk = 0, IMAGE_CHUNK_ROWS[0]
    while start < len(rows):
        batch = image_batch(
            rows.slice(start, chunk), pinned.store.blobs.get_many, redact.arrow, seen_images
        )
        start += chunk
        chunk = image_chunk_rows(chunk, batch.read_bytes)
        stats.skipped.update(batch.skipped)
        if batch.duplicates:
            stats.dedupe["exact"] += batch.duplicates
        in_validation = split_by.in_validation(batch.table["thread"])
        for split, in_split in (("train", pc.invert(in_validation)), ("validation", in_validation)):
            for kind in (VISION, TEXT_TO_IMAGE):
                chosen = batch.table.filter(pc.and_(in_split, pc.equal(batch.table["kind"], kind)))
                if len(chosen):
                    stats.counts[(split, kind)] += len(chosen)
                    _write_image_kind(chosen, kind, split, carriers, sink, reports, stats)
        written += len(batch.table)
    return written


def _write_image_kind(
    rows: pa.Table,
    kind: str,
    split: str,
    carriers: list[str],
    sink: _Sink,
    reports: dict[tuple[str, str, str], Report],
    stats: Stats,
) -> None:
    """Image steps of one kind and split, into each format that carries them. Rows that pass
    every check column-wise are written unchecked; the others are checked one by one."""
    fine = images_pass_checks(rows)
    for fmt in carriers:
        if fmt != "hf" and kind != VISION:  # neither fine-tunes an image model
            stats.skipped[f"image_exchange_not_in:{fmt}"] += len(rows)
            continue
        if fmt == "openai-chat":
            taken = rows.filter(fine)
            if len(taken) < len(rows):  # a GIF, say: OpenAI would refuse the file
                refused = len(rows) - len(taken)
                stats.skipped["image_not_jpeg_png_or_webp_under_10_mb:openai-chat"] += refused
            if len(taken):
                _report(reports, fmt, VISION, split).examples += len(taken)
                lines = "".join(vision_lines(taken).to_pylist()).encode()
                sink.write_raw(fmt, VISION, split, lines)
            continue
        report = _report(reports, fmt, kind, split)
        if not pc.all(fine).as_py():
            first = report.examples + 1
            checked = zip(examples_of(rows), fine.to_pylist(), strict=True)
            for row, (example, ok) in enumerate(checked):
                if not ok:
                    check_shape(fmt, kind, hf_row(example), report, first + row)
        report.examples += len(rows)
        sink.write_table(fmt, kind, split, hf_table(rows, kind))


def _write_columnar(
    rows: pa.Table,
    options: ExportOptions,
    split_by: Split,
    writers: list[tuple[str, Any]],
    sink: _Sink,
    reports: dict[tuple[str, str, str], Report],
    stats: Stats,
    seen: set[bytes],
    total_hint: int,
) -> int:
    """A bucket of checked network exchanges: the same examples, counts and bytes as the
    row-by-row path, with openai-chat lines built and written as whole columns."""
    in_validation = split_by.in_validation(rows["thread"]).to_pylist()
    if options.dedupe != "none":
        keep = []
        for digest in _exchange_hashes(rows):
            keep.append(digest not in seen)
            seen.add(digest)
        if dropped := keep.count(False):
            stats.dedupe["exact"] += dropped
    else:
        keep = [True] * len(rows)
    others = [(fmt, to_records) for fmt, to_records in writers if fmt not in ("openai-chat", "hf")]
    # Row by row only where a row is needed whole: every row for the formats not written
    # column-wise, else the few tokenised for the manifest.
    wanted = list(range(len(rows))) if others else _token_sample_rows(rows["key"], total_hint)
    picked = rows.select(["key", "input", "output", "thread", "model"]).take(wanted)
    for row, key, text_in, text_out, thread, model in zip(
        wanted, *(picked[c].to_pylist() for c in picked.column_names), strict=True
    ):
        if not keep[row]:
            continue
        split = "validation" if in_validation[row] else "train"
        messages = (
            {"role": "user", "content": text_in},
            {"role": "assistant", "content": text_out},
        )
        if _in_token_sample(key, total_hint):
            stats.token_sample[split].append(token_counts.count_messages(list(messages)))
        if others:
            example = Example(key, "network", thread, model, messages, vector_key=key)
            for fmt, to_records in others:
                for part, record in to_records(example):
                    _report(reports, fmt, part, split).examples += 1
                    sink.write(fmt, part, split, record)
    kept, validation_mask = pa.array(keep), pa.array(in_validation)
    masks = (
        ("train", pc.and_(kept, pc.invert(validation_mask))),
        ("validation", pc.and_(kept, validation_mask)),
    )
    for split, mask in masks:
        if taken := pc.sum(mask).as_py():  # a split with none gets no key, as row by row
            stats.counts[(split, "network")] += taken
    if "openai-chat" in options.formats:
        lines = _chat_lines(rows)
        for split, mask in masks:
            chosen = lines.filter(mask)
            if len(chosen):
                _report(reports, "openai-chat", "", split).examples += len(chosen)
                sink.write_raw("openai-chat", "", split, "".join(chosen.to_pylist()).encode())
    if "hf" in options.formats:
        for split, mask in masks:
            chosen_rows = rows.filter(mask)
            if len(chosen_rows):
                _report(reports, "hf", "sft", split).examples += len(chosen_rows)
                sink.write_table("hf", "sft", split, _sft_table(chosen_rows))
    return sum(keep)


def _sft_table(rows: pa.Table) -> pa.Table:
    """Network exchanges as hf ``sft`` rows, what `formats.hf` makes one at a time."""
    schema = HF_SCHEMAS["sft"]
    messages = exchanges(
        rows["input"].combine_chunks(),
        rows["output"].combine_chunks(),
        schema.field("messages").type,
    )
    about = [
        rows["key"].combine_chunks(),
        pa.array(["network"] * len(rows), pa.string()),
        rows["model"].combine_chunks(),
    ]
    return pa.Table.from_arrays([*about, messages], schema=schema)


def _report(reports: dict[tuple[str, str, str], Report], fmt: str, part: str, split: str) -> Report:
    report = reports.get((fmt, part, split))
    if report is None:
        report = reports[(fmt, part, split)] = Report()
    return report


def _validation_first(
    batches: list[list[Example]], split_by: Split, near: _NearDuplicates
) -> list[list[Example]]:
    """Index every validation example's vector before any train example is judged."""
    for batch in batches:
        val = [e for e in batch if split_by.of(e) == "validation" and e.vector_key]
        vectors = near.vectors([e.vector_key for e in val if e.vector_key])
        for example in val:
            vector = vectors.get(example.vector_key or "")
            if vector is not None:
                near.keep("validation", vector)
    return batches


SPLIT_RULE = (
    "by group, so that no prompt is on both sides: threads that share a genesis (a "
    "dialogue's question, a recipe's input) or any prompt a step was given form one group; a "
    "group is in validation when the first 8 hex digits of its key (a BLAKE2b digest of its "
    "smallest genesis hash), as a fraction of 16^8, fall below val_fraction"
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _token_stats(sample: array[int], examples: int) -> dict[str, Any]:
    """Over the text examples (image examples are not tokenised): every one counted up to
    `EXACT_TOKENS`, when the total is exact; a sample beyond, when it is an estimate."""
    if not sample:
        return {"examples": examples, "sampled": 0}
    ordered = sorted(sample)
    mean = statistics.fmean(ordered)
    found: dict[str, Any] = {
        "examples": examples,
        "sampled": len(ordered),
        "mean": round(mean, 2),
        "p50": ordered[len(ordered) // 2],
        "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
        "max": ordered[-1],
    }
    if len(ordered) >= examples:
        found["total"] = sum(ordered)
    else:
        found["estimated_total"] = round(mean * examples)
    return found


def _manifest(
    pinned: Pinned,
    options: ExportOptions,
    stats: Stats,
    reports: dict[tuple[str, str, str], Report],
    redact: Redactor,
    root: Path,
    near: _NearDuplicates | None,
) -> dict[str, Any]:
    files = {
        str(path.relative_to(root)): {"sha256": _sha256(path), "bytes": path.stat().st_size}
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
    per_split: dict[str, dict[str, Any]] = {
        split: {
            "examples": sum(n for (s, _), n in stats.counts.items() if s == split),
            "by_kind": {k: n for (s, k), n in sorted(stats.counts.items()) if s == split},
        }
        for split in SPLITS
    }
    records = {
        f"{fmt}{'/' + part if part else ''}/{split}": report.examples
        for (fmt, part, split), report in sorted(reports.items())
    }
    return {
        "sandloop_version": __version__,
        "snapshot": {
            "name": pinned.name,
            "created_at": str(pinned.snapshot["created_at"]),
            "selection": orjson.loads(pinned.selection.model_dump_json()),
            "table_versions": pinned.versions,
        },
        "options": {
            "formats": list(options.formats),
            "val_fraction": options.val_fraction,
            "dedupe": options.dedupe,
            "near_threshold": options.near_threshold if near else None,
            "embedding_model": near.model if near else None,
            "compress": options.compress,
            "max_tokens": options.max_tokens,
            "split": SPLIT_RULE,
        },
        "counts": per_split,
        "records": records,
        "skipped": dict(sorted(stats.skipped.items())),
        "dedupe": dict(sorted(stats.dedupe.items())),
        "pairs": dict(sorted(stats.pairs.items())),
        "redactions": dict(sorted(redact.counts.items())),
        "tokens": {
            "tokenizer": "cl100k_base",
            "counted": token_counts.COUNTED,
            **{
                split: _token_stats(
                    stats.token_sample[split],
                    sum(
                        n
                        for (s, k), n in stats.counts.items()
                        if s == split and k not in IMAGE_KINDS
                    ),
                )
                for split in SPLITS
            },
        },
        "validation": {
            f"{fmt}{'/' + part if part else ''}/{split}": report.summary()
            for (fmt, part, split), report in sorted(reports.items())
        },
        "files": files,
    }
