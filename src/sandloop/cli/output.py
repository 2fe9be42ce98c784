"""How a command shows a list of things: as a table for people, or with `--json` as records for
programs. One helper, so every listing pads, escapes and serialises the same way."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rich import box
from rich.markup import escape
from rich.table import Table

from sandloop.cli.common import out

if TYPE_CHECKING:  # pandas is imported by the commands that read tables, not at start-up
    import pandas as pd


def text(value: Any) -> str:
    """A cell's text: nothing for a missing value (None, or pandas' NaN)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def short_id(value: Any) -> str:
    return text(value)[:10]


def when(value: Any) -> str:
    """A timestamp as month-day hour:minute (nothing for a missing one: None, or NaT)."""
    return "" if value is None or value != value else f"{value:%m-%d %H:%M}"


@dataclass(frozen=True)
class Column:
    key: str
    header: str | None = None  # default: the key
    show: Callable[[Any], str] = text
    justify: Literal["left", "right"] = "left"
    no_wrap: bool = False
    overflow: Literal["fold", "crop", "ellipsis"] = "fold"
    min_width: int | None = None
    max_width: int | None = None
    ratio: int | None = None
    wide: bool = False  # shown with --wide only: the key columns fit 80 characters without it


def print_records(
    records: pd.DataFrame | Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    as_json: bool,
    empty: str | None = None,
    json_data: Any = None,
    title: str | None = None,
    compact: bool = False,
    wide: bool = False,
) -> None:
    """``records`` as a table of ``columns``, or as JSON: ``json_data`` when given, else every
    field of every record (timestamps in ISO 8601). ``empty`` is said instead of an empty
    table; ``compact`` drops the table's edge padding (wide listings such as `runs`); without
    ``wide``, the columns marked wide are left out."""
    columns = [column for column in columns if wide or not column.wide]
    if as_json:
        if json_data is not None:
            out.print_json(data=json_data)
        elif hasattr(records, "to_json"):  # a DataFrame
            out.print_json(records.to_json(orient="records", date_format="iso"))
        else:
            out.print_json(data=list(records))
        return
    rows = records.to_dict(orient="records") if hasattr(records, "to_dict") else records
    if not rows and empty is not None:
        out.print(empty, highlight=False)
        return
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=not compact,
        collapse_padding=compact,
    )
    for column in columns:
        table.add_column(
            column.header or column.key,
            justify=column.justify,
            no_wrap=column.no_wrap,
            overflow=column.overflow,
            min_width=column.min_width,
            max_width=column.max_width,
            ratio=column.ratio,
        )
    for row in rows:
        table.add_row(*(escape(column.show(row.get(column.key))) for column in columns))
    if not wide:
        out.print(table)
        return
    # --wide: as wide as the columns want, past the terminal's edge (a pager or a file holds it)
    from rich.measure import Measurement

    width = out.width
    wanted = Measurement.get(out, out.options.update_width(1000), table).maximum
    out.width = max(width, wanted)
    try:
        out.print(table)
    finally:
        out.width = width
