"""API keys never reach records, logs or Prefect: run with keys set and look everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandloop import api
from sandloop.config import Settings
from sandloop.loops.network.spec import RunSpec

SECRETS = {"SANDLOOP_ES_API_KEY": "es-key-0xC0FFEE", "SANDLOOP_ES_PASSWORD": "es-pass-0xBEEF"}


def test_settings_never_render_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    rendered = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
    ]
    assert all(v not in text for v in SECRETS.values() for text in rendered)
    assert settings.es_api_key is not None
    assert settings.es_api_key.get_secret_value() == SECRETS["SANDLOOP_ES_API_KEY"]


@pytest.mark.usefixtures("prefect_api_url")
def test_a_run_with_keys_set_leaves_no_trace(
    home: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    run = RunSpec.model_validate(
        {
            "network": {"name": "s", "models": ["dummy:text"]},
            "genesis": "g",
            "seed": 1,
            "stop": {"max_steps": 3},
        }
    )
    api.run_network(run, home)
    api.embed(home)  # the vectors too
    stored = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    assert all(v.encode() not in stored for v in SECRETS.values())
    store = api.open_store(home)
    for table in ("invocations", "runs", "embeddings"):
        cells = store.select(table).astype(str).to_numpy().ravel()
        assert len(cells) and not any(v in str(cell) for v in SECRETS.values() for cell in cells)
    captured = capfd.readouterr()
    assert all(v not in captured.out + captured.err for v in SECRETS.values())
