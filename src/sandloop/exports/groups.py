"""Which examples must land on the same side of the train/validation split.

Split by example key, one prompt could teach in train and be examined in validation with
another answer: two seeds of one genesis, two networks on one question, two threads whose
loops pass through the same text. A validation loss over such a split measures recall, not
generalisation. So threads are grouped: a thread joins the group of its genesis (the
question of a dialogue, the input of a recipe) and of every prompt one of its steps was given,
and two threads that share any of these share a group. The split is then decided per group,
by a hash of the group's smallest prompt hash: deterministic, independent of the order
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

    ``genesis``: (thread, its genesis text); ``prompts``: (thread, the text one of its steps
    was given), as many as there are."""
    groups = _Groups()
    threads: list[str] = []
    for thread, text in genesis:
        threads.append(thread)
        groups.union("t" + thread, "p" + prompt_hash(text))
    for thread, text in prompts:
        groups.union("t" + thread, "p" + prompt_hash(text))
    smallest: dict[str, str] = {}
    for name in groups.parent:
        if name.startswith("p"):
            root = groups.find(name)
            if root not in smallest or name < smallest[root]:
                smallest[root] = name
    # rehashed: the smallest of many hashes is not uniform, and the split reads its digits
    return {t: prompt_hash(smallest[groups.find("t" + t)]) for t in threads}
