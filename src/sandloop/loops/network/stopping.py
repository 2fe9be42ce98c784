"""The detectors behind a network run's repeat and convergence stops."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


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


@dataclass
class ConvergenceDetector:
    """Finds semantic convergence: an output whose embedding is within ``threshold`` cosine of
    one of the last ``window`` outputs. Vectors must be L2-normalised."""

    threshold: float
    window: int
    _recent: deque[tuple[int, npt.NDArray[np.float32]]] = field(init=False)

    def __post_init__(self) -> None:
        self._recent = deque(maxlen=self.window)

    def observe(self, step: int, vector: npt.NDArray[np.float32]) -> tuple[int, float] | None:
        """Record a step's vector; return (matched step, cosine) if it converged."""
        match: tuple[int, float] | None = None
        if self._recent:
            steps = [s for s, _ in self._recent]
            cosines = np.stack([v for _, v in self._recent]) @ vector
            best = int(np.argmax(cosines))
            if float(cosines[best]) >= self.threshold:
                match = (steps[best], float(cosines[best]))
        self._recent.append((step, vector))
        return match
