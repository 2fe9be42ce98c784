"""The sandloop command line (typer): one module per group of commands."""

from sandloop.cli import (  # noqa: F401 - importing registers the commands
    dialogues,
    doctor,
    exports,
    keys,
    recipes,
    runs,
    scores,
    search,
    serve,
    server,
    sessions,
    sweeps,
    web,
)
from sandloop.cli.common import app

__all__ = ["app"]
