"""`sandloop keys`: per-user API keys in the OS keyring or a Prefect Secret block."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.table import Table

from sandloop.cli.common import app, out

keys_app = typer.Typer(
    help="Per-user API keys (shown only by their last 4 characters).", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")

UserOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        envvar="SANDLOOP_USER",
        help="Whose keys (default: 'default').",
        show_default=False,
    ),
]


def _known_platform(platform: str) -> str:
    """Checked before the key is asked for: a typo should not cost the user a paste."""
    from sandloop import api

    if platform not in api.key_platforms():
        known = ", ".join(api.key_platforms())
        raise typer.BadParameter(f"unknown platform {platform!r}: keys are kept for {known}")
    return platform


@keys_app.command("set")
def keys_set(
    platform: Annotated[
        str, typer.Argument(help="openai, replicate, hf or langfuse.", callback=_known_platform)
    ],
    key: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, help="The key; asked for without echo when omitted."
        ),
    ],
    user: UserOption = None,
    store: Annotated[
        str,
        typer.Option(
            help="keyring (the OS keyring) or prefect (a Secret block on the Prefect server)."
        ),
    ] = "keyring",
    plaintext_ok: Annotated[
        bool,
        typer.Option(
            "--plaintext-ok",
            help="Accept a keyring that keeps keys in a plain file (keyrings.alt's Plaintext).",
        ),
    ] = False,
) -> None:
    """Store a key for PLATFORM. Prefer the prompt: a key typed as --key stays in shell history."""
    from sandloop import api

    api.set_key(platform, key, user=user, store=store, plaintext_ok=plaintext_ok)
    out.print(f"stored the {platform} key …{key.strip()[-4:]} in the {store}", highlight=False)


@keys_app.command("list")
def keys_list(user: UserOption = None) -> None:
    """Which key each platform would use, and where it comes from."""
    from sandloop import api

    found = api.list_keys(user)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("platform", "key", "from"):
        table.add_column(column)
    for platform, resolved in found.items():
        table.add_row(
            platform,
            resolved.masked if resolved else "-",
            resolved.source if resolved else "not set",
        )
    out.print(table)


@keys_app.command("remove")
def keys_remove(
    platform: Annotated[str, typer.Argument(help="openai, replicate, hf or langfuse.")],
    user: UserOption = None,
) -> None:
    """Remove PLATFORM's key from the keyring and Prefect (environment variables stay)."""
    from sandloop import api

    removed = api.remove_key(platform, user=user)
    out.print(
        f"removed the {platform} key from {' and '.join(removed)}"
        if removed
        else f"no stored {platform} key",
        highlight=False,
    )
