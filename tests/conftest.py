"""Shared fixtures: one real Prefect backend per test session, real stores in temp folders, and
tiny real models built on the spot."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

# keyrings.alt, the keyring backend below, is installed by `make test` into .test-site, outside
# .venv (in a user's environment it would become their keyring): this process and the commands
# it starts find it there.
_TEST_SITE = str(Path(__file__).resolve().parents[1] / ".test-site")
sys.path.insert(0, _TEST_SITE)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_TEST_SITE, os.environ.get("PYTHONPATH")]))

# Before anything imports prefect: a private Prefect home, no telemetry (no network here),
# no ~1 s heartbeat wait per flow run, and nothing may download model files.
_PREFECT_HOME = tempfile.mkdtemp(prefix="sandloop-prefect-")
os.environ.update(
    {
        "PREFECT_HOME": _PREFECT_HOME,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "SANDLOOP_RETRY_BACKOFF_S": "0.01",
        # Runs embed in the background; the hashing embedder keeps that instant in tests that
        # are not about embeddings (those pick the real all-MiniLM-L6-v2 explicitly).
        "SANDLOOP_EMBED_MODEL": "hashing",
        # A real keyring backend (a file) in a private folder, never the developer's own.
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "XDG_DATA_HOME": tempfile.mkdtemp(prefix="sandloop-keyring-"),
        # Never the developer's own `sandloop server`: commands would find it and use it.
        "SANDLOOP_SERVER_DIR": tempfile.mkdtemp(prefix="sandloop-server-"),
    }
)
# Commands' one-time `sandloop server start` hint was given (server.HINTED_FILE): an error
# line is the only line of a failing command. tests/e2e/test_server_hint.py gives it afresh.
Path(os.environ["SANDLOOP_SERVER_DIR"], "hinted").touch()
for _name in ("OPENAI_API_KEY", "REPLICATE_API_TOKEN", "HF_TOKEN", "SANDLOOP_USER"):
    os.environ.pop(_name, None)
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("SANDLOOP_HOME", None)

import pytest  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    import importlib.util

    if importlib.util.find_spec("keyrings.alt") is None:
        raise pytest.UsageError(
            "the tests' keyring backend is missing: run `make test`, which installs "
            "keyrings.alt into .test-site"
        )


# Rows shaped like real network steps, shared with the benchmarks.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from tests import s3_server  # noqa: E402
from tests.hf_server import FakeHF  # noqa: E402
from tests.openai_server import FakeOpenAI  # noqa: E402
from tests.replicate_server import FakeReplicate  # noqa: E402
from tests.s3_server import S3Server  # noqa: E402
from tests.tiny_models import build_tiny_clip, build_tiny_gpt2  # noqa: E402

# The longest test files, measured (`--durations`), slowest first: two workers take whole files
# in collection order, so these start first and neither worker is left running one of them at
# the end while the other idles.
LONGEST_FILES = (
    "tests/e2e/test_gemma_demo.py",
    "tests/e2e/test_cli_exports.py",
    "tests/e2e/test_cli_server.py",
    "tests/flows/test_many_workers.py",
    "tests/e2e/test_cli_remote.py",
    "tests/web/test_work_queue_contention.py",
    "tests/e2e/test_cli_failure_modes.py",
    "tests/e2e/test_cli_under_stress.py",
    "tests/fuzz/test_fuzz.py",
    "tests/e2e/test_cli_concurrent_homes.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: n for n, path in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture(scope="session")
def prefect_api_url() -> Iterator[str]:
    """A real Prefect API server for the whole session (started once, ~10 s)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """moto's S3 server on 127.0.0.1 for the session (a bucket per test: `s3.bucket()`)."""
    server = s3_server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_home(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A remote home in a fresh bucket; the AWS variables point this process at it too."""
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    return f"s3://{s3.bucket()}/home"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def cli_env(prefect_api_url: str, home: Path) -> dict[str, str]:
    """Environment for `sandloop` subprocesses: the session's Prefect server and a fresh home."""
    env = dict(os.environ)
    env["PREFECT_API_URL"] = prefect_api_url
    env["SANDLOOP_HOME"] = str(home)
    env["COLUMNS"] = "200"
    return env


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture
def replicate_api() -> Iterator[FakeReplicate]:
    """A local Replicate API (its recorded state; `.url` is the base URL)."""
    from tests import replicate_server

    server, state = replicate_server.start()
    yield state
    server.shutdown()


@pytest.fixture
def hf_api() -> Iterator[FakeHF]:
    """A local Hugging Face Inference API (its recorded state; `.url` is the base URL)."""
    from tests import hf_server

    server, state = hf_server.start()
    yield state
    server.shutdown()


@pytest.fixture
def endpoint() -> Iterator[tuple[FakeOpenAI, str]]:
    """A local OpenAI-compatible server: (its recorded state, its base URL)."""
    from tests import openai_server

    server, state, url = openai_server.start()
    yield state, url
    server.shutdown()


@pytest.fixture(scope="session")
def tiny_local_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny seq2seq, masked-LM, NLI-classifier, captioning, speech-recognition and text-to-speech
    models, built locally (~3 s)."""
    from tests import tiny_models

    root = tmp_path_factory.mktemp("tiny-local")
    return {
        "seq2seq": tiny_models.build_tiny_bart(root / "bart"),
        "mlm": tiny_models.build_tiny_roberta(root / "mlm", "mlm"),
        "nli": tiny_models.build_tiny_roberta(
            root / "nli", "classifier", ["contradiction", "neutral", "entailment"]
        ),
        "captioner": tiny_models.build_tiny_captioner(root / "captioner"),
        "asr": tiny_models.build_tiny_wav2vec2(root / "asr"),
        "tts": tiny_models.build_tiny_vits(root / "tts"),
    }
