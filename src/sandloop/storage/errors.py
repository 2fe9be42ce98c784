"""The store's errors that every storage module may raise (the CLI shows them as one line)."""


class StoreError(RuntimeError):
    """The store cannot be opened or written; the message says what to change."""
