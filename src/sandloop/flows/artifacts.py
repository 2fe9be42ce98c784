"""What a run shows in the Prefect UI besides its task runs: a progress artifact updated as
steps finish, and at the end a table of the steps, a markdown page (images inline, dialogues as
a conversation), a link to the thread's data, and a flow-run name that says which steps ran.

The UI is a window, not the record: a failure here is a warning in the run's log, never a
failed run.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, runtime

from sandloop.display import audio_label, excerpt
from sandloop.storage.store import AkashicStore
from sandloop.summaries import RecipeResult

# The progress artifact is an API call; a fast loop updates it at most this often.
PROGRESS_EVERY_S = 2.0


def _quietly(what: str, action: Callable[[], Any]) -> Any:
    try:
        return action()
    except Exception as exc:
        get_run_logger().warning("could not publish the %s artifact: %s", what, exc)
        return None


class RunArtifacts:
    def __init__(self, kind: str, thread: str, total: int | None, done: int = 0) -> None:
        from prefect.artifacts import create_progress_artifact

        self.kind, self.thread, self.total = kind, thread, total
        self.key = f"{kind}-{thread[:12]}"
        self._last = 0.0
        self._updates = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandloop-progress")
        self._pending: Future[Any] | None = None
        self.progress_id = _quietly(
            "progress",
            lambda: create_progress_artifact(
                self._percent(done), key=f"{self.key}-progress", description=f"{kind} {thread}"
            ),
        )

    def _percent(self, done: int) -> float:
        return 100.0 * min(1.0, done / self.total) if self.total else 0.0

    def step_done(self, done: int, force: bool = False) -> None:
        """Move the progress bar. The update is an API call that waits on a busy server for as
        long as a step takes, so it goes in a thread of its own and the loop does not wait:
        while one is in flight the next is skipped; ``force`` (the last) waits for it."""
        from prefect.artifacts import update_progress_artifact

        now = time.monotonic()
        if self.progress_id is None or (not force and now - self._last < PROGRESS_EVERY_S):
            return
        pending = self._pending
        if pending is not None and not pending.done():
            if not force:
                return
            pending.result()
        self._last = now
        progress_id, percent = self.progress_id, self._percent(done)
        update = contextvars.copy_context().run  # the flow run's context: client, logger
        self._pending = self._updates.submit(
            update, _quietly, "progress", lambda: update_progress_artifact(progress_id, percent)
        )
        if force:
            self._pending.result()

    def finish_table(self, rows: list[dict[str, Any]], title: str) -> None:
        """The last progress update, and ``rows`` as the run's table (a sweep's threads)."""
        from prefect.artifacts import create_table_artifact

        self.step_done(self.total or 0, force=True)
        self._updates.shutdown(wait=True)
        _quietly(
            "table",
            lambda: create_table_artifact(rows, key=f"{self.key}-threads", description=title),
        )

    def finish(
        self, steps: pd.DataFrame, store: AkashicStore, title: str, markdown: str | None = None
    ) -> None:
        from prefect.artifacts import (
            create_link_artifact,
            create_markdown_artifact,
            create_table_artifact,
        )

        self.step_done(len(steps), force=True)
        self._updates.shutdown(wait=True)
        table = [
            {
                "step": int(row.step),
                "model": str(row.facet),
                "output": excerpt(row.output, row.output_type, 80),
                "latency_ms": round(float(row.latency_ms or 0), 1),
                "status": str(row.status) if row.status == "ok" else f"failed: {row.error_type}",
            }
            for row in steps.sort_values("step").itertuples()
        ]
        _quietly(
            "steps table",
            lambda: create_table_artifact(table, key=f"{self.key}-steps", description=title),
        )
        page = markdown if markdown is not None else _markdown(steps, store, title)
        _quietly(
            "markdown",
            lambda: create_markdown_artifact(page, key=f"{self.key}-page", description=title),
        )
        link = store.url if store.remote else Path(store.path).resolve().as_uri()
        _quietly(
            "link",
            lambda: create_link_artifact(
                link,
                link_text=f"the store; this thread: sandloop show {self.thread[:8]}",
                key=f"{self.key}-data",
            ),
        )


def _markdown(steps: pd.DataFrame, store: AkashicStore, title: str) -> str:
    lines = [f"# {title}", ""]
    for row in steps.sort_values("step").itertuples():
        if row.status != "ok":
            lines.append(f"**{row.step} · {row.facet}** failed: {row.error}")
        elif row.output_type == "image":
            blob = store.blobs.url(str(row.output))
            uri = blob if store.remote else Path(blob).resolve().as_uri()
            lines.append(f"**{row.step} · {row.facet}**\n\n![step {row.step}]({uri})")
        elif row.output_type == "audio":
            blob = store.blobs.url(str(row.output))
            uri = blob if store.remote else Path(blob).resolve().as_uri()
            label = audio_label(getattr(row, "metadata", None))
            lines.append(f"**{row.step} · {row.facet}**: [{label}]({uri})")
        else:
            lines.append(f"**{row.step} · {row.facet}**: {row.output}")
        lines.append("")
    return "\n".join(lines)


def run_tags(kind: str, realm: str, thread: str, session: str | None) -> list[str]:
    labels = [f"sandloop:{kind}", f"realm:{realm[:12]}", f"thread:{thread[:12]}"]
    return labels + ([f"session:{session}"] if session else [])


def label_flow_run(name: str | None = None, tags: list[str] | None = None) -> None:
    """Name the flow run for the work it did (which steps) and tag it for the UI's filters.

    Tags go on the flow run only: tagging every task run (a `tags` context) made each step
    ~6 ms slower on a SQLite-backed server."""
    from prefect.client.orchestration import get_client

    flow_run_id = runtime.flow_run.id
    if not flow_run_id:
        return

    def update() -> None:
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run_id, name=name, tags=tags)

    _quietly("flow-run name", update)


def recipe_artifacts(store: AkashicStore, stages: list[RecipeResult], title: str) -> None:
    """A recipe (or pipeline) flow run's page: each call of each stage (role, round, whether it
    validated, its score) as a table, and the stages' outputs or errors as markdown."""
    import orjson
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    rows: list[dict[str, Any]] = []
    page = [f"# {title}", ""]
    for stage in stages:
        calls = store.steps(stage.thread)
        for call in calls.sort_values("step").itertuples():
            meta = orjson.loads(call.metadata or "{}")
            rows.append(
                {
                    "recipe": f"{stage.name} v{stage.version}",
                    "call": int(call.step),
                    "role": meta.get("role", ""),
                    "round": meta.get("round"),
                    "model": str(call.model),
                    "valid": not meta.get("validation_errors") and call.status == "ok",
                    "score": meta.get("score"),
                    "output": excerpt(call.output, "text", 80),
                }
            )
        page.append(f"## {stage.name} v{stage.version} · {stage.status}")
        if stage.error:
            page += ["", f"**{stage.error}**"]
        if stage.output is not None:
            page += ["", "```", str(stage.output), "```"]
        page.append("")
    key = f"recipe-{stages[-1].thread[:12]}" if stages else "recipe"
    _quietly(
        "calls table",
        lambda: create_table_artifact(rows, key=f"{key}-calls", description=title),
    )
    _quietly(
        "markdown",
        lambda: create_markdown_artifact("\n".join(page), key=f"{key}-page", description=title),
    )
