"""The convergence stop on image steps: with an image embedding model set, a picture close
enough to one of the last pictures ends the run, exactly where the model's own vectors say; a
resumed run knows it converged; without the model, only texts can converge."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sandloop import api
from sandloop.embedding.embedders import ClipEmbedder, get_embedder
from sandloop.loops.network.spec import RunSpec

# three runs of 24 steps, each picture through a CLIP (~40 s)
pytestmark = [pytest.mark.usefixtures("prefect_api_url"), pytest.mark.slow]

WINDOW = 3


def balloon(**stop: object) -> RunSpec:
    return RunSpec.model_validate(
        {
            "network": {
                "name": "balloon",
                "models": [
                    {"model": "dummy:text-to-image", "params": {"vocab": 64}},
                    "dummy:image-to-text",
                ],
            },
            "genesis": "a red balloon",
            "seed": 7,
            "stop": {"max_steps": 24, "stop_on_repeat": False, **stop},
        }
    )


def first_match(vectors: np.ndarray, steps: list[int], threshold: float) -> int | None:
    """The first step whose vector is within ``threshold`` of one of the previous WINDOW."""
    for i in range(1, len(steps)):
        if float((vectors[max(0, i - WINDOW) : i] @ vectors[i]).max()) >= threshold:
            return steps[i]
    return None


def test_a_close_picture_ends_the_run_where_the_model_says(
    tmp_path: Path, tiny_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDLOOP_IMAGE_EMBED_MODEL", str(tiny_clip))
    monkeypatch.setenv("SANDLOOP_EMBED_DURING_RUNS", "true")  # the free run's vectors, read below
    free = api.run_network(balloon(), tmp_path / "free")
    steps = api.run_steps(free.thread, tmp_path / "free")
    store = api.open_store(tmp_path / "free")
    pictures = steps[steps["output_type"] == "image"]
    texts = steps[steps["output_type"] == "text"]
    image_vectors = ClipEmbedder(str(tiny_clip)).embed_images(
        [store.blobs.get(k) for k in pictures["output"]]
    )
    text_vectors = get_embedder("hashing").embed(texts["output"].tolist())
    # the run embedded both in the background; a reader gets the texts unless it names the CLIP
    read, vectors = api.run_embeddings(free.thread, home=tmp_path / "free")
    assert read["output_type"].eq("text").all() and len(read) == len(texts)
    read, vectors = api.run_embeddings(free.thread, str(tiny_clip), tmp_path / "free")
    assert read["key"].tolist() == pictures["key"].tolist()
    np.testing.assert_allclose(vectors, image_vectors, atol=1e-5)
    image_steps, text_steps = pictures["step"].tolist(), texts["step"].tolist()
    # the closest picture to a recent one sets the threshold, which no two texts reach
    cosines = [
        float((image_vectors[max(0, i - WINDOW) : i] @ image_vectors[i]).max())
        for i in range(1, len(image_steps))
    ]
    threshold = max(cosines)
    expected = first_match(image_vectors, image_steps, threshold)
    text_stop = first_match(text_vectors, text_steps, threshold)
    assert expected is not None and text_stop is None

    home = tmp_path / "stopped"
    run = balloon(converge_above=threshold, converge_window=WINDOW)
    summary = api.run_network(run, home)
    assert summary.stop_reason == "converged"
    stopped = api.run_steps(summary.thread, home)
    assert stopped["step"].iloc[-1] == expected
    last = json.loads(stopped["metadata"].iloc[-1])
    assert last["cosine"] == pytest.approx(threshold, abs=1e-5)
    assert last["converged_with_step"] in image_steps
    assert summary.loop_length == expected - last["converged_with_step"]
    again = api.run_network(run, home)
    assert again.already_finished and again.stop_reason == "converged"

    monkeypatch.delenv("SANDLOOP_IMAGE_EMBED_MODEL")  # pictures alone cannot converge now
    unseen = api.run_network(run, tmp_path / "texts-only")
    assert unseen.stop_reason == "max_steps" and unseen.steps_total == 24
