"""A package registered without running its ``__init__`` until something reads from it.

Why: importing lancedb took ~2.9 s of every command's start, and a third of that was a package
no local or ``s3://`` home uses: lance-namespace's generated REST client, whose ``__init__``
imports every API module (hundreds of pydantic-validated methods) although lancedb only needs
its ``models`` submodule at import. Deferred, ``import ….models`` works as usual (it needs only
the package's ``__path__``), and the first attribute read from the package itself runs the
``__init__`` then, so a REST namespace connection still finds all of it. Upstream lance made
the same import lazy in its own package; lancedb has not yet.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any


class _Deferred(types.ModuleType):
    """Until its first attribute read: a package with its ``__path__`` and nothing else."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # import machinery probing dunders: not a use of the package
            raise AttributeError(name)
        spec = object.__getattribute__(self, "__spec__")
        object.__setattr__(self, "__class__", types.ModuleType)  # from here, an ordinary module
        spec.loader.exec_module(self)
        return getattr(self, name)


def defer_package_init(name: str) -> None:
    """Register package ``name`` deferred, unless it is imported already or not installed."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _Deferred
    sys.modules[name] = module
