"""A sweep's trajectories drawn: one figure per network, for the report's `--plots` and the
notebook alike.

Figures are built with matplotlib's object API (no pyplot), so drawing needs no display and
leaves no global figure state behind; a notebook shows them with `display(figure)`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sandloop.errors import SandloopError
from sandloop.loops.sweep.trajectories import Trajectories

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class PlotsUnavailable(SandloopError):
    """Drawing needs matplotlib, an optional dependency."""


def network_figure(trajectories: Trajectories, network: str) -> Figure:
    """Left: mean cosine to the genesis and to the step before, ± one standard deviation, over
    steps. Right: the share of the network's threads that had looped or converged by each
    step."""
    figure_class = _figure_class()
    drift = trajectories.drift[trajectories.drift["network"] == network]
    threads = trajectories.threads[trajectories.threads["network"] == network]
    figure = figure_class(figsize=(10, 3.8), layout="constrained")
    left, right = figure.subplots(1, 2)
    steps = drift["step"].to_numpy()
    for column, label in (("to_genesis", "to the genesis"), ("to_previous", "to the step before")):
        mean, sd = drift[column].to_numpy(), drift[f"{column}_sd"].to_numpy()
        (line,) = left.plot(steps, mean, label=label)
        left.fill_between(steps, mean - sd, mean + sd, color=line.get_color(), alpha=0.15)
    low = float(np.nanmin(drift[["to_genesis", "to_previous"]].to_numpy() - 0.05, initial=0.0))
    left.set(xlabel="step", ylabel="cosine", ylim=(min(low, -0.05), 1.05), title="semantic drift")
    left.legend(fontsize="small")
    last = int(threads["steps"].max()) if len(threads) else 0
    grid = np.arange(last + 1)
    for column, label in (("loop_step", "in an exact loop"), ("converged_step", "converged")):
        found = threads[column].dropna().to_numpy(dtype=float)
        share = [(found <= step).sum() / max(len(threads), 1) for step in grid]
        right.step(grid, share, where="post", label=label)
    right.set(xlabel="step", ylabel="share of threads", ylim=(0, 1.05))
    right.set_title("loops and convergence")
    right.legend(fontsize="small")
    figure.suptitle(f"{network} · {len(threads)} threads · {trajectories.embedding_model}")
    return figure


def plots_folder(folder: Path) -> Path:
    """The folder, made, once it is known that figures can be drawn and written there: checked
    before the work that the figures show."""
    _figure_class()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlotsUnavailable(f"{folder}: cannot write plots there ({exc.strerror})") from exc
    return folder


def save_figures(trajectories: Trajectories, folder: Path, prefix: str) -> list[Path]:
    """One PNG per network, ``folder/<prefix>-<network>.png``; returns their paths."""
    plots_folder(folder)
    written = []
    for network in dict.fromkeys(trajectories.threads["network"]):
        path = folder / f"{_safe(prefix)}-{_safe(str(network))}.png"
        try:
            network_figure(trajectories, str(network)).savefig(path, dpi=110)
        except OSError as exc:
            raise PlotsUnavailable(f"{path}: cannot write it ({exc.strerror})") from exc
        written.append(path)
    return written


def _safe(name: str) -> str:
    return re.sub(r"[^\w.\-]+", "_", name)


def _figure_class() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotsUnavailable(
            "plots need matplotlib: pip install 'sandloop[plots]' (or matplotlib)"
        ) from exc
    return Figure
