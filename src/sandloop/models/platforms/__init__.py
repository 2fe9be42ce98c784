"""Every platform, one module each: a module of this package defining ``PLATFORM`` is all it
takes to add one (see the README's development section).

The table is read once, when the package is imported; it is never changed afterwards.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import MappingProxyType

from sandloop.models.platforms.base import Platform

#: The order platforms are listed in messages and `sandloop models`; newcomers come after.
_FIRST = ("dummy", "local", "openai", "replicate", "hf", "route", "recipe")


def _discover() -> dict[str, Platform]:
    found: dict[str, Platform] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name == "base":
            continue
        platform = getattr(importlib.import_module(f"{__name__}.{module.name}"), "PLATFORM", None)
        if not isinstance(platform, Platform):
            raise TypeError(f"{__name__}.{module.name} defines no PLATFORM = Platform(...)")
        if platform.name in found:
            raise TypeError(f"two platforms are named {platform.name!r}")
        found[platform.name] = platform
    rank = {name: i for i, name in enumerate(_FIRST)}
    return dict(sorted(found.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


PLATFORMS = MappingProxyType(_discover())

__all__ = ["PLATFORMS", "Platform"]
