"""`sandloop doctor`: check a store and repair what can be repaired without losing anything."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from sandloop.cli.common import HomeOption, JsonOption, app, out


@app.command()
def doctor(
    repair: Annotated[
        bool, typer.Option("--repair", help="Repair what the store itself still holds.")
    ] = False,
    rewind: Annotated[
        bool,
        typer.Option(
            "--rewind",
            help="With --repair: let runs whose lost steps no version holds compute them again.",
        ),
    ] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check the store: unreadable tables, runs whose recorded steps are missing, logs of
    writers that stopped, quarantined log lines. Exits 1 while anything is still damaged."""
    from sandloop import api
    from sandloop.cli.common import fail

    if rewind and not repair:
        fail("--rewind needs --repair")
    store, findings = api.examine_store(home, repair=repair, rewind=rewind)
    damaged = [f for f in findings if f.severity == "damaged" and not f.repaired]
    if as_json:
        out.print_json(data={"home": str(store.home), "findings": [f.as_dict() for f in findings]})
    elif not findings:
        out.print(f"{store.home}: no problems found", highlight=False)
    else:
        for finding in findings:
            mark = "repaired" if finding.repaired else finding.severity
            colour = "green" if finding.repaired else "red" if mark == "damaged" else "yellow"
            out.print(f"[{colour}]{mark}[/]: {escape(finding.what)}", highlight=False)
            if finding.repair and not finding.repaired:
                hint = finding.repair if repair else f"--repair would {finding.repair}"
                out.print(f"  {hint}", highlight=False, markup=False)
    if damaged:
        raise typer.Exit(1)
