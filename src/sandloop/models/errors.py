"""Typed model failures: one class per failure mode, each knowing whether a retry can help.

The runner retries only ``retryable`` failures (honouring ``retry_after``); anything else stops
the run at once with the failure recorded, because calling again cannot change the answer.
"""

from __future__ import annotations


class ModelError(Exception):
    retryable: bool = False
    kind: str = "model_error"

    def __init__(self, message: str, *, model: str | None = None) -> None:
        super().__init__(message)
        self.model = model

    def one_line(self) -> str:
        where = f"{self.model}: " if self.model else ""
        return f"{type(self).__name__}: {where}{self}"


class AuthError(ModelError):
    kind = "auth"


class RateLimited(ModelError):
    retryable = True
    kind = "rate_limited"

    def __init__(
        self, message: str, *, retry_after: float | None = None, model: str | None = None
    ) -> None:
        super().__init__(message, model=model)
        self.retry_after = retry_after


class Timeout(ModelError):
    retryable = True
    kind = "timeout"


class ContentFiltered(ModelError):
    kind = "content_filtered"


class InvalidInput(ModelError):
    kind = "invalid_input"


class InvalidOutput(ModelError):
    kind = "invalid_output"


class Unavailable(ModelError):
    retryable = True
    kind = "unavailable"


class QuotaExceeded(ModelError):
    kind = "quota_exceeded"


BY_KIND: dict[str, type[ModelError]] = {
    cls.kind: cls
    for cls in (
        AuthError,
        RateLimited,
        Timeout,
        ContentFiltered,
        InvalidInput,
        InvalidOutput,
        Unavailable,
        QuotaExceeded,
    )
}


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, ModelError) and exc.retryable
