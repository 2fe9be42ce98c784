"""Trajectories of a sweep's threads through embedding space.

Per network and step: how far the outputs have drifted from their genesis and from the step
before. Per thread: the step at which it fell into an exact loop or converged. Over the sweep:
clusters of the final outputs, each named by its medoid.

Pure numpy and pandas. The caller reads the steps and vectors a chunk of threads at a time and
feeds them to a `Tally`. Its memory grows with networks × steps (running sums) and with threads
(one outcome row each), never with threads × steps; the clustering sees a bounded sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from sandloop.loops.network.stopping import RepeatDetector

Vectors = npt.NDArray[np.float32]

#: Cosine to one of the last `converge_window` outputs at which a thread counts as converged,
#: when the sweep's own stop rule sets none.
DEFAULT_CONVERGE_ABOVE = 0.95
DEFAULT_CONVERGE_WINDOW = 10
#: Final outputs clustered at most (the threads with the smallest ids: a deterministic sample
#: that, ids being hashes, is spread over networks, genesis prompts and seeds alike).
CLUSTER_SAMPLE = 2000
#: Clusters made when none are asked for: √(distinct final outputs / 2), at most this many.
MAX_AUTO_CLUSTERS = 8

DRIFT_COLUMNS = [
    "network",
    "step",
    "threads",
    "to_genesis",
    "to_genesis_sd",
    "to_previous",
    "to_previous_sd",
]
THREAD_COLUMNS = [
    "thread",
    "network",
    "genesis",
    "seed",
    "steps",
    "loop_step",
    "loop_length",
    "converged_step",
    "final_to_genesis",
    "cluster",
]
OUTCOME_COLUMNS = [
    "network",
    "threads",
    "looped",
    "looped_share",
    "loop_step_median",
    "converged",
    "converged_share",
    "converged_step_median",
    "final_to_genesis",
]
CLUSTER_COLUMNS = ["cluster", "threads", "networks", "medoid_thread", "medoid"]


@dataclass(frozen=True)
class ThreadSteps:
    """One thread's successful steps, in order, as the analysis needs them.

    ``identities`` say when two outputs are the same (type and value, as the network engine's
    repeat stop compares them, so a loop is found exactly where that stop would find it). Only
    the steps the embedding model embeds (texts, or pictures for an image model) have vectors:
    ``vector_steps`` are their step numbers, ``vectors`` their L2-normalised rows, and
    ``final_output`` the last of them (a blob key for a picture).
    """

    thread: str
    network: str
    network_size: int
    genesis: str
    seed: int | None
    steps: Sequence[int]
    identities: Sequence[str]
    vector_steps: Sequence[int]
    vectors: Vectors
    genesis_vector: Vectors
    final_output: str | None


def first_loop(
    steps: Sequence[int], identities: Sequence[str], size: int
) -> tuple[int, int] | None:
    """(step, loop length) of the first exact repeat of an output at the same network position."""
    detector = RepeatDetector(size)
    for step, identity in zip(steps, identities, strict=True):
        loop = detector.observe(step, identity)
        if loop is not None:
            return step, loop
    return None


def first_convergence(
    steps: Sequence[int], vectors: Vectors, threshold: float, window: int
) -> int | None:
    """The first step whose output is within ``threshold`` cosine of one of the ``window``
    outputs before it: what the run's convergence stop finds, one lag at a time (n × window
    products, never an n × n matrix: a thread may have thousands of steps)."""
    n = len(vectors)
    first = n
    for lag in range(1, min(window, n - 1) + 1):
        close = np.flatnonzero(np.einsum("ij,ij->i", vectors[lag:], vectors[:-lag]) >= threshold)
        if len(close):
            first = min(first, int(close[0]) + lag)
    return int(steps[first]) if first < n else None


def drift(vectors: Vectors, genesis: Vectors) -> tuple[npt.NDArray[np.float64], ...]:
    """Cosine of each output to the genesis and to the text output before it (the genesis for
    the first)."""
    if not len(vectors):
        empty = np.zeros(0, dtype=np.float64)
        return empty, empty
    to_genesis = (vectors @ genesis).astype(np.float64)
    before = np.vstack([genesis[None, :], vectors[:-1]])
    to_previous = np.einsum("ij,ij->i", vectors, before).astype(np.float64)
    return to_genesis, to_previous


def spherical_kmeans(
    vectors: Vectors, weights: npt.NDArray[np.float64], k: int, *, seed: int = 0, rounds: int = 50
) -> npt.NDArray[np.int64]:
    """Labels of k clusters by cosine (k-means on the sphere, k-means++ start, seeded so the
    same sweep always clusters the same way). Rows are distinct outputs, ``weights`` how many
    threads ended on each."""
    n = len(vectors)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    chosen = [int(rng.choice(n, p=weights / weights.sum()))]
    for _ in range(1, k):
        distance = np.clip(1.0 - (vectors @ vectors[chosen].T).max(axis=1), 0.0, None) * weights
        if distance.sum() <= 0:
            break
        chosen.append(int(rng.choice(n, p=distance / distance.sum())))
    centres = vectors[chosen]
    labels = np.full(n, -1, dtype=np.int64)
    for _ in range(rounds):
        fresh = np.argmax(vectors @ centres.T, axis=1)
        if np.array_equal(fresh, labels):
            break
        labels = fresh
        for c in range(len(centres)):
            members = labels == c
            if members.any():
                mean = (vectors[members] * weights[members, None]).sum(axis=0)
                centres[c] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return labels


def medoid(vectors: Vectors, weights: npt.NDArray[np.float64]) -> int:
    """The row with the greatest weighted cosine to all the others: a member that stands for
    the cluster (a centroid is no output anyone wrote)."""
    return int(np.argmax((vectors @ vectors.T) @ weights))


@dataclass
class _Sums:
    threads: int = 0
    to_genesis: float = 0.0
    to_genesis_sq: float = 0.0
    to_previous: float = 0.0
    to_previous_sq: float = 0.0


@dataclass(frozen=True)
class Trajectories:
    """What a sweep's threads did, as frames (``as_dict`` for JSON)."""

    embedding_model: str
    converge_above: float
    converge_window: int
    drift: pd.DataFrame
    threads: pd.DataFrame
    outcomes: pd.DataFrame
    clusters: pd.DataFrame
    embedded: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "embedding_model": self.embedding_model,
            "converge_above": self.converge_above,
            "converge_window": self.converge_window,
            "embedded": self.embedded,
            "drift": _records(self.drift),
            "outcomes": _records(self.outcomes),
            "clusters": _records(self.clusters),
        }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in frame.astype(object).to_dict("records")
    ]


@dataclass
class Tally:
    """Threads fed one at a time; `result` gives the frames."""

    embedding_model: str
    converge_above: float = DEFAULT_CONVERGE_ABOVE
    converge_window: int = DEFAULT_CONVERGE_WINDOW
    sample: int = CLUSTER_SAMPLE
    _sums: dict[tuple[str, int], _Sums] = field(default_factory=dict)
    _threads: list[dict[str, Any]] = field(default_factory=list)
    _finals: dict[str, tuple[str, Vectors]] = field(default_factory=dict)
    _networks: dict[str, int] = field(default_factory=dict)  # in the order first seen

    def add(self, path: ThreadSteps) -> None:
        self._networks.setdefault(path.network, len(self._networks))
        to_genesis, to_previous = drift(path.vectors, path.genesis_vector)
        for step, g, p in zip(path.vector_steps, to_genesis, to_previous, strict=True):
            sums = self._sums.setdefault((path.network, int(step)), _Sums())
            sums.threads += 1
            sums.to_genesis += g
            sums.to_genesis_sq += g * g
            sums.to_previous += p
            sums.to_previous_sq += p * p
        loop = first_loop(path.steps, path.identities, path.network_size)
        converged = first_convergence(
            path.vector_steps, path.vectors, self.converge_above, self.converge_window
        )
        self._threads.append(
            {
                "thread": path.thread,
                "network": path.network,
                "genesis": path.genesis,
                "seed": path.seed,
                "steps": len(path.steps),
                "loop_step": loop[0] if loop else None,
                "loop_length": loop[1] if loop else None,
                "converged_step": converged,
                "final_to_genesis": float(to_genesis[-1]) if len(to_genesis) else None,
            }
        )
        if path.final_output is not None and len(path.vectors):
            self._finals[path.thread] = (path.final_output, path.vectors[-1])
            if len(self._finals) > 2 * self.sample:
                self._trim_finals()

    def _trim_finals(self) -> None:
        keep = sorted(self._finals)[: self.sample]
        self._finals = {t: self._finals[t] for t in keep}

    def result(self, clusters: int | None = None, embedded: int = 0) -> Trajectories:
        self._trim_finals()
        threads = pd.DataFrame(self._threads, columns=THREAD_COLUMNS[:-1])
        cluster_of, cluster_rows = self._clusters(threads, clusters)
        threads["cluster"] = threads["thread"].map(cluster_of).astype("Int64")
        return Trajectories(
            embedding_model=self.embedding_model,
            converge_above=self.converge_above,
            converge_window=self.converge_window,
            drift=self._drift(),
            threads=threads,
            outcomes=_outcomes(threads),
            clusters=pd.DataFrame(cluster_rows, columns=CLUSTER_COLUMNS),
            embedded=embedded,
        )

    def _drift(self) -> pd.DataFrame:
        rows = []
        order = sorted(self._sums.items(), key=lambda kv: (self._networks[kv[0][0]], kv[0][1]))
        for (network, step), s in order:
            rows.append(
                {
                    "network": network,
                    "step": step,
                    "threads": s.threads,
                    "to_genesis": s.to_genesis / s.threads,
                    "to_genesis_sd": _sd(s.to_genesis, s.to_genesis_sq, s.threads),
                    "to_previous": s.to_previous / s.threads,
                    "to_previous_sd": _sd(s.to_previous, s.to_previous_sq, s.threads),
                }
            )
        return pd.DataFrame(rows, columns=DRIFT_COLUMNS)

    def _clusters(
        self, threads: pd.DataFrame, k: int | None
    ) -> tuple[dict[str, int], list[dict[str, Any]]]:
        """Cluster the sampled final outputs (each distinct text once, weighted by the threads
        that ended on it), biggest cluster first."""
        if not self._finals:
            return {}, []
        sampled = sorted(self._finals)
        ending = {t: self._finals[t][0] for t in sampled}
        first_with: dict[str, str] = {}  # a distinct final text → the first thread ending on it
        for thread, text in ending.items():
            first_with.setdefault(text, thread)
        distinct = list(first_with)
        row_of = {text: i for i, text in enumerate(distinct)}
        vectors = np.stack([self._finals[first_with[t]][1] for t in distinct]).astype(np.float32)
        counts = np.bincount([row_of[t] for t in ending.values()], minlength=len(distinct))
        weights = counts.astype(np.float64)
        if k is None:
            k = min(MAX_AUTO_CLUSTERS, max(1, round(math.sqrt(len(distinct) / 2))))
        labels = spherical_kmeans(vectors, weights, k)
        by_size = sorted(set(labels.tolist()), key=lambda c: (-weights[labels == c].sum(), c))
        number = {label: n for n, label in enumerate(by_size)}
        cluster_of = {t: number[int(labels[row_of[text]])] for t, text in ending.items()}
        network_of = dict(zip(threads["thread"], threads["network"], strict=True))
        rows = []
        for label in by_size:
            members = np.flatnonzero(labels == label)
            centre = distinct[int(members[medoid(vectors[members], weights[members])])]
            networks = pd.Series(
                [network_of[t] for t, c in cluster_of.items() if c == number[label]]
            ).value_counts()
            rows.append(
                {
                    "cluster": number[label],
                    "threads": int(weights[members].sum()),
                    "networks": ", ".join(f"{n} {count}" for n, count in networks.items()),
                    "medoid_thread": first_with[centre],
                    "medoid": centre,
                }
            )
        return cluster_of, rows


def _sd(total: float, squares: float, n: int) -> float:
    mean = total / n
    return math.sqrt(max(squares / n - mean * mean, 0.0))


def _outcomes(threads: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for network, group in threads.groupby("network", sort=False):
        looped = pd.to_numeric(group["loop_step"], errors="coerce").dropna()
        converged = pd.to_numeric(group["converged_step"], errors="coerce").dropna()
        finals = pd.to_numeric(group["final_to_genesis"], errors="coerce").dropna()
        n = len(group)
        rows.append(
            {
                "network": network,
                "threads": n,
                "looped": len(looped),
                "looped_share": round(len(looped) / n, 3),
                "loop_step_median": float(looped.median()) if len(looped) else None,
                "converged": len(converged),
                "converged_share": round(len(converged) / n, 3),
                "converged_step_median": float(converged.median()) if len(converged) else None,
                "final_to_genesis": round(float(finals.mean()), 4) if len(finals) else None,
            }
        )
    return pd.DataFrame(rows, columns=OUTCOME_COLUMNS)
