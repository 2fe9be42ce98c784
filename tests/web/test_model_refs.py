"""Model references a stranger may send: hub ids and names pass, paths only under the models
folder, decided from the text alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandloop.loops.spec_files import SpecError
from sandloop.web.model_refs import check_served_refs, looks_like_path

ROOT = Path("/srv/home/models")


@pytest.mark.parametrize(
    "ref",
    ["dummy:text", "local:sshleifer/tiny-gpt2", "openai:gpt-4o-mini", "local:/srv/home/models/x"],
)
def test_names_and_paths_under_the_models_folder_pass(ref: str) -> None:
    check_served_refs([ref], ROOT, "model")


@pytest.mark.parametrize(
    "ref",
    [
        "local:/srv/home/models/../secrets",
        "local:/srv/home/modelsX/y",
        "local:/srv/home/models",
        "llamacpp:weights.gguf",
        "local:./here",
        "local:a\\b",
    ],
)
def test_paths_elsewhere_are_refused(ref: str) -> None:
    with pytest.raises(SpecError, match="models folder"):
        check_served_refs([ref], ROOT, "model")


def test_a_hub_id_is_not_a_path() -> None:
    assert not looks_like_path("google/gemma-3-270m")
    assert looks_like_path("/google/gemma-3-270m") and looks_like_path("org/../x")
