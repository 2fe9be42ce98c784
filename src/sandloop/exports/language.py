"""The language a dataset is in, for its card: given by the person (``--language en``), or read
from a sample of what was written, where a light detector (langdetect, the ``card`` extra) is
installed. The Hub lists datasets by this field, and a trainer picks a tokenizer by it.

Detection is seeded and reads a fixed sample (the first text records of the written files, in
file order), so the same export gives the same card. A sample the detector is not sure of
(below `SURE`) says nothing rather than guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

CODE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
SAMPLE_RECORDS = 64  # per file read, and texts in all
MIN_TEXT = 20  # characters: shorter strings are ids, roles and labels, not language
SURE = 0.9


def language_problem(codes: Iterable[str]) -> str | None:
    """Why ``codes`` are not language codes as the Hub takes them (en, fr, pt-BR), or None."""
    for code in codes:
        if not CODE.match(code):
            return f"--language {code[:40]!r}: give a language code such as en, fr or pt-BR"
    return None


def language_of(given: tuple[str, ...], root: Path, files: Iterable[str]) -> dict[str, Any]:
    """What the card says: the given codes, else the detected one, else none."""
    if given:
        return {"codes": list(given), "how": "given"}
    texts = list(_sample(root, sorted(files)))
    found = detected(texts)
    if found is None:
        return {"codes": [], "how": "not detected" if _detector() else "no detector installed"}
    return {"codes": [found], "how": f"detected by langdetect in {len(texts)} texts"}


def detected(texts: list[str]) -> str | None:
    """The language of ``texts`` (one ISO 639-1 code), when the detector is installed and sure."""
    detector = _detector()
    if detector is None or not texts:
        return None
    factory, detect_langs = detector
    factory.seed = 0  # langdetect samples at random: a fixed seed gives the same answer
    try:
        best = detect_langs("\n".join(texts)[:20_000])[0]
    except Exception:  # no features in the text: digits and symbols only
        return None
    if best.prob < SURE:
        return None
    code: str = best.lang.split("-")[0]  # zh-cn → zh, as the Hub lists it
    return code


def _detector() -> tuple[Any, Any] | None:
    try:
        from langdetect import DetectorFactory, detect_langs
    except ImportError:
        return None
    return DetectorFactory, detect_langs


def _sample(root: Path, files: list[str]) -> Iterator[str]:
    """Up to `SAMPLE_RECORDS` texts from the written files (JSONL and parquet)."""
    taken = 0
    for name in files:
        records: Iterable[Any]
        if name.endswith(".jsonl"):
            records = _jsonl_head(root / name)
        elif name.endswith(".parquet"):
            records = _parquet_head(root / name)
        else:
            continue
        for record in records:
            for text in _texts(record):
                yield text
                taken += 1
                if taken >= SAMPLE_RECORDS:
                    return


def _jsonl_head(path: Path) -> Iterator[Any]:
    with path.open("rb") as lines:
        for _, line in zip(range(SAMPLE_RECORDS), lines, strict=False):
            yield orjson.loads(line)


def _parquet_head(path: Path) -> list[Any]:
    import pyarrow.parquet as pq

    table = pq.ParquetFile(path).read_row_group(0) if path.stat().st_size else None
    return [] if table is None else table.slice(0, SAMPLE_RECORDS).to_pylist()


def _texts(value: Any) -> Iterator[str]:
    """The natural-language strings in a record: long enough, and not an id, a hash or a data
    URL (an ASCII string with no space; text in a language written without spaces is not
    ASCII)."""
    if isinstance(value, str):
        if len(value) >= MIN_TEXT and (" " in value or not value.isascii()):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
