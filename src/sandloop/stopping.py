"""Stop conditions of a loop, evaluated between steps.

Plain Python so the runner, tests and later schedulers share one definition of "done".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class StopReason(StrEnum):
    MAX_STEPS = "max_steps"
    MAX_DURATION = "max_duration"
    REPEAT = "repeat"
    FAILED = "failed"


#: Reasons after which running the same thread again has nothing to do.
FINAL_REASONS = frozenset({StopReason.MAX_STEPS, StopReason.REPEAT})


@dataclass
class RepeatDetector:
    """Finds an exact repeat: the same output from the same node of the network.

    In a seeded, deterministic network, the same output at the same position means every later
    step repeats too: the run has fallen into an attractor whose loop length is the distance
    between the two steps (PANIC records it the same way).
    """

    network_size: int
    _first_seen: dict[tuple[int, str], int] = field(default_factory=dict)

    def observe(self, step: int, output_hash: str) -> int | None:
        """Record a step's output; return the loop length if it repeats an earlier one."""
        slot = (step % self.network_size, output_hash)
        earlier = self._first_seen.get(slot)
        if earlier is not None:
            return step - earlier
        self._first_seen[slot] = step
        return None
