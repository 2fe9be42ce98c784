"""A sweep's trajectories against the same numbers worked out straight from LanceDB and numpy.

The sweep (1,024 threads × 20 steps of `dummy:text`: 128 genesis prompts × 8 seeds) is run
once and embedded once (hashing-64, so the embedder's own cost does not hide the analysis).
Then, on the same store:

- sandloop: `trajectories_of(..., embed=False)`, a thousand threads at a time through the
  store's API (steps with the journal merged, vectors by thread), drift sums, exact loops,
  convergence, and clusters;
- raw: one LanceDB read of each table, a pandas merge, drift with vectorised numpy, exact loops
  with a groupby, the same convergence window, and the same clustering function (the one piece
  not wrapped from a library);
- the first report, which embeds every output too (for scale).

    .venv/bin/python benchmarks/bench_trajectories.py [--threads 1024] [--steps 20]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import median_seconds  # (sets the private Prefect home first)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from sandloop import api
    from sandloop.embedding.embedders import get_embedder
    from sandloop.loops.sweep.report import trajectories_of
    from sandloop.loops.sweep.spec import SweepSpec

    network = {"name": "bench", "models": [{"model": "dummy:text", "params": {"vocab": 200}}]}
    sweep = SweepSpec.model_validate(
        {
            "name": "bench",
            "networks": [network],
            "genesis": [f"prompt number {i}" for i in range(args.threads // 8)],
            "seeds": {"count": 8},
            "stop": {"max_steps": args.steps, "stop_on_repeat": False},
            "max_concurrent": args.threads,
        }
    )
    home = Path(tempfile.mkdtemp())
    with (
        prefect_test_harness(server_startup_timeout=120),
        temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        api.run_sweep(sweep, home)
    store = api.open_store(home)
    embedder = get_embedder("hashing-64")
    start = time.perf_counter()
    first = trajectories_of(store, sweep, embedder)
    first_s = time.perf_counter() - start
    steps = int(first.drift["threads"].sum())

    def ours() -> None:
        trajectories_of(api.open_store(home, readonly=True), sweep, embedder, embed=False)

    def raw() -> None:
        _raw(home / "akashic", sweep, embedder)

    ours_s = median_seconds(ours, 3)
    raw_s = median_seconds(raw, 3)
    print(
        f"{sweep.size()} threads × {args.steps} steps of dummy:text, {steps} embedded steps "
        f"({embedder.name}), {time.strftime('%Y-%m-%d')}"
    )
    print(f"first report (embeds {first.embedded} outputs): {first_s:6.2f} s")
    print(f"sandloop trajectories_of:      {ours_s:6.2f} s ({steps / ours_s:8.0f} steps/s)")
    print(f"raw LanceDB + numpy:           {raw_s:6.2f} s ({steps / raw_s:8.0f} steps/s)")
    print(f"sandloop / raw: {raw_s / ours_s:.2f}x")


def _raw(root: Path, sweep: object, embedder: object) -> None:
    """The same measures with the fewest steps between LanceDB and numpy."""
    import lancedb
    import numpy as np

    from sandloop.loops.sweep.trajectories import spherical_kmeans

    db = lancedb.connect(str(root))
    steps = (
        db.open_table("invocations")
        .search()
        .where("status = 'ok' AND output_type = 'text'")
        .select(["key", "thread", "step", "output"])
        .limit(None)
        .to_pandas()
    )
    vectors = db.open_table("embeddings").search().select(["key", "vector"]).limit(None)
    frame = steps.merge(vectors.to_pandas(), on="key").sort_values(["thread", "step"])
    matrix = np.stack(frame["vector"].to_numpy()).astype(np.float32)
    runs = db.open_table("runs").to_pandas()[["thread", "genesis"]]
    genesis_of = dict(zip(runs["thread"], runs["genesis"], strict=True))
    texts = sorted(set(genesis_of.values()))
    origin = dict(zip(texts, embedder.embed(texts), strict=True))  # type: ignore[attr-defined]
    g = np.stack([origin[genesis_of[t]] for t in frame["thread"]])
    to_genesis = np.einsum("ij,ij->i", matrix, g)
    first = frame["step"].to_numpy() == 0
    before = np.vstack([matrix[:1], matrix[:-1]])
    before[first] = g[first]
    to_previous = np.einsum("ij,ij->i", matrix, before)
    frame = frame.assign(to_genesis=to_genesis, to_previous=to_previous)
    frame.groupby("step")[["to_genesis", "to_previous"]].agg(["mean", "std", "count"])
    repeats = frame[frame.duplicated(["thread", "output"])]
    repeats.groupby("thread")["step"].min()
    thread = frame["thread"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, thread[1:] != thread[:-1], True])
    window = sweep.stop.converge_window  # type: ignore[attr-defined]
    finals = []
    for a, b in itertools.pairwise(bounds):
        block = matrix[a:b]
        sims = block @ block.T
        for i in range(1, len(block)):
            if sims[i, max(0, i - window) : i].max(initial=-1) >= 0.95:
                break
        finals.append(block[-1])
    spherical_kmeans(np.stack(finals), np.ones(len(finals)), 8)


if __name__ == "__main__":
    main()
