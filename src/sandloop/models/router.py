"""The router: one job, an ordered list of candidate models, and what to do when one fails.

A spec names ``route:NAME`` where it would name a model. Candidates are tried in order (local
ones first unless the route says otherwise); a typed failure moves on to the next one. An auth
failure marks the whole platform unusable for the process (every model there will fail the same
way); rate limits, outages, quotas, timeouts and content filters put that candidate in a
cooldown; bad input or output is specific to this call and only moves on. Every decision goes
into the step's metadata, so the record says which model answered and why the others did not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sandloop.models.base import AdapterContext, CallContext, ModelAdapter, ModelInput, ModelOutput
from sandloop.models.errors import AuthError, ModelError, Unavailable
from sandloop.models.registry import Catalog, ModelInfo, RouteSpec, catalog_for

# A candidate that cannot load now will not load on the next call either: it waits out a cool-down
# rather than costing every call a failed load.
_COOL_DOWN = frozenset({"rate_limited", "unavailable", "quota_exceeded", "timeout", "not_loadable"})
_COOL_DOWN_FILTERED = "content_filtered"


@dataclass
class RouterHealth:
    """What the process has learnt about candidates: platforms that refused our key, and
    candidates cooling down until a monotonic time. Shared by every route in the process."""

    clock: Callable[[], float] = time.monotonic
    unusable_platforms: dict[str, str] = field(default_factory=dict)
    cooling_until: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cooldown_left(self, info: ModelInfo) -> float:
        with self.lock:
            return max(0.0, self.cooling_until.get(info.ref, 0.0) - self.clock())

    def unusable(self, info: ModelInfo) -> str | None:
        with self.lock:
            return self.unusable_platforms.get(info.platform)

    def record_failure(self, info: ModelInfo, error: ModelError, cooldown_s: float) -> None:
        with self.lock:
            if isinstance(error, AuthError):
                self.unusable_platforms[info.platform] = error.one_line()
            elif error.kind in _COOL_DOWN or error.kind == _COOL_DOWN_FILTERED:
                self.cooling_until[info.ref] = self.clock() + cooldown_s

    def reset(self) -> None:
        with self.lock:
            self.unusable_platforms.clear()
            self.cooling_until.clear()


HEALTH = RouterHealth()


class RouteFailed(Unavailable):
    """Every candidate failed or was skipped. Retryable only if one of the failures was."""

    kind = "route_failed"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        model: str,
        decisions: list[dict[str, Any]],
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, model=model)
        self.retryable = retryable
        self.decisions = decisions
        self.retry_after = retry_after  # when the first cooling candidate is usable again


def ordered_candidates(route: RouteSpec, catalog: Catalog) -> list[ModelInfo]:
    """Candidates in the order they are tried: sovereign (local) first when the route says so,
    otherwise as written; the sort is stable, so the written order breaks ties."""
    infos = [catalog.lookup(ref) for ref in route.candidates]
    if route.sovereign_first:
        infos.sort(key=lambda info: not info.sovereign)
    return infos


def candidate_params(route: RouteSpec, info: ModelInfo) -> dict[str, Any]:
    return info.params_for(route.params.get(info.ref))


class RouterAdapter:
    """A route behaving as one model: ``generate`` returns the first candidate's answer that
    works, with the decisions in ``ModelOutput.metadata["route"]``."""

    def __init__(
        self,
        ref: str,
        route: RouteSpec,
        catalog: Catalog,
        adapter_for: Callable[[ModelInfo], ModelAdapter],
        health: RouterHealth = HEALTH,
    ) -> None:
        self.ref, self.route, self.adapter_for, self.health = ref, route, adapter_for, health
        # Resolved once: the order and each candidate's validated parameters never change.
        self.candidates = [
            (info, candidate_params(route, info)) for info in ordered_candidates(route, catalog)
        ]

    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput:
        decisions: list[dict[str, Any]] = []
        retryable = False
        cooling: list[float] = []
        for info, params in self.candidates:
            skip = self._why_skip(info, model_input, cooling)
            if skip is not None:
                decisions.append({"model": info.ref, "decision": "skipped", "why": skip})
                continue
            try:
                output = self.adapter_for(info).generate(model_input, params, ctx)
            except ModelError as error:
                self.health.record_failure(info, error, self.route.cooldown_s)
                retryable = retryable or error.retryable
                decisions.append({"model": info.ref, "decision": "failed", "why": error.one_line()})
                continue
            decisions.append({"model": info.ref, "decision": "chosen"})
            metadata = {**output.metadata, "route": {"chosen": info.ref, "decisions": decisions}}
            return replace(output, metadata=metadata)
        summary = "; ".join(f"{d['model']}: {d['why']}" for d in decisions)
        raise RouteFailed(
            f"no candidate answered ({summary})",
            # A retry helps if a failure was transient or a candidate will have cooled down.
            retryable=retryable or bool(cooling),
            model=self.ref,
            decisions=decisions,
            retry_after=min(cooling) if cooling else None,
        )

    def _why_skip(
        self, info: ModelInfo, model_input: ModelInput, cooling: list[float]
    ) -> str | None:
        if (refused := self.health.unusable(info)) is not None:
            return f"platform unusable: {refused}"
        if (left := self.health.cooldown_left(info)) > 0:
            cooling.append(left)
            return f"cooling down for {left:.0f}s more"
        length = len(model_input.text or "")
        if info.max_input_chars is not None and length > info.max_input_chars:
            return f"input of {length} chars is over its limit of {info.max_input_chars}"
        return None


def create(info: ModelInfo, ctx: AdapterContext) -> RouterAdapter:
    catalog = catalog_for(ctx.settings)
    return RouterAdapter(info.ref, catalog.route(info.name), catalog, ctx.adapter)
