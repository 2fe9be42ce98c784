"""The root of every error sandloop expects: each knows the exit code the CLI gives it, so the
CLI reports all of them in one place, as one `error:` line.

Bad input (a spec, a model, a genesis, a home, an index) is 2 with nothing written. A store that
stopped answering mid-run is 1, like a failed run: the command was right, and the same command
goes on once the store answers.
"""

from __future__ import annotations


class SandloopError(Exception):
    """An expected failure whose message is one line a user can act on."""

    exit_code: int = 2


def is_unreachable(exc: BaseException) -> bool:
    """A transport error of an HTTP client library (httpx, or the httpx2 newer huggingface_hub
    uses: no one class to name across majors), or the OS refusing the connection: the other end
    does not answer, which an error line can say without a traceback."""
    library = type(exc).__module__.split(".")[0]
    return isinstance(exc, OSError) or library in {"httpx", "httpx2", "httpcore", "httpcore2"}
