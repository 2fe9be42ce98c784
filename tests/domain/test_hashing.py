from __future__ import annotations

import unicodedata

import pytest

from sandloop.hashing import (
    canonical_json,
    derive_seed,
    hash_value,
    invocation_key,
    realm_key,
    step_key,
    thread_key,
)


def test_canonical_json_ignores_key_order_and_whitespace() -> None:
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1})
    assert canonical_json({"a": 1}) == b'{"a":1}'


def test_unicode_is_normalised_before_hashing() -> None:
    composed = unicodedata.normalize("NFC", "café")
    decomposed = unicodedata.normalize("NFD", "café")
    assert composed != decomposed
    assert hash_value({"text": composed}) == hash_value({"text": decomposed})


def test_floats_hash_by_their_shortest_repr() -> None:
    assert hash_value(0.1 + 0.2) != hash_value(0.3)
    assert hash_value(0.5) == hash_value(0.5)
    assert hash_value(1.0) != hash_value(1)


def test_unhashable_values_are_refused() -> None:
    with pytest.raises(TypeError, match="cannot hash"):
        hash_value({"x": object()})


def test_each_layer_chains_the_one_above() -> None:
    realm = realm_key("network", {"models": ["dummy:text"]})
    other_realm = realm_key("network", {"models": ["dummy:text", "dummy:text"]})
    inputs = {"genesis": "a red balloon", "seed": 7}
    assert thread_key(realm, inputs) == thread_key(realm, dict(reversed(inputs.items())))
    assert thread_key(realm, inputs) != thread_key(other_realm, inputs)
    thread = thread_key(realm, inputs)
    assert step_key(thread, 3) != step_key(thread, 4)
    step = step_key(thread, 3)
    base = invocation_key(step, "dummy:text", "h", {"t": 1})
    assert base == invocation_key(step, "dummy:text", "h", {"t": 1})
    assert (
        len(
            {
                base,
                invocation_key(step, "dummy:text#b", "h", {"t": 1}),
                invocation_key(step, "dummy:text", "h2", {"t": 1}),
                invocation_key(step, "dummy:text", "h", {"t": 2}),
            }
        )
        == 4
    )
    assert len(base) == 32 and int(base, 16) >= 0


def test_derived_seeds_are_stable_and_distinct() -> None:
    assert derive_seed(7, 3) == derive_seed(7, 3)
    assert len({derive_seed(7, n) for n in range(1000)}) > 990
    assert 0 <= derive_seed(7, 3) < 2**32
