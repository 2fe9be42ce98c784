"""Deterministic Akashic addressing: realm → thread → step → key.

Every layer hashes the one above it, so a key names its whole lineage, and the same spec, genesis
and seed always produce the same keys: re-runs upsert instead of duplicating, and a crashed run can
find where it stopped. H is BLAKE2b with a 16-byte digest over canonical JSON (sorted keys, no
whitespace, UTF-8, strings NFC-normalised). Floats are not hashed as floats: their text form
differs across serialisers, so they are turned into their shortest ``repr`` string first.

``KEY_VERSION`` sits inside every hashed object; bump it only with a migration, as it changes
every key in every store.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

KEY_VERSION = 1
DIGEST_BYTES = 16


def _normalise(value: Any) -> Any:
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return {"$float": repr(value)}
    if isinstance(value, Mapping):
        return {unicodedata.normalize("NFC", str(k)): _normalise(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [_normalise(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return {"$bytes": hash_bytes(bytes(value))}
    raise TypeError(f"cannot hash a value of type {type(value).__name__}: {value!r}")


def canonical_json(value: Any) -> bytes:
    """The exact bytes that get hashed: the same value always gives the same bytes."""
    return orjson.dumps(_normalise(value), option=orjson.OPT_SORT_KEYS)


def hash_bytes(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=DIGEST_BYTES).hexdigest()


def hash_value(value: Any) -> str:
    return hash_bytes(canonical_json(value))


def realm_key(kind: str, spec: Mapping[str, Any]) -> str:
    """What is being run: a network, dialogue or recipe spec."""
    return hash_value({"v": KEY_VERSION, "layer": "realm", "kind": kind, "spec": spec})


def thread_key(realm: str, thread_inputs: Mapping[str, Any]) -> str:
    """Which occurrence of the realm: for a network run, its genesis and seed."""
    return hash_value({"v": KEY_VERSION, "layer": "thread", "realm": realm, "in": thread_inputs})


def step_key(thread: str, step: int) -> str:
    return hash_value({"v": KEY_VERSION, "layer": "step", "thread": thread, "step": step})


def invocation_key(step: str, facet: str, input_hash: str, params: Mapping[str, Any]) -> str:
    """Who acted at this step, on what input, with which parameters."""
    return hash_value(
        {
            "v": KEY_VERSION,
            "layer": "key",
            "step": step,
            "facet": facet,
            "input": input_hash,
            "params": params,
        }
    )


def derive_seed(seed: int, *salt: object) -> int:
    """A 32-bit seed for one step, stable across resumes and processes."""
    digest = hashlib.blake2b(canonical_json([seed, *map(str, salt)]), digest_size=4).digest()
    return int.from_bytes(digest, "big")
