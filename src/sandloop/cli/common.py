"""What every sandloop command shares: the app, consoles, common options and the error line.

Exit codes: 0 done, 1 the run failed (a model failure retries could not fix, a store that stopped
answering), 2 bad input (spec, model, genesis, home, index) with nothing written. Every expected
error is a `SandloopError` that knows its code, reported once, here.
"""

from __future__ import annotations

import contextlib
import errno
import logging
from typing import Annotated, Any, NoReturn

import typer
import typer._click.exceptions as click_errors  # typer vendors click since 0.29
from rich.console import Console
from typer.core import TyperGroup

from sandloop.errors import SandloopError


class _ReportsErrors(TyperGroup):
    """Every command's expected failures end here as one `error:` line: bad input exits 2, a
    full disk 1 (what was recorded is kept). A command may still catch its own to say more."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except click_errors.NoArgsIsHelpError:
            raise
        except click_errors.UsageError as exc:  # a missing option, a bad value, a typo
            fail(f"{exc.format_message()} (see `{_visible_path(exc.ctx or ctx)} --help`)")
        except SandloopError as exc:
            fail(str(exc), code=exc.exit_code)
        except KeyboardInterrupt:
            fail(INTERRUPTED, code=130)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            fail(DISK_FULL, code=1)
        except RuntimeError as exc:
            text = str(exc)
            if "no space left on device" in text.lower():  # LanceDB wraps I/O errors
                fail(DISK_FULL, code=1)
            if text.startswith(PREFECT_UNREACHABLE):  # after the Prefect client's own retries
                url = text.removeprefix(PREFECT_UNREACHABLE).strip()
                fail(
                    f"the Prefect server at {url} does not answer (its client retried with "
                    "backoff); start it (`sandloop server start`), or unset PREFECT_API_URL to "
                    "run on a temporary local one"
                )
            raise
        except Exception as exc:  # last: the clauses above come first
            if (answered := _prefect_server_failed(exc)) is not None:
                fail(answered, code=1)
            raise


def _prefect_server_failed(exc: BaseException) -> str | None:
    """The line for a Prefect server that answered 5xx after its client's own retries (an
    overloaded SQLite server answers 503): the command was right, so the same command goes on
    once the server keeps up. None for anything else."""
    import sys

    if "prefect" not in sys.modules:
        return None
    from prefect.exceptions import PrefectHTTPStatusError

    if not isinstance(exc, PrefectHTTPStatusError) or exc.response.status_code < 500:
        return None
    url = str(exc.request.url).split("/api/")[0]
    return (
        f"the Prefect server at {url} answered {exc.response.status_code} "
        f"{exc.response.reason_phrase} after its client's retries (it is overloaded or failing); "
        "every step recorded so far is kept: run the same command again once it answers "
        "(on many runs at once, put it on PostgreSQL: `sandloop server start --database`)"
    )


def _visible_path(ctx: Any) -> str:
    """The command a user typed: a hidden default command (`export dataset`, reached as
    `sandloop export SNAPSHOT`) is named by its group."""
    while ctx.parent is not None and getattr(ctx.command, "hidden", False):
        ctx = ctx.parent
    return str(ctx.command_path)


PREFECT_UNREACHABLE = "Failed to reach API at"
INTERRUPTED = "interrupted; every step recorded so far is kept: run the same command to go on"
DISK_FULL = (
    "no space left on device; every step recorded so far is kept: free some space and run the "
    "same command again to go on"
)


app = typer.Typer(
    cls=_ReportsErrors,
    help="Run loops of AI models as Prefect flows and keep an exact record of every step.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

# Text, not a Path: click would turn an empty --home into '.', the current folder.
HomeOption = Annotated[
    str | None,
    typer.Option(
        "--home",
        envvar="SANDLOOP_HOME",
        help="Store folder (default ~/.sandloop).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
WideOption = Annotated[
    bool,
    typer.Option("--wide", help="Every column: at 80 columns a table keeps its key ones only."),
]


def fail(message: str, code: int = 2) -> NoReturn:
    """The one line a failed command prints (markup in the message is shown as text)."""
    from rich.markup import escape

    from sandloop.scrub import scrub
    from sandloop.storage.location import storage_secrets

    line = " ".join(scrub(message, storage_secrets()).split())  # one line, whatever it holds
    err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


SessionOption = Annotated[
    str | None,
    typer.Option(
        "--session",
        envvar="SANDLOOP_SESSION",
        help="Record this under a session (see `sandloop session start`).",
        show_default=False,
    ),
]


class _CommandReportsFailures(logging.Filter):
    """A command prints a failed run or a refusal itself, as one line: Prefect's ERROR records
    of the same failure (with their tracebacks) would only bury it. Warnings still show."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


# Prefect's background services (events, API logs) say at exit how many items they still have to
# send; they send them all the same, so in a command's output it is only a stray line.
_SERVICE_LOGGERS = ("EventsWorker", "APILogWorker")

# The loggers Prefect reports flow and task run failures through.
_RUN_LOGGERS = (
    "prefect.flow_runs",
    "prefect.task_runs",
    "prefect.flow_engine",
    "prefect.task_engine",
)


def prepare_prefect(verbose: bool = False) -> bool:
    """Before a command's first Prefect call: the managed server when it is up (said once), and
    quiet logs, since Prefect's INFO lines would bury the command's own output and its ERROR lines
    repeat the command's own error line; --verbose brings both back.

    True when the command's Prefect calls start a temporary server (see
    `suggest_a_server_once`)."""
    import os

    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        # The temporary server's services log ERROR tracebacks when they are cancelled at exit
        # with a task-run event still unwritten: Prefect's bookkeeping of a server that is
        # going away, which sandloop's record does not depend on.
        os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
        for name in _RUN_LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(f, _CommandReportsFailures) for f in logger.filters):
                logger.addFilter(_CommandReportsFailures())
        for name in _SERVICE_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
    # No network but the package registries: Prefect's telemetry would only log errors.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The temporary server takes ~16 s to start on 2 busy cores, and Prefect gives up at 20:
    # a loaded machine failed a run before its first step. A minute and a half, unless set.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    return _use_managed_server()


def _use_managed_server() -> bool:
    """A server the user named (PREFECT_API_URL, or their Prefect profile) wins; otherwise the
    one `sandloop server start` keeps, which spares the temporary server's start on every call.
    Prefect reads its settings once, on import, so this runs before anything imports it.
    True when there is neither, so Prefect starts a temporary server."""
    import os
    import sys

    if os.environ.get("PREFECT_API_URL") or "prefect" in sys.modules or _profile_api_url():
        return False
    from sandloop import server

    if server.configured_state_dir() is None:  # a bad SANDLOOP_* setting: the command says so
        return False
    found = server.managed()
    if found is None:
        return True
    os.environ["PREFECT_API_URL"] = found.url
    err.print(
        f"using the Prefect server at {found.ui_url} (`sandloop server status`)", highlight=False
    )
    return False


def suggest_a_server_once() -> None:
    """A newcomer's first loops each wait seconds for a temporary Prefect server, with the
    progress bar at 0: one line, the first time only, says why and how to spare it. A loop
    command says it once its inputs are checked, so a wrong one is still one error line."""
    from sandloop import server

    state_dir = server.configured_state_dir()
    if state_dir is None or (hinted := state_dir / server.HINTED_FILE).exists():
        return
    err.print(
        "no `sandloop server` is up, so each command starts a temporary Prefect server "
        "(seconds); `sandloop server start` keeps one up for every command (said once)",
        highlight=False,
    )
    with contextlib.suppress(OSError):  # a read-only home: the hint comes again, harmlessly
        hinted.parent.mkdir(parents=True, exist_ok=True)
        hinted.touch()


def _profile_api_url() -> str | None:
    """PREFECT_API_URL from the active Prefect profile (profiles.toml under PREFECT_HOME)."""
    import os
    import tomllib
    from pathlib import Path

    prefect_home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    try:
        profiles = tomllib.loads((prefect_home / "profiles.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    settings = profiles.get("profiles", {}).get(active, {})
    url = settings.get("PREFECT_API_URL") if isinstance(settings, dict) else None
    return str(url) if url else None


def parse_pairs(pairs: list[str], option: str) -> dict[str, str]:
    """Repeated ``--option key=value`` flags as a dict; a malformed one is a one-line error."""
    parsed = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            fail(f"{option} takes key=value, got {pair!r}")
        parsed[name] = value
    return parsed
