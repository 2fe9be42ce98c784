from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sandloop.loops.network.spec import NetworkSpec, RunSpec, load_network
from sandloop.loops.spec_files import SpecError
from sandloop.models.registry import load_catalog

CATALOG = load_catalog(None)  # the built-in models


def network(*models: Any, name: str = "n") -> dict[str, Any]:
    return {"name": name, "models": list(models)}


def test_models_as_strings_or_entries() -> None:
    spec = NetworkSpec.model_validate(
        network("dummy:text", {"model": "dummy:text", "role": "b", "params": {"vocab": 3}})
    )
    assert [e.facet for e in spec.models] == ["dummy:text", "dummy:text#b"]
    assert spec.models[1].resolved_params()["vocab"] == 3
    assert spec.models[0].resolved_params()["vocab"] == 1000


def test_unknown_model_names_the_field_and_suggests() -> None:
    with pytest.raises(ValidationError) as info:
        NetworkSpec.model_validate(network("dummy:txt"))
    err = info.value.errors()[0]
    assert err["loc"] == ("models", 0, "model")
    assert "did you mean 'dummy:text'" in err["msg"]


def test_unknown_platform() -> None:
    with pytest.raises(ValidationError, match="unknown platform 'nope'"):
        NetworkSpec.model_validate(network("nope:x"))


def test_local_models_by_hub_id_or_folder(tmp_path: Path) -> None:
    assert (
        NetworkSpec.model_validate(network("local:org/some-model")).models[0].info.output_type
        == "text"
    )
    assert (
        NetworkSpec.model_validate(network(f"local:{tmp_path}"))
        .models[0]
        .model.endswith(tmp_path.name)
    )
    with pytest.raises(ValidationError, match="unknown model 'local:gemma-3-27m'"):
        NetworkSpec.model_validate(network("local:gemma-3-27m"))


def test_network_must_close_as_a_typed_cycle() -> None:
    with pytest.raises(ValidationError) as info:
        NetworkSpec.model_validate(network("dummy:text", "dummy:text-to-image", name="bad"))
    message = str(info.value)
    assert "network 'bad' does not close: model 1 (dummy:text-to-image) outputs image" in message
    assert "model 0 (dummy:text) takes text" in message
    ok = NetworkSpec.model_validate(network("dummy:text-to-image", "dummy:image-to-text"))
    assert ok.input_type == "text"


def test_params_are_checked_against_the_model() -> None:
    with pytest.raises(ValidationError, match=r"bad params for dummy:text: vocabb: Extra inputs"):
        NetworkSpec.model_validate(network({"model": "dummy:text", "params": {"vocabb": 2}}))
    with pytest.raises(ValidationError, match="temperature"):
        NetworkSpec.model_validate(network({"model": "local:org/m", "params": {"temperature": -1}}))


def test_realm_ignores_description_but_not_models() -> None:
    a = NetworkSpec.model_validate({**network("dummy:text"), "description": "one"})
    b = NetworkSpec.model_validate({**network("dummy:text"), "description": "two"})
    c = NetworkSpec.model_validate(network({"model": "dummy:text", "params": {"vocab": 2}}))
    assert a.realm == b.realm != c.realm


def test_same_spec_genesis_and_seed_give_the_same_thread() -> None:
    net = network("dummy:text")
    one = RunSpec.model_validate({"network": net, "genesis": "g", "seed": 7})
    two = RunSpec.model_validate(
        {"network": net, "genesis": "g", "seed": 7, "stop": {"max_steps": 99}}
    )
    assert one.thread() == two.thread()
    assert (
        one.thread() != RunSpec.model_validate({"network": net, "genesis": "g", "seed": 8}).thread()
    )


def test_image_genesis_must_be_a_file(tmp_path: Path) -> None:
    net = network("dummy:image-to-text", "dummy:text-to-image", name="img")
    with pytest.raises(
        ValidationError, match="starts with dummy:image-to-text, which takes an image"
    ):
        RunSpec.model_validate({"network": net, "genesis": "a red balloon"})
    picture = tmp_path / "p.png"
    picture.write_bytes(b"x")
    assert RunSpec.model_validate({"network": net, "genesis": str(picture)}).genesis == str(picture)


def test_pace_policies_validate() -> None:
    run = RunSpec.model_validate(
        {
            "network": network("dummy:text"),
            "genesis": "g",
            "pace": {"kind": "exponential", "cap": 5},
        }
    )
    assert run.pace.kind == "exponential"
    with pytest.raises(ValidationError, match="sorted"):
        RunSpec.model_validate(
            {
                "network": network("dummy:text"),
                "genesis": "g",
                "pace": {
                    "kind": "age_buckets",
                    "buckets": [
                        {"younger_than_s": 60, "delay_s": 1},
                        {"younger_than_s": 10, "delay_s": 2},
                    ],
                },
            }
        )


def test_load_network_errors_are_one_line_per_problem(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        load_network(tmp_path / "missing.yaml", CATALOG)
    broken = tmp_path / "broken.yaml"
    broken.write_text("models: [dummy:text\n")
    with pytest.raises(SpecError, match="not valid yaml"):
        load_network(broken, CATALOG)
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - dummy:text\n  - dummy:nope\n")
    with pytest.raises(SpecError) as info:
        load_network(bad, CATALOG)
    assert str(info.value).startswith(f"{bad}: models.1.model: unknown model 'dummy:nope'")
    assert (
        load_network(_write(tmp_path / "named.yaml", "models: [dummy:text]\n"), CATALOG).name
        == "named"
    )


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
_model_ref = st.sampled_from(
    [
        "dummy:text",
        "dummy:text-to-image",
        "dummy:image-to-text",
        "local:gemma-3-270m",
        "local:org/m",
        "dummy:nope",
        "nope:x",
        "text",
        "",
    ]
)
_entry = _model_ref | st.fixed_dictionaries(
    {"model": _model_ref},
    optional={
        "role": st.text(max_size=5) | st.none(),
        "params": st.dictionaries(
            st.sampled_from(["vocab", "temperature", "prefix", "fail_times", "bogus"]),
            _json,
            max_size=3,
        ),
    },
)
_network = st.fixed_dictionaries(
    {"models": st.lists(_entry, max_size=4)},
    optional={"name": st.text(max_size=12), "description": _json},
)


@settings(max_examples=300, deadline=None)
@given(spec=_network | st.dictionaries(st.text(max_size=8), _json, max_size=4))
def test_random_network_specs_validate_or_raise_validation_error(spec: dict[str, Any]) -> None:
    with contextlib.suppress(ValidationError):
        NetworkSpec.model_validate(spec)


@settings(max_examples=200, deadline=None)
@given(
    net=_network,
    run=st.fixed_dictionaries(
        {},
        optional={
            "genesis": _json,
            "seed": _json,
            "stop": st.dictionaries(
                st.sampled_from(["max_steps", "max_duration_s", "stop_on_repeat", "x"]), _json
            ),
            "pace": st.dictionaries(st.sampled_from(["kind", "seconds", "base", "cap"]), _json),
        },
    ),
)
def test_random_run_specs_validate_or_raise_validation_error(
    net: dict[str, Any], run: dict[str, Any]
) -> None:
    with contextlib.suppress(ValidationError):
        RunSpec.model_validate({"network": net, **run})


def test_networks_load_from_json_too(tmp_path: Path) -> None:
    path = _write(tmp_path / "net.json", '{"name": "j", "models": ["dummy:text"]}')
    assert load_network(path, CATALOG).models[0].model == "dummy:text"
    broken = _write(tmp_path / "broken.json", '{"name": ')
    with pytest.raises(SpecError, match="not valid json"):
        load_network(broken, CATALOG)
