"""Typed model failures: one class per failure mode, each knowing whether a retry can help.

The runner retries only ``retryable`` failures (honouring ``retry_after``); anything else stops
the run at once with the failure recorded, because calling again cannot change the answer.
"""

from __future__ import annotations

from sandloop.errors import SandloopError


class ModelError(SandloopError):
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


class NotLoadable(ModelError):
    """A model file or folder that is missing or that its library cannot read: the same load
    fails the same way however often it is tried."""

    kind = "not_loadable"


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
        NotLoadable,
    )
}


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, ModelError) and exc.retryable


def from_openai(exc: Exception, model: str) -> ModelError:
    """Map the official `openai` client's errors (OpenAI, Ollama, vLLM, llama.cpp server) to
    typed failures. The client's own retries are off: Prefect retries what can succeed."""
    import openai

    if isinstance(exc, openai.APITimeoutError):  # before APIConnectionError: it subclasses it
        return Timeout(f"no answer in time: {exc}", model=model)
    if isinstance(exc, openai.APIConnectionError):
        return Unavailable(f"cannot reach the endpoint: {exc}", model=model)
    if isinstance(exc, openai.APIResponseValidationError):
        return InvalidOutput(f"malformed response: {exc.message}", model=model)
    if not isinstance(exc, openai.APIStatusError):
        return ModelError(str(exc), model=model)
    body = exc.body if isinstance(exc.body, dict) else {}
    code = str(body.get("code") or (body.get("error") or {}).get("code") or "")
    message = f"{exc.status_code}: {exc.message}"
    if exc.status_code in (401, 403):
        return AuthError(message, model=model)
    if exc.status_code == 429:
        if code == "insufficient_quota":
            return QuotaExceeded(message, model=model)
        header = exc.response.headers.get("retry-after")
        try:
            retry_after = float(header) if header is not None else None
        except ValueError:
            retry_after = None
        return RateLimited(message, retry_after=retry_after, model=model)
    if code == "content_filter" or "content_policy" in code:
        return ContentFiltered(message, model=model)
    if exc.status_code >= 500:
        return Unavailable(message, model=model)
    return InvalidInput(message, model=model)
