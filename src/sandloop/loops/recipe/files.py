"""Where recipes are found: a path, the home's `recipes/` folder, or the built-ins. Read by the
registry too (a recipe is a model), so this imports nothing that looks models up."""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

from sandloop.loops.spec_files import SpecError


def builtin_names() -> list[str]:
    folder = resources.files("sandloop.loops.recipe").joinpath("builtin")
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def recipe_folders(home: Path) -> list[Path]:
    return [home / "recipes"]


def find_recipe_file(name_or_path: str, home: Path) -> Path:
    """A path, else ``<home>/recipes/NAME.yaml``, else a built-in."""
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml", ".json") or path.is_file():
        if not path.is_file():
            raise SpecError(f"{path}: no such recipe file")
        return path
    for folder in recipe_folders(home):
        candidate = folder / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate
    if name_or_path in builtin_names():
        ref = resources.files("sandloop.loops.recipe").joinpath("builtin", f"{name_or_path}.yaml")
        return Path(str(ref))
    known = sorted({*builtin_names(), *user_recipe_names(home)})
    close = difflib.get_close_matches(name_or_path, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise SpecError(
        f"no recipe {name_or_path!r}{hint}; `sandloop recipe list` shows {', '.join(known)}"
    )


def user_recipe_names(home: Path) -> list[str]:
    return sorted(
        p.stem for folder in recipe_folders(home) if folder.is_dir() for p in folder.glob("*.yaml")
    )
