"""What every sandloop command shares: the app, consoles, common options and the error line.

Exit codes: 0 done, 1 the run failed (a model failure retries could not fix), 2 bad input
(spec, model, genesis, home, index) with nothing written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

app = typer.Typer(
    help="Run loops of AI models as Prefect flows and keep an exact record of every step.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar="SANDLOOP_HOME",
        help="Store folder (default ~/.sandloop).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def input_errors() -> tuple[type[BaseException], ...]:
    from sandloop.embedding.embedders import UnknownEmbedder
    from sandloop.models.errors import ModelError
    from sandloop.models.registry import RegistryError, UnknownModel
    from sandloop.specs import SpecError
    from sandloop.storage.faiss_index import VectorIndexError
    from sandloop.storage.store import StoreError
    from sandloop.storage.wal import ThreadLocked

    return (
        SpecError,
        StoreError,
        ThreadLocked,
        UnknownModel,
        RegistryError,
        ModelError,
        UnknownEmbedder,
        VectorIndexError,
    )


SessionOption = Annotated[
    str | None,
    typer.Option(
        "--session",
        envvar="SANDLOOP_SESSION",
        help="Record this under a session (see `sandloop session start`).",
        show_default=False,
    ),
]


def quiet_prefect(verbose: bool = False) -> None:
    """Prefect's INFO lines would bury the command's own output; --verbose brings them back."""
    import os

    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # No network but the package registries: Prefect's telemetry would only log errors.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def parse_pairs(pairs: list[str], option: str) -> dict[str, str]:
    """Repeated ``--option key=value`` flags as a dict; a malformed one is a one-line error."""
    parsed = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            fail(f"{option} takes key=value, got {pair!r}")
        parsed[name] = value
    return parsed
