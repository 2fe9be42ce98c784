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
