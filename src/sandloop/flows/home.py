"""What every flow does first: settings for its home, that home's models file, its store.

Flows take only a home path (deployments run them in other processes), so each opens these
itself, the same way."""

from __future__ import annotations

from pathlib import Path

from sandloop.config import Settings
from sandloop.models import registry
from sandloop.storage.store import AkashicStore


def open_home(home: Path | str | None) -> tuple[Settings, AkashicStore]:
    settings = Settings.for_home(home)
    registry.configure(settings.models_file_path, settings.home)
    return settings, AkashicStore.open(settings.home, compact_every=settings.compact_every)
