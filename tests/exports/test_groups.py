"""Split groups: threads that share any prompt share a group, whatever order they come in."""

from __future__ import annotations

import itertools

from sandloop.exports.groups import split_groups

GENESIS = [("t1", "a kite"), ("t2", "a kite"), ("t3", "a boat"), ("t4", "a tree"), ("t5", "x")]
PROMPTS = [("t3", "the sea"), ("t4", "the sea"), ("t1", "wind"), ("t5", "y")]


def test_threads_sharing_a_genesis_or_a_prompt_share_a_group() -> None:
    groups = split_groups(GENESIS, PROMPTS)
    assert groups["t1"] == groups["t2"]  # one genesis
    assert groups["t3"] == groups["t4"]  # "the sea" joins a boat and a tree
    assert len({groups["t1"], groups["t3"], groups["t5"]}) == 3
    assert all(len(key) == 32 and int(key, 16) >= 0 for key in groups.values())


def test_the_groups_do_not_depend_on_the_order_records_are_read_in() -> None:
    first = split_groups(GENESIS, PROMPTS)
    for genesis, prompts in itertools.islice(
        zip(itertools.permutations(GENESIS), itertools.permutations(PROMPTS), strict=False), 24
    ):
        assert split_groups(genesis, prompts) == first
