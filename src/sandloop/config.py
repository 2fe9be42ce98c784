"""Settings: environment variables ``SANDLOOP_*`` and a ``.env`` file, overridden by CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandloop.errors import SandloopError

if TYPE_CHECKING:
    from sandloop.storage.location import Location


class SettingsError(SandloopError, ValueError):
    """A setting (an environment variable, .env or a flag) that cannot be used; one line."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SANDLOOP_", env_file=".env", extra="ignore")
    _local_location: tuple[str, Location] | None = PrivateAttr(None)  # see ``location``

    home: str = Field(
        default_factory=lambda: str(Path.home() / ".sandloop"),
        description="where the Akashic store and blobs live: a folder, or s3://BUCKET/PREFIX "
        "(gs://, az://) on object storage",
    )
    storage_options: str | None = Field(
        None,
        description="JSON object of LanceDB storage options for a remote home, over those "
        "read from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION",
    )
    cache_dir: Path | None = Field(
        None,
        description="this machine's cache for a remote home (converted models, FAISS indexes); "
        "default ~/.cache/sandloop/<home hash>",
    )
    lease_s: float = Field(
        30.0,
        ge=2,
        le=3600,
        description="seconds a remote thread's writer holds it without renewing: how soon a "
        "dead worker's thread can be taken over",
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
    image_embed_model: str | None = Field(
        None,
        description="image embedding model (CLIP-style: a hub id or folder); none ships "
        "offline, so image outputs are not embedded unless one is set",
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
        False,
        description="embed outputs in the background while a run goes on, and wait for them "
        "at its end; off: a run never waits, and the next `search` or `embed` makes them",
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
    llamacpp_threads: int | None = Field(
        None, ge=1, le=1024, description="CPU threads llama.cpp models use; default: every core"
    )

    max_body_mb: float = Field(
        4.0,
        gt=0,
        le=1024,
        description="the largest request body `sandloop api` reads, in MiB (public routes take "
        "at most 64 KiB); past it: 413, the rest unread",
    )
    served_max_steps: int = Field(
        1000, ge=1, description="the most steps a run started over HTTP or MCP may ask for"
    )
    served_max_models: int = Field(
        32, ge=1, description="the most models in a network started over HTTP or MCP"
    )
    served_max_duration_s: float = Field(
        86_400.0, gt=0, description="the longest max_duration_s a run started over HTTP or MCP"
    )
    max_streams: int = Field(
        1000, ge=1, le=100_000, description="live event streams `sandloop api` holds open at once"
    )
    max_streams_per_client: int = Field(
        20, ge=1, le=100_000, description="live event streams one client address may hold open"
    )
    stream_idle_s: float = Field(
        300.0,
        gt=0,
        description="seconds a live stream with nothing new stays open (EventSource reconnects)",
    )
    moderation_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="how long `sandloop api --moderate` waits for its recipe's verdict on a "
        "visitor's prompt; past it the prompt is declined",
    )
    public_url: str | None = Field(
        None,
        description="the address visitors reach `sandloop api` at (the gallery's QR code); "
        "default: where it listens",
    )
    trusted_proxies: str = Field(
        "",
        description="comma-separated addresses of reverse proxies whose X-Forwarded-For "
        "`sandloop api` believes; empty (the default): none, every client is its own address",
    )

    server_dir: Path = Field(
        default_factory=lambda: Path.home() / ".sandloop" / "server",
        description="where `sandloop server` keeps its PID, log and SQLite database",
    )

    @field_validator("home", mode="before")
    @classmethod
    def _home_given(cls, value: object) -> object:
        """An empty home would silently mean the current folder. A local home is made
        absolute here; a URL is checked (its scheme, a bucket) and kept as typed."""
        from sandloop.storage.location import LocationError, parse

        if isinstance(value, str | Path) and not str(value).strip():
            raise ValueError("is empty; give a folder (the default is ~/.sandloop)")
        if isinstance(value, str | Path):
            try:
                return parse(value).url
            except LocationError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("storage_options")
    @classmethod
    def _options_are_json(cls, value: str | None) -> str | None:
        from sandloop.storage.location import LocationError, parse_options

        try:
            parse_options(value)
        except LocationError as exc:
            raise ValueError(str(exc).removeprefix("SANDLOOP_STORAGE_OPTIONS ")) from None
        return value

    @classmethod
    def for_home(cls, home: Path | str | None = None) -> Settings:
        """Settings from the environment, with the home folder overridden when one is given."""
        if home is not None and not str(home).strip():
            raise SettingsError("--home is empty; give a folder (the default is ~/.sandloop)")
        try:
            return cls(home=str(home)) if home is not None else cls()
        except ValidationError as exc:
            first = exc.errors()[0]
            name = "SANDLOOP_" + "_".join(str(p) for p in first["loc"]).upper()
            raise SettingsError(
                f"{name}: {str(first['msg']).removeprefix('Value error, ')}"
            ) from None

    @property
    def location(self) -> Location:
        """Parsed on each use, except a local folder's, which is kept for the home it was found
        for: every model call finds its home's models file through it, and resolving a path
        costs ~20 µs. A remote home's options come from the environment, so it is not kept."""
        from sandloop.storage.location import parse

        kept = self._local_location
        if kept is not None and kept[0] == self.home:
            return kept[1]
        location = parse(self.home, self.storage_options)
        if not location.remote:
            self._local_location = (self.home, location)
        return location

    @property
    def local_dir(self) -> Path:
        """The home itself when it is a folder; this machine's cache of it when it is remote.
        Converted models, indexes, your models.yaml and recipes are found here."""
        location = self.location
        if not location.remote:
            return location.local
        return self.cache_dir.expanduser() if self.cache_dir else location.cache_dir()

    @property
    def models_file_path(self) -> Path:
        return self.models_file or self.local_dir / "models.yaml"

    @property
    def models_path(self) -> Path:
        return self.local_dir / "models"
