"""Which examples must land on the same side of the train/validation split.

Split by example key, one prompt could teach in train and be examined in validation with
another answer: two seeds of one genesis, two networks on one question, two threads whose
loops pass through the same text. A validation loss over such a split measures recall, not
generalisation. So threads are grouped: a thread joins the group of its genesis (the
question of a dialogue, the input of a recipe) and of every prompt one of its steps was given,
and two threads that share any of these share a group. The split is then decided per group,
by a hash of the group's smallest genesis hash: deterministic, independent of the order
records are read in, and byte-reproducible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def prompt_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class _Groups:
    """Union-find over names (threads and prompt hashes), path-halving, union by size."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.size: dict[str, int] = {}

    def find(self, name: str) -> str:
        parent = self.parent.setdefault(name, name)
        self.size.setdefault(name, 1)
        while parent != name:
            grand = self.parent[parent]
            self.parent[name] = grand
            name, parent = parent, self.parent[grand]
        return name

    def union(self, first: str, second: str) -> None:
        a, b = self.find(first), self.find(second)
        if a == b:
            return
        if self.size[a] < self.size[b]:
            a, b = b, a
        self.parent[b] = a
        self.size[a] += self.size[b]


def split_groups(
    genesis: Iterable[tuple[str, str]], prompts: Iterable[tuple[str, str]] = ()
) -> dict[str, str]:
    """Each thread's group key (32 hex digits, uniform: it decides the split as a key would).

    ``genesis``: (thread, its genesis text); ``prompts``: (thread, a text one of its steps was
    given), for the texts more than one thread was given (a text only one thread saw joins
    nothing). The key is a hash of the group's smallest genesis hash, so it does not depend on
    which shared prompts were read."""
    groups = _Groups()
    threads: list[str] = []
    started = set()
    for thread, text in genesis:
        threads.append(thread)
        node = "p" + prompt_hash(text)
        started.add(node)
        groups.union("t" + thread, node)
    for thread, text in prompts:
        groups.union("t" + thread, "p" + prompt_hash(text))
    smallest: dict[str, str] = {}
    for node in started:
        root = groups.find(node)
        if root not in smallest or node < smallest[root]:
            smallest[root] = node
    # rehashed: the smallest of many hashes is not uniform, and the split reads its digits
    return {t: prompt_hash(smallest[groups.find("t" + t)]) for t in threads}
