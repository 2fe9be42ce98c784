from __future__ import annotations

from sandloop.display import excerpt


def test_excerpt_flattens_and_shortens() -> None:
    assert excerpt("a\n  b\tc") == "a b c"
    assert excerpt("x" * 100, width=10) == "x" * 9 + "…"
    assert excerpt(None) == "" and excerpt(float("nan")) == ""
    assert excerpt("0123456789abcdef", "image") == "<image 0123456789>"
