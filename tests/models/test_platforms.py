"""The platform table: what every platform module declares is enough for the registry, the
factory, credentials and settings, with nothing to add elsewhere."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

from sandloop import credentials
from sandloop.config import Settings
from sandloop.models import platforms
from sandloop.models.factory import get_adapter
from sandloop.models.io_types import TASK_IO
from sandloop.models.platforms import PLATFORMS
from sandloop.models.registry import UnknownModel, load_catalog

lookup = load_catalog(None).lookup  # the built-in catalog's


def test_every_module_of_the_package_is_a_platform_in_the_table() -> None:
    modules = {m.name for m in pkgutil.iter_modules(platforms.__path__)} - {"base"}
    assert modules == {"dummy", "local", "llamacpp", "openai", "replicate", "hf", "route", "recipe"}
    declared = {importlib.import_module(f"{platforms.__name__}.{m}").PLATFORM.name for m in modules}
    assert declared == set(PLATFORMS)
    assert list(PLATFORMS)[:5] == ["dummy", "local", "openai", "replicate", "hf"]


@pytest.mark.parametrize("name", list(PLATFORMS))
def test_a_platform_declares_what_the_rest_uses(name: str) -> None:
    platform = PLATFORMS[name]
    assert set(platform.tasks) <= set(TASK_IO)
    assert platform.default_task is None or platform.default_task in platform.tasks
    for params in platform.tasks.values():
        assert params.model_config.get("extra") == "forbid"
        with pytest.raises(ValueError, match="temprature"):
            params.model_validate({"temprature": 0.5})
    for task in [*platform.tasks, "text-generation"]:
        module, _, function = platform.adapter_for(task).partition(":")
        assert callable(getattr(importlib.import_module(module), function))
    if platform.base_url_setting is not None:
        assert platform.base_url_setting in Settings.model_fields
    if platform.key_env is not None:
        assert credentials.PLATFORM_ENV[name] == platform.key_env


def test_keys_are_kept_for_the_platforms_that_declare_a_variable_and_for_langfuse() -> None:
    with_keys = {name for name, p in PLATFORMS.items() if p.key_env}
    assert with_keys == {"openai", "replicate", "hf"}
    assert set(credentials.PLATFORM_ENV) == with_keys | {"langfuse"}


def test_the_registry_reads_a_platforms_defaults_and_the_names_it_takes() -> None:
    info = lookup("hf:org/a-model")
    assert (info.task, info.cost_hint, info.sovereign) == (
        "text-generation",
        "by Hugging Face",
        False,
    )
    assert info.params_model is PLATFORMS["hf"].tasks["text-generation"]
    assert lookup("dummy:text").sovereign and lookup("local:org/model").sovereign
    with pytest.raises(UnknownModel, match="say what the replicate model does"):
        lookup("replicate:owner/model")  # Replicate has no default task
    with pytest.raises(UnknownModel, match=r"named by hub id 'org/name'\)"):
        lookup("hf:not-a-hub-id")
    with pytest.raises(UnknownModel, match="route:NAME and recipe:NAME also work"):
        lookup("nowhere:x")


def test_the_factory_builds_through_the_platforms_builder_with_its_endpoint(tmp_path) -> None:
    settings = Settings(home=str(tmp_path), openai_base_url="http://127.0.0.1:9/v1")
    chat = get_adapter(lookup("openai:gpt-4o-mini"), settings)
    image = get_adapter(lookup("openai:gpt-image-1"), settings)
    assert type(chat).__name__ == "OpenAIChatAdapter"
    assert type(image).__name__ == "OpenAIImageAdapter"  # the per-task builder
    assert str(chat._client.base_url) == "http://127.0.0.1:9/v1/"  # type: ignore[attr-defined]
