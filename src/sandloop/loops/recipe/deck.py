"""A deck of lateral-thinking prompts for the `oblique` recipe, in our own words.

Brian Eno and Peter Schmidt's Oblique Strategies are copyrighted, so this deck is written for
sandloop; point the recipe's `deck` slot at a file (one card per line) to use your own.
"""

from __future__ import annotations

import random
from pathlib import Path

DECK = (
    "Remove the part you are proudest of.",
    "Say it as a child would.",
    "Make the smallest change that changes everything.",
    "Swap the beginning and the end.",
    "What would it sound like if it were twice as slow?",
    "Keep only the verbs.",
    "Describe it to someone who has never seen it.",
    "Turn the mistake into the subject.",
    "Repeat one thing until it means something else.",
    "Leave a gap where the obvious answer goes.",
    "Borrow a rule from a different craft.",
    "Use fewer colours.",
    "Ask what it is for, then do the opposite.",
    "Make it quieter.",
    "Let the background become the foreground.",
    "Work with what is already there.",
    "Cut it in half and keep the stranger half.",
    "Name the thing you are avoiding.",
    "Give it a deadline of one minute.",
    "Trust the first version.",
    "Change the scale: tiny or enormous.",
    "Imagine it as a map.",
    "Replace a noun with a sound.",
    "What is the simplest possible version?",
)


def read_deck(path: Path) -> tuple[str, ...]:
    cards = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    cards = tuple(card for card in cards if card and not card.startswith("#"))
    if not cards:
        raise ValueError(f"{path}: the deck has no cards (one per line)")
    return cards


def draw(seed: int | None, deck: tuple[str, ...] = DECK) -> str:
    """The same seed draws the same card: a recipe run is reproducible and its card recorded."""
    return random.Random(seed).choice(deck)
