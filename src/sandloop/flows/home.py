"""What every flow does first: settings for its home, its store, and the catalog its specs are
checked against (the built-in one and the home's models file); and for flows a deployment
starts, the seed its parameters mean.

Flows take only a home path (deployments run them in other processes), so each opens these
itself, the same way."""

from __future__ import annotations

from pathlib import Path

from prefect import runtime

from sandloop.config import Settings
from sandloop.loops.spec_files import SpecError
from sandloop.models.registry import Catalog, catalog_for
from sandloop.storage.store import AkashicStore


def resolve_seed(seed: int | str | None) -> int | None:
    """A deployment's seed: a number (possibly given as text), or ``scheduled``, the flow run's
    scheduled time, so each firing of a schedule is its own thread and a retry of it the same."""
    if seed is None or isinstance(seed, int):
        return seed
    if seed == "scheduled":
        return int(runtime.flow_run.scheduled_start_time.timestamp())
    try:
        return int(seed)
    except ValueError:
        raise SpecError(f"seed: {seed!r} is not a number (or 'scheduled')") from None


def open_home(home: Path | str | None) -> tuple[Settings, AkashicStore, Catalog]:
    settings = Settings.for_home(home)
    return settings, AkashicStore.for_settings(settings), catalog_for(settings)
