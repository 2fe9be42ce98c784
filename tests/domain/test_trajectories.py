"""The trajectory measures on hand-made threads, each checked against an answer worked out from
the definition (not from the code): drift, the first exact loop, the first convergence, and
clusters of final outputs with their medoids."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandloop.loops.sweep.trajectories import (
    Tally,
    ThreadSteps,
    drift,
    first_convergence,
    first_loop,
    medoid,
    spherical_kmeans,
)


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


E1, E2, E3 = unit(1, 0, 0), unit(0, 1, 0), unit(0, 0, 1)


def thread(
    name: str,
    vectors: list[np.ndarray],
    identities: list[str] | None = None,
    network: str = "n",
    size: int = 1,
    finals: str | None = None,
) -> ThreadSteps:
    steps = list(range(len(vectors)))
    return ThreadSteps(
        thread=name,
        network=network,
        network_size=size,
        genesis="g",
        seed=0,
        steps=steps,
        identities=identities or [f"{name}-{s}" for s in steps],
        vector_steps=steps,
        vectors=np.stack(vectors).astype(np.float32),
        genesis_vector=E1,
        final_output=finals or f"final of {name}",
    )


def test_drift_is_the_cosine_to_the_genesis_and_to_the_step_before() -> None:
    halfway = unit(1, 1, 0)  # 45° from E1 and from E2
    to_genesis, to_previous = drift(np.stack([halfway, E2, E2]), E1)
    assert to_genesis == pytest.approx([np.sqrt(0.5), 0.0, 0.0], abs=1e-6)
    # the first step's "step before" is the genesis itself
    assert to_previous == pytest.approx([np.sqrt(0.5), np.sqrt(0.5), 1.0], abs=1e-6)


def test_an_exact_loop_is_found_at_the_same_network_position_only() -> None:
    # a 2-model network: a, b, c, d, a, b → the output at step 4 repeats step 0's (same slot)
    assert first_loop(range(6), ["a", "b", "c", "d", "a", "b"], size=2) == (4, 4)
    # "a" comes back at step 3, but at the other slot of the network: not a loop
    assert first_loop(range(4), ["a", "b", "c", "a"], size=2) is None
    assert first_loop(range(3), ["x", "y", "x"], size=1) == (2, 2)


def test_convergence_needs_a_close_output_inside_the_window() -> None:
    near_e2 = unit(0.05, 1, 0)  # cos to E2 ≈ 0.9988
    vectors = np.stack([E2, E3, E1, near_e2])
    assert first_convergence(range(4), vectors, threshold=0.99, window=3) == 3
    assert first_convergence(range(4), vectors, threshold=0.99, window=2) is None  # E2 is 3 back
    assert first_convergence(range(4), vectors, threshold=0.9999, window=3) is None


def test_kmeans_separates_two_groups_and_the_medoid_is_the_central_member() -> None:
    left = [unit(1, 0.1 * i, 0) for i in (-1, 0, 1)]
    right = [unit(0, 0.1 * i, 1) for i in (-1, 0, 1)]
    vectors = np.stack(left + right).astype(np.float32)
    labels = spherical_kmeans(vectors, np.ones(6), 2)
    assert len(set(labels[:3])) == 1 and len(set(labels[3:])) == 1 and labels[0] != labels[3]
    assert medoid(vectors[:3], np.ones(3)) == 1  # (1, 0, 0) sits between the other two
    # weights count threads: enough weight on an edge member makes it the medoid
    assert medoid(vectors[:3], np.array([1.0, 1.0, 10.0])) == 2


def test_the_tally_sums_per_network_and_step_and_names_each_cluster_by_a_medoid() -> None:
    tally = Tally("test", converge_above=0.99, converge_window=4)
    tally.add(thread("t1", [E2, E2], identities=["a", "a"], finals="east"))
    tally.add(thread("t2", [E1, E3], finals="up"))
    tally.add(thread("t3", [E2, E3, E3], network="m", finals="up"))
    result = tally.result(clusters=2)

    n_step0 = result.drift[(result.drift["network"] == "n") & (result.drift["step"] == 0)]
    # step 0 of network n: cosines to the genesis E1 are 0 (t1) and 1 (t2)
    assert n_step0.iloc[0].to_dict() == pytest.approx(
        {
            "network": "n",
            "step": 0,
            "threads": 2,
            "to_genesis": 0.5,
            "to_genesis_sd": 0.5,
            "to_previous": 0.5,
            "to_previous_sd": 0.5,
        }
    )
    assert list(result.drift["network"]) == ["n", "n", "m", "m", "m"]  # order first seen
    by_thread = result.threads.set_index("thread")
    assert by_thread.loc["t1", "loop_step"] == 1 and by_thread.loc["t1", "loop_length"] == 1
    assert by_thread.loc["t1", "converged_step"] == 1
    assert by_thread.loc["t3", "converged_step"] == 2
    assert np.isnan(by_thread.loc["t2", "converged_step"])
    outcomes = result.outcomes.set_index("network")
    assert outcomes.loc["n", ["threads", "looped", "converged"]].tolist() == [2, 1, 1]
    assert outcomes.loc["m", ["looped", "converged", "converged_step_median"]].tolist() == [0, 1, 2]

    # two final outputs, "east" (E2, t1) and "up" (E3, t2 and t3): two clusters, biggest first
    clusters = result.clusters
    assert clusters[["threads", "medoid"]].values.tolist() == [[2, "up"], [1, "east"]]
    assert clusters.iloc[0]["networks"] in ("n 1, m 1", "m 1, n 1")
    assert by_thread.loc["t2", "cluster"] == by_thread.loc["t3", "cluster"] == 0


def test_clusters_see_a_bounded_sample_of_the_smallest_thread_ids() -> None:
    tally = Tally("test", sample=3)
    for i in reversed(range(10)):
        tally.add(thread(f"t{i}", [E2], finals=f"end {i}"))
    result = tally.result(clusters=1)
    assert result.clusters.iloc[0]["threads"] == 3
    assert set(result.threads.dropna(subset=["cluster"])["thread"]) == {"t0", "t1", "t2"}
    assert len(result.threads) == 10  # every thread still has its outcome row


def test_json_has_no_nan() -> None:
    tally = Tally("test")
    tally.add(thread("t1", [E2]))
    encoded = tally.result().as_dict()
    assert encoded["outcomes"][0]["loop_step_median"] is None
    assert encoded["outcomes"][0]["converged_step_median"] is None


@given(
    st.integers(2, 30),
    st.integers(1, 12),
    st.floats(0.5, 0.999),
    st.integers(0, 2**32 - 1),
)
def test_convergence_is_found_where_the_runs_convergence_stop_finds_it(
    n: int, window: int, threshold: float, seed: int
) -> None:
    from sandloop.loops.network.stopping import ConvergenceDetector

    rng = np.random.default_rng(seed)
    # few directions, so that close pairs come up
    base = rng.normal(size=(3, 8))
    vectors = base[rng.integers(0, 3, n)] + rng.normal(scale=0.3, size=(n, 8))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    detector = ConvergenceDetector(threshold, window)
    expected = next((s for s in range(n) if detector.observe(s, vectors[s]) is not None), None)
    assert first_convergence(range(n), vectors, threshold, window) == expected
