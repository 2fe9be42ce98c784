"""The store's errors that every storage module may raise (the CLI shows them as one line)."""

from sandloop.errors import SandloopError


class StoreError(SandloopError, RuntimeError):
    """The store cannot be opened or written; the message says what to change."""


class StoreUnavailable(StoreError):
    """The object store stopped answering mid-work, after its client's retries: nothing durable
    is lost, and the same command goes on from the last durable step once it answers again."""

    exit_code = 1
