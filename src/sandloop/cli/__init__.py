"""The sandloop command line (typer): one module per group of commands."""

from sandloop.cli import keys, runs, search  # noqa: F401 - importing registers the commands
from sandloop.cli.common import app

__all__ = ["app"]
