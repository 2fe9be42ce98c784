"""What every platform's parameters are built on (each platform module defines its own).

They are pydantic models with ``extra="forbid"`` so that a typo in a spec (``temprature``) is an
error naming the field, not a silently ignored key. The validated, defaults-filled dict is what
gets hashed into the invocation key, so two specs that mean the same call share keys.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

FailureKind = Literal["unavailable", "timeout", "rate_limited", "auth", "invalid_input"]


class PlatformParams(BaseModel):
    """Strict like the specs they sit in: ``vocab: true`` is not 1, and numbers are finite."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, allow_inf_nan=False, str_max_length=100_000
    )
