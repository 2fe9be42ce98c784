from __future__ import annotations

import pytest

from sandloop.models.base import CallContext, ModelInput
from sandloop.models.dummy import DummyAdapter
from sandloop.models.errors import AuthError, RateLimited, Unavailable, is_retryable


def ctx(seed: int | None = 7, step: str = "s") -> CallContext:
    return CallContext(seed=seed, step_key=step)


def test_text_is_deterministic_under_a_seed_and_depends_on_input() -> None:
    model = DummyAdapter("dummy:text")
    one = model.generate(ModelInput("text", text="a"), {}, ctx()).text
    assert one == model.generate(ModelInput("text", text="a"), {}, ctx()).text
    assert one != model.generate(ModelInput("text", text="b"), {}, ctx()).text
    assert one != model.generate(ModelInput("text", text="a"), {}, ctx(seed=8)).text
    outputs = {
        model.generate(ModelInput("text", text=str(i)), {"vocab": 3}, ctx()).text for i in range(50)
    }
    assert len(outputs) <= 3


def test_image_round_trip() -> None:
    image = DummyAdapter("dummy:text-to-image").generate(
        ModelInput("text", text="balloon"), {"image_size": 8}, ctx()
    )
    assert image.type == "image" and image.data is not None and image.data[:4] == b"\x89PNG"
    text = DummyAdapter("dummy:image-to-text").generate(
        ModelInput("image", data=image.data), {}, ctx()
    )
    assert text.text is not None and text.text.startswith("a 8x8 picture, mostly #")


def test_unreadable_image_is_invalid_input_and_not_retryable() -> None:
    with pytest.raises(Exception) as info:
        DummyAdapter("dummy:image-to-text").generate(ModelInput("image", data=b"nope"), {}, ctx())
    assert type(info.value).__name__ == "InvalidInput" and not is_retryable(info.value)


@pytest.mark.parametrize(
    ("kind", "error", "retryable"),
    [
        ("unavailable", Unavailable, True),
        ("rate_limited", RateLimited, True),
        ("auth", AuthError, False),
    ],
)
def test_fails_n_times_per_step_then_succeeds(kind: str, error: type, retryable: bool) -> None:
    model = DummyAdapter("dummy:text")
    params = {"fail_times": 2, "fail_with": kind}
    for _ in range(2):
        with pytest.raises(error) as info:
            model.generate(ModelInput("text", text="a"), params, ctx(step="s1"))
        assert is_retryable(info.value) is retryable
    assert model.generate(ModelInput("text", text="a"), params, ctx(step="s1")).text
    with pytest.raises(error):  # counted per step
        model.generate(ModelInput("text", text="a"), params, ctx(step="s2"))
