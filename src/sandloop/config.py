"""Settings: environment variables ``SANDLOOP_*`` and a ``.env`` file, overridden by CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(ValueError):
    """A setting (an environment variable, .env or a flag) that cannot be used; one line."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SANDLOOP_", env_file=".env", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".sandloop",
        description="where the Akashic store, blobs and converted models live",
    )
    device: str = Field("cpu", description="torch device for local models")
    flush_every: int = Field(
        64, ge=1, description="steps buffered in the write-ahead log before a LanceDB write"
    )
    compact_every: int = Field(
        100, ge=1, description="LanceDB commits between compactions of a table"
    )
    retries: int = Field(3, ge=0, le=20, description="retries of a retryable model failure")
    retry_backoff_s: float = Field(
        0.5, ge=0, description="first retry delay; doubles each retry (with jitter)"
    )
    embed_model: str = Field(
        "all-MiniLM-L6-v2",
        description="embedding model: all-MiniLM-L6-v2 (offline), hashing, or any "
        "sentence-transformers name or folder",
    )
    openai_base_url: str | None = Field(
        None,
        description="base URL of an OpenAI-compatible API (Ollama: http://127.0.0.1:11434/v1); "
        "default: OpenAI's",
    )
    user: str | None = Field(
        None, description="whose API keys to use (see `sandloop keys`); default: 'default'"
    )
    embed_during_runs: bool = Field(
        True, description="embed outputs in the background while a run goes on"
    )
    ivf_threshold: int = Field(
        200_000, ge=1, description="vectors above which FAISS switches from exact to IVF"
    )
    index_backend: Literal["faiss", "elasticsearch"] = Field(
        "faiss",
        description="where vectors are searched: embedded FAISS or an Elasticsearch cluster",
    )
    es_url: str | None = Field(None, description="Elasticsearch URL, e.g. http://127.0.0.1:9200")
    es_index_prefix: str = Field("sandloop", description="Elasticsearch index name prefix")
    es_api_key: SecretStr | None = Field(None, description="Elasticsearch API key (a secret)")
    es_username: str | None = None
    es_password: SecretStr | None = Field(None, description="Elasticsearch password (a secret)")
    models_file: Path | None = Field(
        None, description="your models and routes (YAML); default: <home>/models.yaml"
    )
    hf_base_url: str = Field(
        "https://router.huggingface.co/hf-inference",
        description="Hugging Face Inference base URL (models are posted to <base>/models/<id>)",
    )
    replicate_base_url: str | None = Field(
        None, description="Replicate API base URL; default: Replicate's"
    )
    gemma_folder: Path | None = Field(
        None, description="a converted Gemma 3 270M folder; default: <home>/models/gemma-3-270m"
    )

    server_dir: Path = Field(
        default_factory=lambda: Path.home() / ".sandloop" / "server",
        description="where `sandloop server` keeps its PID, log and SQLite database",
    )

    @field_validator("home", mode="before")
    @classmethod
    def _home_given(cls, value: object) -> object:
        """An empty home would silently mean the current folder."""
        if isinstance(value, str | Path) and not str(value).strip():
            raise ValueError("is empty; give a folder (the default is ~/.sandloop)")
        return value

    @classmethod
    def for_home(cls, home: Path | str | None = None) -> Settings:
        """Settings from the environment, with the home folder overridden when one is given."""
        if home is not None and not str(home).strip():
            raise SettingsError("--home is empty; give a folder (the default is ~/.sandloop)")
        try:
            return cls(home=Path(home).expanduser()) if home is not None else cls()
        except ValidationError as exc:
            first = exc.errors()[0]
            name = "SANDLOOP_" + "_".join(str(p) for p in first["loc"]).upper()
            raise SettingsError(
                f"{name}: {str(first['msg']).removeprefix('Value error, ')}"
            ) from None

    @property
    def store_path(self) -> Path:
        return self.home / "akashic"

    @property
    def models_file_path(self) -> Path:
        return self.models_file or self.home / "models.yaml"

    @property
    def models_path(self) -> Path:
        return self.home / "models"
