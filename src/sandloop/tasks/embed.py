"""Embedding as a Prefect task, submitted in the background while a run goes on."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from sandloop.config import Settings
from sandloop.embedding.embedders import embedder_from, image_embedder_from
from sandloop.embedding.service import EmbedReport, embed_and_index
from sandloop.storage.store import AkashicStore


@task(
    name="embed-outputs",
    task_run_name="embed · thread {thread:.8}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def embed_thread_outputs(home: str, thread: str, settings: Settings) -> dict[str, Any]:
    """Idempotent: embeds whatever of the thread has no vector yet, so overlapping or repeated
    submissions cost a query, not model time. Images too, when an image embedder is set."""
    store = AkashicStore.for_settings(settings.model_copy(update={"home": home}))
    report = embed_and_index(store, embedder_from(settings), thread=thread, settings=settings)
    if settings.image_embed_model:
        images = embed_and_index(
            store, image_embedder_from(settings), thread=thread, settings=settings
        )
        report = EmbedReport(
            report.embedded + images.embedded,
            report.reused + images.reused,
            report.indexed + images.indexed,
        )
    return asdict(report)
