"""Commands over embeddings: embed, search, index rebuild."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from sandloop.cli.common import (
    HomeOption,
    JsonOption,
    app,
    err,
    out,
)
from sandloop.display import excerpt

# No envvar here: the settings read SANDLOOP_EMBED_MODEL themselves, and with --images the
# model is the image one (SANDLOOP_IMAGE_EMBED_MODEL), which that variable must not override.
EmbedModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Embedding model (default: SANDLOOP_EMBED_MODEL, else all-MiniLM-L6-v2, offline): "
        "hashing, openai:<model> (SANDLOOP_OPENAI_BASE_URL), or a sentence-transformers name or "
        "folder. With --images, a CLIP-style model (default: SANDLOOP_IMAGE_EMBED_MODEL).",
        show_default=False,
    ),
]

ImagesOption = Annotated[
    bool,
    typer.Option(
        "--images",
        help="Image outputs, with the image embedding model (SANDLOOP_IMAGE_EMBED_MODEL or "
        "--model: CLIP-style, a hub id or folder), which words search.",
    ),
]


BackendOption = Annotated[
    str | None,
    typer.Option(
        "--backend",
        envvar="SANDLOOP_INDEX_BACKEND",
        help="Vector index: faiss (embedded, default) or elasticsearch (SANDLOOP_ES_URL).",
        show_default=False,
    ),
]


def _embedder(model: str | None, home: str | None, images: bool = False) -> Any:
    from sandloop import api

    settings = api.settings_for(home)
    name = model or (settings.image_embed_model if images else settings.embed_model)
    with err.status(f"loading {'image ' if images else ''}embedding model {name or ''}…"):
        return api.load_embedder(home, model, images=images)


@app.command()
def embed(
    model: EmbedModelOption = None,
    realm: Annotated[str | None, typer.Option(help="Only this realm (a prefix).")] = None,
    thread: Annotated[str | None, typer.Option(help="Only this thread (a prefix).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Outputs per batch.")] = 256,
    images: ImagesOption = False,
    backend: BackendOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Embed every recorded text output (image output, with --images) that has no vector yet
    for the model, and index it.

    Running it again does nothing new; the same text or image is never embedded twice.
    """
    from dataclasses import asdict

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from sandloop import api

    api.index_settings(home, backend)  # a bad --backend fails before the model loads
    embedder = _embedder(model, home, images)
    progress = Progress(
        TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), console=err, disable=as_json
    )
    bar = progress.add_task("embed", total=None)
    with progress:
        report = api.embed(
            home,
            embedder=embedder,
            realm=realm,
            thread=thread,
            batch_size=batch_size,
            backend=backend,
            on_total=lambda n: progress.update(bar, total=n),
            on_batch=lambda n: progress.advance(bar, n),
            announce=lambda m: err.print(m, highlight=False),
        )
    if as_json:
        out.print_json(data={"embedding_model": embedder.name, **asdict(report)})
        return
    what = "images" if images else "texts"
    out.print(
        f"{embedder.name}: {report.embedded} {what} embedded, {report.reused} reused from the "
        f"cache, {report.indexed} added to the index",
        highlight=False,
    )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in words.")],
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="How many results.")] = 10,
    thread: Annotated[str | None, typer.Option(help="Only this thread (a prefix).")] = None,
    realm: Annotated[str | None, typer.Option(help="Only this realm (a prefix).")] = None,
    from_model: Annotated[
        str | None, typer.Option("--from-model", help="Only outputs of this model.")
    ] = None,
    model: EmbedModelOption = None,
    images: ImagesOption = False,
    backend: BackendOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Find the recorded outputs nearest in meaning to QUERY (the images, with --images)."""
    from sandloop import api

    api.index_settings(home, backend)  # a bad --backend fails before the model loads
    hits = api.search(
        query,
        home,
        k=k,
        embedder=_embedder(model, home, images),
        realm=realm,
        thread=thread,
        from_model=from_model,
        backend=backend,
        announce=lambda m: err.print(m, highlight=False),
    )
    if as_json:
        hits["output"] = hits.pop("output_url").fillna(hits["output"])
        out.print_json(hits.to_json(orient="records"))
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("score", "thread", "step", "model"):
        table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=30)
    table.add_column("output", ratio=1)
    for row in hits.itertuples(index=False):
        table.add_row(
            f"{row.score:.3f}",
            row.thread[:10],
            str(row.step),
            row.model,
            excerpt(row.output, row.output_type, 120),
        )
    out.print(table if len(hits) else "no matches")


index_app = typer.Typer(help="Vector indexes (rebuildable from the store).", no_args_is_help=True)
app.add_typer(index_app, name="index")


@index_app.command("rebuild")
def index_rebuild(
    model: EmbedModelOption = None,
    images: ImagesOption = False,
    backend: BackendOption = None,
    home: HomeOption = None,
) -> None:
    """Rebuild an embedding model's index (FAISS or Elasticsearch) from the store's vectors."""
    from sandloop import api

    api.index_settings(home, backend)  # a bad --backend fails before the model loads
    embedder = _embedder(model, home, images)
    index = api.rebuild_index(home, embedder=embedder, backend=backend)
    out.print(
        f"{embedder.name}: rebuilt the {index.kind} index, {len(index)} vectors", highlight=False
    )
