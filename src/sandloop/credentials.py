"""Per-user API keys: found in a fixed order, stored where the user chooses, never recorded.

Order: an explicit argument, a Prefect ``Secret`` block (``sandloop-<platform>-<user>``), the OS
keyring (service ``sandloop``, account ``<platform>:<user>``), then the platform's environment
variable. A key lives only in the client object that uses it; what is shown is its last 4
characters.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Literal

from sandloop.errors import SandloopError
from sandloop.models.platforms import PLATFORMS

#: Where each key is read from: every model platform that has one, and the trace host.
PLATFORM_ENV = {
    **{name: p.key_env for name, p in PLATFORMS.items() if p.key_env is not None},
    # the secret half of a Langfuse key pair (the public half, LANGFUSE_PUBLIC_KEY, is not one)
    "langfuse": "LANGFUSE_SECRET_KEY",
}
KEYRING_SERVICE = "sandloop"
DEFAULT_USER = "default"
Source = Literal["argument", "prefect-secret", "keyring", "env"]


class CredentialError(SandloopError, ValueError):
    """A key cannot be stored or found where asked; the message says what would work."""


@dataclass(frozen=True)
class ResolvedKey:
    value: str = field(repr=False)
    source: Source

    @property
    def masked(self) -> str:
        return "…" + self.value[-4:] if len(self.value) > 4 else "…"

    def __str__(self) -> str:
        return f"{self.masked} ({self.source})"


def _check(platform: str, user: str | None) -> str:
    if platform not in PLATFORM_ENV:
        raise CredentialError(
            f"unknown platform {platform!r}: keys are kept for {', '.join(PLATFORM_ENV)}"
        )
    user = user or DEFAULT_USER
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", user):
        raise CredentialError(f"user {user!r}: use lowercase letters, digits, - and _")
    return user


def block_name(platform: str, user: str | None = None) -> str:
    return f"sandloop-{platform}-{_check(platform, user)}".replace("_", "-")


def _prefect_configured() -> bool:
    """Only ask Prefect when an API is at hand: looking a secret up must not start a server."""
    from prefect.context import FlowRunContext, TaskRunContext

    return bool(os.environ.get("PREFECT_API_URL") or FlowRunContext.get() or TaskRunContext.get())


def _from_prefect(platform: str, user: str | None) -> str | None:
    if not _prefect_configured():
        return None
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(block_name(platform, user)).get()  # type: ignore[union-attr]
    except ValueError:  # no such block
        return None
    return str(value) if value else None


def _keyring_call(action: str, *args: str) -> str | None:
    import keyring
    from keyring.errors import KeyringError, NoKeyringError, PasswordDeleteError

    try:
        if action == "get":
            return keyring.get_password(*args)
        if action == "set":
            keyring.set_password(*args)
        else:
            keyring.delete_password(*args)
    except PasswordDeleteError:
        return None
    except NoKeyringError:
        if action == "get":
            return None
        raise CredentialError(
            "this machine has no OS keyring; store the key as a Prefect Secret with "
            "--store prefect, or install a keyring backend (`pip install keyrings.alt` keeps "
            "keys in a plain file, and then needs --plaintext-ok)"
        ) from None
    except KeyringError as exc:
        raise CredentialError(f"the OS keyring refused: {exc}") from None
    return None


def resolve_key(
    platform: str, *, user: str | None = None, explicit: str | None = None
) -> ResolvedKey | None:
    """The key to use for ``platform``, or None when none is configured anywhere."""
    account = f"{platform}:{_check(platform, user)}"
    if explicit:
        return ResolvedKey(explicit, "argument")
    if value := _from_prefect(platform, user):
        return ResolvedKey(value, "prefect-secret")
    if value := _keyring_call("get", KEYRING_SERVICE, account):
        return ResolvedKey(value, "keyring")
    if value := os.environ.get(PLATFORM_ENV[platform]):
        return ResolvedKey(value, "env")
    return None


def plaintext_keyring() -> str | None:
    """The keyring backend's name when it keeps keys in a plain file (keyrings.alt's
    PlaintextKeyring: base64, readable by anyone who can read the file), else None."""
    import keyring

    backend = keyring.get_keyring()
    chosen = (getattr(backend, "backends", None) or [backend])[0]  # a chainer sets the first
    kind = type(chosen)
    if kind.__module__.startswith("keyrings.alt") and "Plaintext" in kind.__name__:
        return f"{kind.__module__}.{kind.__name__}"
    return None


def set_key(
    platform: str,
    value: str,
    *,
    user: str | None = None,
    store: str = "keyring",
    plaintext_ok: bool = False,
) -> None:
    """Keep a key. A keyring that is a plain file is refused unless ``plaintext_ok``: "in the
    keyring" must not quietly mean "in a file anyone with the disk can read"."""
    account = f"{platform}:{_check(platform, user)}"
    if not value.strip():
        raise CredentialError("the key is empty")
    if store == "keyring":
        if not plaintext_ok and (plain := plaintext_keyring()) is not None:
            raise CredentialError(
                f"the only keyring here is {plain}, which keeps keys in a plain file; pass "
                "--plaintext-ok to accept that, use --store prefect, or install an OS keyring"
            )
        _keyring_call("set", KEYRING_SERVICE, account, value.strip())
    elif store == "prefect":
        from prefect.blocks.system import Secret

        Secret(value=value.strip()).save(block_name(platform, user), overwrite=True)
    else:
        raise CredentialError(f"--store {store!r}: use keyring or prefect")


def remove_key(platform: str, *, user: str | None = None) -> list[str]:
    """Remove the key from the keyring and Prefect; returns where it was removed from."""
    account = f"{platform}:{_check(platform, user)}"
    removed = []
    if _keyring_call("get", KEYRING_SERVICE, account) is not None:
        _keyring_call("delete", KEYRING_SERVICE, account)
        removed.append("keyring")
    if _from_prefect(platform, user) is not None:
        from prefect.blocks.system import Secret

        Secret.delete(block_name(platform, user))
        removed.append("prefect-secret")
    return removed


def list_keys(user: str | None = None) -> dict[str, ResolvedKey | None]:
    return {platform: resolve_key(platform, user=user) for platform in PLATFORM_ENV}


def known_secrets(user: str | None = None) -> list[str]:
    """Every key configured for ``user`` wherever sandloop looks, and every platform variable
    that is set: what error text is scrubbed of (see ``scrub``). A source that cannot be asked
    is skipped; key-shaped text is scrubbed anyway."""
    from sandloop.storage.location import storage_secrets

    found = {os.environ[v] for v in PLATFORM_ENV.values() if os.environ.get(v)}
    found.update(storage_secrets())
    for platform in PLATFORM_ENV:
        try:
            key = resolve_key(platform, user=user)
        except Exception:
            continue
        if key is not None:
            found.add(key.value)
    return sorted(found)
