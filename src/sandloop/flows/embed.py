"""The embedding back-fill as a flow, so it can be scheduled: runs embed their outputs as they
go, but a run recorded with embedding off, a failed background embed, or a new embedding model
leaves rows without vectors, and a nightly back-fill picks them up."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger, runtime

from sandloop.embedding.embedders import embedder_from
from sandloop.embedding.service import embed_and_index
from sandloop.flows.artifacts import label_flow_run
from sandloop.flows.home import open_home


def _run_name() -> str:
    params = runtime.flow_run.parameters
    scope = params.get("thread") or params.get("realm") or "all runs"
    return f"embed back-fill · {str(scope)[:12]}"


@flow(name="embed-backfill", flow_run_name=_run_name, persist_result=False)
def embed_backfill(
    home: str | None = None,
    model: str | None = None,
    realm: str | None = None,
    thread: str | None = None,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Embed and index every text output that has no vector for ``model`` (default: the home's
    embedding model); running it again finds nothing to do."""
    settings, store, _ = open_home(home)
    embedder = embedder_from(settings, model)
    log = get_run_logger()
    report = embed_and_index(
        store,
        embedder,
        realm=realm,
        thread=thread,
        batch_size=batch_size,
        settings=settings,
        on_total=lambda n: log.info("%d outputs without a %s vector", n, embedder.name),
        announce=log.info,
    )
    label_flow_run(name=f"embed back-fill · {report.embedded} embedded, {report.reused} reused")
    return {"embedding_model": embedder.name, **asdict(report)}
