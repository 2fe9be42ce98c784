"""`sandloop recipe`: run, list and show versioned prompt recipes, and pipelines of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from sandloop.cli.common import (
    HomeOption,
    JsonOption,
    SessionOption,
    app,
    fail,
    out,
    parse_pairs,
    prepare_prefect,
    suggest_a_server_once,
)
from sandloop.cli.output import Column, print_records
from sandloop.cli.sessions import resolve_session
from sandloop.summaries import RecipeResult

recipe_app = typer.Typer(help="Versioned prompt recipes.", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")

SeedOption = Annotated[int | None, typer.Option(help="Seed; the same seed and input repeat.")]


def _print_result(result: RecipeResult, as_json: bool) -> None:
    if as_json:
        out.print_json(data=result.as_dict())
        return
    parsed = result.parsed
    out.print(
        json.dumps(parsed, indent=2, ensure_ascii=False)
        if not isinstance(parsed, str)
        else result.output,
        markup=False,
        highlight=False,
    )
    cached = " (cached: no model was called)" if result.cached else ""
    out.print(
        f"[green]{result.status}[/] · {result.name} v{result.version} · "
        f"{result.calls} model calls · thread [bold]{result.thread}[/]{cached}",
        highlight=False,
    )


@recipe_app.command("run")
def recipe_run(
    recipe: Annotated[str, typer.Argument(help="A recipe name or a recipe YAML file.")],
    input_text: Annotated[str, typer.Option("--input", help="The text the recipe works on.")],
    context: Annotated[list[str], typer.Option("--context", help="slot=value; repeatable.")] = [],  # noqa: B006
    seed: SeedOption = None,
    model: Annotated[
        str | None, typer.Option(help="Use this model (or route:NAME) instead of the recipe's.")
    ] = None,
    home: HomeOption = None,
    session: SessionOption = None,
    as_json: JsonOption = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show Prefect's logs.")] = False,
) -> None:
    """Run a recipe as a Prefect flow: render, call the model, check, refine until valid.

    The same recipe version, input, context and seed is a cache hit: no model is called.
    Exit 1 when the output never validated (the rounds are recorded).
    """
    temporary_server = prepare_prefect(verbose)
    from sandloop import api

    settings = api.settings_for(home)
    session = resolve_session(settings.home, session)
    api.load_recipe(recipe, settings.home, model)  # bad specs fail here, before Prefect starts
    if temporary_server and not as_json:
        suggest_a_server_once()
    result = api.run_recipe(
        recipe,
        input_text,
        context=parse_pairs(context, "--context"),
        seed=seed,
        model=model,
        session=session,
        home=settings.home,
    )
    if result.error is not None and not as_json:
        fail(f"{result.error} (thread {result.thread})", code=1)
    _print_result(result, as_json)
    if result.error is not None:
        raise typer.Exit(1)


@recipe_app.command("pipeline")
def recipe_pipeline(
    pipeline: Annotated[Path, typer.Argument(help="A pipeline YAML: name and stages.")],
    input_text: Annotated[str, typer.Option("--input", help="The first stage's input.")],
    seed: SeedOption = None,
    home: HomeOption = None,
    session: SessionOption = None,
    as_json: JsonOption = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show Prefect's logs.")] = False,
) -> None:
    """Run recipes in order as one flow: each stage's output is the next stage's input."""
    prepare_prefect(verbose)
    from sandloop import api

    settings = api.settings_for(home)
    session = resolve_session(settings.home, session)
    api.load_pipeline(pipeline, settings.home)  # bad stages fail here, before Prefect starts
    result = api.run_pipeline(pipeline, input_text, seed=seed, session=session, home=settings.home)
    if as_json:
        out.print_json(data=result.as_dict())
        if result.error is not None:
            raise typer.Exit(1)
        return
    for done in result.stages:
        cached = " (cached)" if done.cached else ""
        out.print(f"[bold]{done.name} v{done.version}[/]{cached}", highlight=False)
        out.print(done.output or "", markup=False, highlight=False)
    if result.error is not None:
        fail(result.error, code=1)


@recipe_app.command("list")
def recipe_list(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Built-in recipes and yours (<home>/recipes/*.yaml)."""
    from sandloop import api

    specs = [api.load_recipe(n, home) for n in api.recipe_names(home)]
    records = [
        {"name": s.name, "version": s.version, "model": s.model_ref, "description": s.description}
        for s in specs
    ]
    print_records(
        records,
        [Column("name", "recipe"), Column("version"), Column("model"), Column("description")],
        as_json=as_json,
    )


@recipe_app.command("show")
def recipe_show(
    recipe: Annotated[str, typer.Argument(help="A recipe name or file.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """A recipe's template, slots, output schema, model and refine settings."""
    from sandloop import api

    spec = api.load_recipe(recipe, home)
    path = api.recipe_file(recipe, home)
    if as_json:
        out.print_json(data={**spec.model_dump(), "realm": spec.realm, "file": str(path)})
        return
    out.print(f"[bold]{spec.name}[/] v{spec.version} · {escape(spec.model_ref)}", highlight=False)
    out.print(f"file: {path}\nrealm: {spec.realm}", markup=False, highlight=False)
    if spec.description:
        out.print(spec.description, markup=False)
    out.print("\n[bold]template[/]")
    out.print(spec.prefix + spec.template + spec.postfix, markup=False, highlight=False)
    slots = {n: s.model_dump(exclude_defaults=True) for n, s in spec.context.items()}
    out.print(f"\n[bold]slots[/]: input, {json.dumps(slots)}", highlight=False)
    if spec.output is not None:
        out.print(f"[bold]output schema[/]: {json.dumps(spec.output)}", highlight=False)
    if spec.refine is not None:
        out.print(
            f"[bold]refine[/]: {spec.refine.model_dump(include={'max_rounds', 'judge_threshold'})}"
        )
