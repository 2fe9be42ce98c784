"""List columns built from flat ones: an exchange is two messages, so the hf configs' message
lists are two flat columns interleaved and cut every two, with no Python object per row."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def interleaved(first: pa.Array, second: pa.Array) -> pa.Array:
    """``first[0], second[0], first[1], second[1], …``"""
    n = len(first)
    order = np.empty(2 * n, np.int64)
    order[0::2], order[1::2] = np.arange(n), np.arange(n, 2 * n)
    return pa.concat_arrays([first, second]).take(pa.array(order))


def offsets(lists: int, each: int) -> pa.Array:
    """The offsets of ``lists`` lists of ``each`` items."""
    return pa.array(np.arange(0, lists * each + 1, each, dtype=np.int32))


def exchanges(first: pa.Array, second: pa.Array, list_type: pa.ListType) -> pa.ListArray:
    """One list of two messages per row, user then assistant, the contents given."""
    n = len(first)
    turn_type = list_type.value_type
    roles = pa.array(["user", "assistant"] * n, pa.string())
    turns = pa.StructArray.from_arrays([roles, interleaved(first, second)], fields=list(turn_type))
    return pa.ListArray.from_arrays(offsets(n, 2), turns, type=list_type)
