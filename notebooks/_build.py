"""Writes notebooks/explore.ipynb, notebooks/export.ipynb and notebooks/sweep.ipynb from the
cells below (kept as code so diffs stay readable).

Run: .venv/bin/python notebooks/_build.py
"""

from pathlib import Path

import nbformat

EXPLORE = [
    (
        "markdown",
        """# Exploring a sandloop store

Load the Akashic store into pandas, plot a run's trajectory through embedding space, look at how
similar its steps are to each other, and search it by meaning. Set `SANDLOOP_HOME` to point at a
store (default `~/.sandloop`); run a loop and `sandloop embed` first.""",
    ),
    (
        "code",
        """import os

import matplotlib.pyplot as plt
import numpy as np

from sandloop import api

HOME = os.environ.get("SANDLOOP_HOME")
runs = api.list_runs(HOME)
runs[["thread", "name", "status", "stop_reason", "steps", "seed", "genesis"]].head()""",
    ),
    ("markdown", "## One run's steps"),
    (
        "code",
        """thread = runs.iloc[0]["thread"]
steps, vectors = api.run_embeddings(thread, home=HOME)
print(f"{len(steps)} embedded steps, {vectors.shape[1]}-d vectors")
steps[["step", "facet", "output", "latency_ms"]].head(10)""",
    ),
    (
        "markdown",
        """## The trajectory in 2-D

PCA of the run's embeddings (via an SVD of the centred vectors); consecutive steps are
connected, points are coloured by the model that produced them.""",
    ),
    (
        "code",
        """centred = vectors - vectors.mean(axis=0)
_, _, components = np.linalg.svd(centred, full_matrices=False)
xy = centred @ components[:2].T

fig, ax = plt.subplots(figsize=(6, 5))
ax.plot(xy[:, 0], xy[:, 1], color="lightgray", zorder=1)
for facet, group in steps.groupby("facet"):
    ax.scatter(xy[group.index, 0], xy[group.index, 1], label=facet, zorder=2)
for i in (0, len(steps) - 1):
    ax.annotate(f"step {steps.step[i]}", xy[i])
ax.set(title=f"{runs.iloc[0]['name']} · thread {thread[:8]}", xlabel="PC 1", ylabel="PC 2")
ax.legend(fontsize="small")
plt.show()""",
    ),
    ("markdown", "## How similar are the steps to each other?"),
    (
        "code",
        """similarity = vectors @ vectors.T  # cosine: the vectors are normalised
fig, ax = plt.subplots(figsize=(5, 4))
image = ax.imshow(similarity, vmin=-1, vmax=1, cmap="RdBu_r")
ax.set(title="cosine similarity between steps", xlabel="step", ylabel="step")
fig.colorbar(image)
plt.show()
print(f"mean similarity of consecutive steps: {np.mean(np.diag(similarity, 1)):.3f}")""",
    ),
    ("markdown", "## Search by meaning"),
    (
        "code",
        """from sandloop.embedding.embedders import get_embedder
from sandloop.embedding.service import search

store = api.open_store(HOME)
model = store.select("embeddings", None, ["embedding_model"]).embedding_model.mode()[0]
hits = search(store, get_embedder(model), steps.output.iloc[-1], k=5)
hits[["score", "thread", "step", "model", "output"]]""",
    ),
]


EXPORT = [
    (
        "markdown",
        """# From a store to a fine-tuning dataset

Take a snapshot (a pinned selection of runs), export it in several formats, check what was
written, and load the Hugging Face folder with `datasets`. Set `SANDLOOP_HOME` to a store with
completed runs; `EXPORT_DIR` is where the dataset goes (default: a temporary folder).""",
    ),
    (
        "code",
        """import json
import os
import tempfile
from pathlib import Path

from sandloop import api

HOME = os.environ.get("SANDLOOP_HOME")
OUT = Path(os.environ.get("EXPORT_DIR") or tempfile.mkdtemp()) / "dataset"
runs = api.list_runs(HOME)
runs.groupby(["kind", "status"]).size()""",
    ),
    (
        "markdown",
        "## Pin a snapshot\n\nCompleted runs of every kind; later runs will not change it.",
    ),
    (
        "code",
        """snapshot = api.create_snapshot(f"notebook-{len(runs)}", HOME, status=["completed"])
print(snapshot["name"], "pins", snapshot["versions"], "for", snapshot["threads"], "runs")""",
    ),
    ("markdown", "## Export, with a validation split and redaction"),
    (
        "code",
        """manifest = api.export_snapshot(
    snapshot["name"], ["openai-chat", "trl", "hf"], OUT, HOME, val_fraction=0.25
)
print(json.dumps(manifest["counts"], indent=1))
print("redacted:", manifest["redactions"], "de-duplicated:", manifest["dedupe"])
sorted(manifest["files"])""",
    ),
    (
        "code",
        """first = (OUT / "openai-chat" / "train.jsonl").read_text().splitlines()[0]
json.loads(first)""",
    ),
    ("markdown", "## Load it with `datasets`"),
    (
        "code",
        """import datasets

# the card's configs: "sft" (messages), and "preference" where a recipe had a rejected round
dataset = datasets.load_dataset(str(OUT), "sft")
print(dataset)
dataset["train"].to_pandas()[["kind", "model"]].value_counts()""",
    ),
]

SWEEP = [
    (
        "markdown",
        """# A sweep's trajectories

What a batch experiment did: how far each network's outputs drift from their genesis and from
the step before, how often and when threads fall into exact loops or converge, and where they
end up (clusters of final outputs, each named by its medoid). Run a sweep first:

```bash
sandloop sweep run examples/sweeps/tides.yaml
```

`SANDLOOP_HOME` points at the store (default `~/.sandloop`), `SANDLOOP_SWEEP` names the sweep
(default `tides`). Vectors come from the store; outputs without one are embedded now, with the
configured model (`SANDLOOP_EMBED_MODEL`, by default the offline all-MiniLM-L6-v2), and kept.""",
    ),
    (
        "code",
        """%matplotlib inline
import os

import matplotlib.pyplot as plt
from IPython.display import display

from sandloop import api
from sandloop.plots import network_figure

HOME = os.environ.get("SANDLOOP_HOME")
NAME = os.environ.get("SANDLOOP_SWEEP", "tides")
api.sweep_report(NAME, HOME)""",
    ),
    ("markdown", "## Trajectories"),
    (
        "code",
        """trajectories = api.sweep_trajectories(NAME, HOME)
print(
    f"{len(trajectories.threads)} threads, {int(trajectories.drift['threads'].sum())} embedded "
    f"steps ({trajectories.embedded} outputs embedded just now) with "
    f"{trajectories.embedding_model}"
)
trajectories.outcomes""",
    ),
    (
        "markdown",
        """## One figure per network

Left, the mean cosine of each step's output to the genesis and to the step before, ± one
standard deviation over threads. Right, the share of threads that had fallen into an exact loop
(the same output at the same place in the network) or converged (an output within
`converge_above` cosine of one of the last `converge_window`) by each step.""",
    ),
    (
        "code",
        """for network in trajectories.outcomes["network"]:
    display(network_figure(trajectories, network))""",
    ),
    ("markdown", "## Drift of every network, side by side"),
    (
        "code",
        """fig, ax = plt.subplots(figsize=(7, 4))
for network, drift in trajectories.drift.groupby("network", sort=False):
    ax.plot(drift["step"], drift["to_genesis"], label=network)
ax.set(xlabel="step", ylabel="mean cosine to the genesis", title=NAME)
ax.legend()
plt.show()""",
    ),
    (
        "markdown",
        """## Where the threads ended

Final outputs clustered by cosine (spherical k-means, seeded); each cluster is named by its
medoid, the final output closest to all the others in it.""",
    ),
    ("code", """trajectories.clusters"""),
    (
        "code",
        """threads = trajectories.threads
threads[threads["cluster"] == 0][["thread", "network", "genesis", "seed", "steps"]]""",
    ),
]

NOTEBOOKS = {"explore.ipynb": EXPLORE, "export.ipynb": EXPORT, "sweep.ipynb": SWEEP}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        notebook = nbformat.v4.new_notebook()
        notebook.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        for number, (kind, source) in enumerate(cells):
            make = (
                nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
            )
            # ids by position, so rebuilding an unchanged notebook changes nothing
            notebook.cells.append(make(source, id=f"cell-{number}"))
        nbformat.write(notebook, Path(__file__).with_name(name))


if __name__ == "__main__":
    main()
