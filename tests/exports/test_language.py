"""A dataset card's language: given codes are checked, and a sample of what was written is
read by a seeded detector that says nothing when it is not sure (issue 37, item 14)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from sandloop.exports.language import detected, language_of, language_problem

FRENCH = [
    "Le chat est assis sur le tapis et regarde la pluie tomber doucement.",
    "Nous avons marché le long de la rivière jusqu'au vieux moulin.",
]
ENGLISH = [
    "A red balloon floats over the quiet harbour at dawn, far from the boats.",
    "The lighthouse keeper wrote down every ship that passed in the night.",
]


@pytest.mark.parametrize(
    ("texts", "code"), [(FRENCH, "fr"), (ENGLISH, "en"), (["1234 5678"], None)]
)
def test_the_detector_names_the_language_or_nothing(texts: list[str], code: str | None) -> None:
    assert detected(texts) == code
    assert detected(texts) == detected(texts)  # seeded: the same card every time


def test_the_sample_is_the_written_texts_and_not_their_ids_or_images(tmp_path: Path) -> None:
    rows = [
        {
            "id": "ab" * 16,
            "messages": [{"role": "user", "content": text}],
            "image": "data:image/png;base64," + "A" * 64,
        }
        for text in FRENCH * 3
    ]
    (tmp_path / "train.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    found = language_of((), tmp_path, ["train.jsonl", "manifest.json"])
    assert found == {"codes": ["fr"], "how": "detected by langdetect in 6 texts"}
    assert language_of(("de",), tmp_path, ["train.jsonl"]) == {"codes": ["de"], "how": "given"}


@pytest.mark.parametrize("code", ["en", "fr", "pt-BR", "zh-Hant", "yue"])
def test_language_codes_as_the_hub_takes_them(code: str) -> None:
    assert language_problem([code]) is None


@pytest.mark.parametrize("code", ["", "English", "../x", "e", "en_US", "a\u0000b"])
def test_anything_else_is_refused(code: str) -> None:
    assert "give a language code" in str(language_problem([code]))
