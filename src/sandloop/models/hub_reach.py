"""Whether a local model named by its Hub id can be had at all, asked once before loading it.

A Hub id that is not downloaded, on a machine where the Hub does not answer, made
huggingface_hub retry five times (a line each, about 25 s) before transformers' own error. One
request with a short timeout says the same in a line, at once. A Hub id that is downloaded, with
the Hub out of reach, made transformers wait on the Hub before it used its cache (past 600 s,
measured, for a Hub that took connections and never answered): such a model is loaded from its
downloaded folder, which asks the Hub nothing.
"""

from __future__ import annotations

from pathlib import Path

PROBE_TIMEOUT_S = 3.0


def _downloaded(repo_id: str, cache_dir: str | None = None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir)
    except ValueError:  # not a valid repo id: the loader's own error says so
        return True
    return isinstance(found, str)


def _unreachable(endpoint: str) -> str | None:
    """Why ``endpoint`` does not answer, or None when it answers anything at all."""
    import httpx

    try:
        httpx.head(endpoint, timeout=PROBE_TIMEOUT_S)
    except httpx.TransportError as exc:
        return str(exc) or type(exc).__name__
    return None


def unreachable_model(
    source: str,
    endpoint: str | None = None,
    offline: bool | None = None,
    aliases: tuple[str, ...] = (),
) -> str | None:
    """Why ``source`` cannot be loaded (a Hub id, not downloaded, the Hub out of reach), or
    None when a load may go ahead: a folder, a downloaded model (under its id or one of its
    ``aliases``, as sentence-transformers finds `all-mpnet-base-v2` under its organisation),
    offline mode (which fails fast by itself), or a Hub that answers."""
    from huggingface_hub import constants

    endpoint = endpoint if endpoint is not None else constants.ENDPOINT
    offline = offline if offline is not None else constants.HF_HUB_OFFLINE
    if offline or Path(source).expanduser().exists():
        return None
    if any(_downloaded(repo_id) for repo_id in (source, *aliases)):
        return None
    reason = _unreachable(endpoint)
    if reason is None:
        return None
    return (
        f"it is not downloaded, and the Hub at {endpoint} does not answer ({reason}); run it "
        "once where the Hub answers, or name a folder that holds it"
    )


def load_from(
    source: str,
    endpoint: str | None = None,
    offline: bool | None = None,
    aliases: tuple[str, ...] = (),
    cache_dir: str | None = None,
) -> str:
    """Where to load ``source`` from: itself, or, for a downloaded Hub id while the Hub does
    not answer, its downloaded folder. Asks the Hub only for a downloaded Hub id, once, with a
    short timeout (a loader asks it anyway, to see whether the model changed)."""
    from huggingface_hub import constants, snapshot_download

    endpoint = endpoint if endpoint is not None else constants.ENDPOINT
    offline = offline if offline is not None else constants.HF_HUB_OFFLINE
    if offline or Path(source).expanduser().exists():
        return source
    held = [repo_id for repo_id in (source, *aliases) if _downloaded(repo_id, cache_dir)]
    if not held or _unreachable(endpoint) is None:
        return source
    try:
        folder: str = snapshot_download(held[0], cache_dir=cache_dir, local_files_only=True)
    except (OSError, ValueError):  # an odd cache: the loader's own error says more
        return source
    return folder
