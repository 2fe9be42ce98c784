"""Checking a spec against the catalog of the home it runs in.

Apart from reading spec files (``spec_files``) because the registry reads recipe files too:
a spec's models are checked against a ``Catalog``, given to pydantic as validation context.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from sandloop.loops.spec_files import SpecError, describe_validation_error, read_mapping
from sandloop.models.registry import Catalog, spec_context

SpecT = TypeVar("SpecT", bound=BaseModel)


def load_spec(path: Path, spec_type: type[SpecT], catalog: Catalog, **overrides: Any) -> SpecT:
    """A spec file validated as ``spec_type`` against ``catalog``, its name defaulting to the
    file's stem; errors are one line per problem, naming the file and the field."""
    data = read_mapping(path)
    data.setdefault("name", path.stem)
    data.update(overrides)
    return validated(data, spec_type, str(path), catalog)


def validated(data: Any, spec_type: type[SpecT], source: str, catalog: Catalog) -> SpecT:
    """``data`` as ``spec_type``, its models checked against ``catalog``, or one SpecError line
    naming ``source`` and the fields."""
    try:
        return spec_type.model_validate(data, context=spec_context(catalog))
    except ValidationError as exc:
        raise SpecError(describe_validation_error(exc, source)) from None


def stored(text: str | bytes, spec_type: type[SpecT], catalog: Catalog) -> SpecT:
    """A spec as a run's record keeps it (JSON), checked against ``catalog`` again: the home's
    models file may have changed since, and a resumed run needs its models as they are now."""
    return spec_type.model_validate_json(text, context=spec_context(catalog))
