"""Where a home lives: a local folder, or a prefix on object storage (S3, GCS, Azure).

LanceDB, the blob store and the write-ahead log all reach a remote home through the same
options, built once here: the standard variables of each cloud (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, …), then
``SANDLOOP_STORAGE_OPTIONS`` (JSON, LanceDB's option names) on top.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandloop.errors import SandloopError

#: The schemes LanceDB and obstore both support, by the cloud they are.
REMOTE_SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gs", "gcs": "gs", "az": "az", "abfs": "az"}

# The standard environment variables, as LanceDB's (object_store's) option names.
_ENV_OPTIONS = {
    "s3": {
        "AWS_ENDPOINT_URL": "aws_endpoint",
        "AWS_ENDPOINT_URL_S3": "aws_endpoint",
        "AWS_ACCESS_KEY_ID": "aws_access_key_id",
        "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
        "AWS_SESSION_TOKEN": "aws_session_token",
        "AWS_REGION": "aws_region",
        "AWS_DEFAULT_REGION": "aws_region",
    },
    "gs": {"GOOGLE_SERVICE_ACCOUNT": "google_service_account"},
    "az": {
        "AZURE_STORAGE_ACCOUNT_NAME": "azure_storage_account_name",
        "AZURE_STORAGE_ACCOUNT_KEY": "azure_storage_account_key",
    },
}
# Options that configure the HTTP client rather than the store (obstore takes them apart).
_CLIENT_OPTIONS = {"allow_http", "timeout", "connect_timeout", "allow_invalid_certificates"}
#: LanceDB's own retries of a request: its default (3 tries in half a second) gives up on an
#: endpoint that is restarting; these back off for up to three minutes.
LANCE_RETRIES = {"client_max_retries": "10", "client_retry_timeout": "180"}
#: Secrets among the options: never shown, logged or recorded.
SECRET_OPTIONS = {
    "aws_secret_access_key",
    "aws_session_token",
    "azure_storage_account_key",
    "google_service_account_key",
}


def storage_secrets() -> list[str]:
    """The object-store secrets this process was given (variables and SANDLOOP_STORAGE_OPTIONS):
    what error lines and records are scrubbed of, beside the model keys."""
    found = [
        os.environ[variable]
        for options in _ENV_OPTIONS.values()
        for variable, option in options.items()
        if option in SECRET_OPTIONS and os.environ.get(variable)
    ]
    try:
        extra = parse_options(os.environ.get("SANDLOOP_STORAGE_OPTIONS"))
    except LocationError:
        extra = {}
    return found + [v for k, v in extra.items() if k in SECRET_OPTIONS and v]


class LocationError(SandloopError, ValueError):
    """A home URL that cannot be used; one line."""


@dataclass(frozen=True)
class Location:
    """A home: ``url`` is an absolute local path or ``scheme://bucket/prefix``."""

    url: str
    cloud: str | None = None  # "s3", "gs", "az"; None for a local folder
    options: dict[str, str] = field(default_factory=dict)

    @property
    def remote(self) -> bool:
        return self.cloud is not None

    @property
    def local(self) -> Path:
        if self.remote:
            raise LocationError(f"{self.url} is on object storage, not a local folder")
        return Path(self.url)

    def child(self, *parts: str) -> str:
        return "/".join([self.url.rstrip("/"), *parts])

    def __str__(self) -> str:
        return self.url

    def fsspec_options(self) -> dict[str, Any]:
        """The same credentials in fsspec's (s3fs, gcsfs, adlfs) terms, for the blobs."""
        o = self.options
        if self.cloud == "s3":
            client: dict[str, Any] = {}
            if "aws_endpoint" in o:
                client["endpoint_url"] = o["aws_endpoint"]
            if "aws_region" in o:
                client["region_name"] = o["aws_region"]
            result: dict[str, Any] = {"client_kwargs": client}
            if "aws_access_key_id" in o:
                result["key"] = o["aws_access_key_id"]
                result["secret"] = o.get("aws_secret_access_key")
            if "aws_session_token" in o:
                result["token"] = o["aws_session_token"]
            return result
        if self.cloud == "az":
            return {
                k: v
                for k, v in {
                    "account_name": o.get("azure_storage_account_name"),
                    "account_key": o.get("azure_storage_account_key"),
                }.items()
                if v
            }
        return {}

    def obstore_options(self) -> tuple[dict[str, str], dict[str, str]]:
        """(store config, HTTP client options) for obstore, which splits what LanceDB joins."""
        store = {k: v for k, v in self.options.items() if k not in LANCE_RETRIES}
        config = {k: v for k, v in store.items() if k not in _CLIENT_OPTIONS}
        client = {k: v for k, v in store.items() if k in _CLIENT_OPTIONS}
        return config, client

    def cache_dir(self, root: Path | None = None) -> Path:
        """This machine's folder for what a remote home's users cache locally (converted
        models, FAISS indexes, embedding caches): one per home, never shared."""
        if not self.remote:
            return self.local
        base = root or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sandloop"
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:12]
        return base / digest


def _env_options(cloud: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for variable, option in _ENV_OPTIONS.get(cloud, {}).items():
        value = os.environ.get(variable)
        if value and option not in options:
            options[option] = value
    endpoint = options.get("aws_endpoint", "")
    if endpoint.startswith("http://"):  # a local S3 (MinIO, moto): plain HTTP is intended
        options["allow_http"] = "true"
    return options


def parse_options(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise LocationError("SANDLOOP_STORAGE_OPTIONS is not JSON") from None
    if not isinstance(parsed, dict) or not all(isinstance(k, str) for k in parsed):
        raise LocationError('SANDLOOP_STORAGE_OPTIONS must be a JSON object: {"name": "value"}')
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in parsed.items()}


def parse(home: str | Path, storage_options: str | None = None) -> Location:
    """A home as typed by a user (``~/x``, ``./x``, ``s3://bucket/x``) as a Location."""
    text = str(home).strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        return Location(str(Path(text).expanduser().resolve()))
    cloud = REMOTE_SCHEMES.get(scheme.lower())
    if scheme.lower() == "file":
        return Location(str(Path(rest).expanduser().resolve()))
    if cloud is None:
        supported = ", ".join(f"{s}://" for s in ("s3", "gs", "az"))
        raise LocationError(
            f"home {text!r}: {scheme}:// is not a supported store; give a local folder or "
            f"{supported}BUCKET/PREFIX"
        )
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise LocationError(f"home {text!r} names no bucket: give {scheme}://BUCKET/PREFIX")
    url = f"{scheme.lower()}://{bucket}" + (f"/{prefix.strip('/')}" if prefix.strip("/") else "")
    options = {**LANCE_RETRIES, **_env_options(cloud), **parse_options(storage_options)}
    return Location(url, cloud, options)
