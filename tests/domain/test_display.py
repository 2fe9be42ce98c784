from __future__ import annotations

from sandloop.display import counted, excerpt, status_line


def test_excerpt_flattens_and_shortens() -> None:
    assert excerpt("a\n  b\tc") == "a b c"
    assert excerpt("x" * 100, width=10) == "x" * 9 + "…"
    assert excerpt(None) == "" and excerpt(float("nan")) == ""
    assert excerpt("0123456789abcdef", "image") == "<image 0123456789>"


def test_whole_number_columns_stay_whole_beside_a_missing_one() -> None:
    """Issue 37, item 19: a seed of 3 showed as 3.0 once another run had none."""
    import pandas as pd

    from sandloop.display import whole_numbers

    frame = pd.DataFrame({"seed": [3, None], "steps": [12, 4], "score": [0.5, 1.0]})
    assert frame["seed"].dtype.kind == "f"  # what pandas makes of it
    text = whole_numbers(frame).to_json(orient="records")
    assert text == '[{"seed":3,"steps":12,"score":0.5},{"seed":null,"steps":4,"score":1.0}]'


def test_counts_and_statuses_read_as_english() -> None:
    assert [counted(n, "run") for n in (0, 1, 2)] == ["0 runs", "1 run", "2 runs"]
    assert counted(1, "task run") == "1 task run"
    assert status_line("failed", "failed") == "failed"  # never "failed: failed"
    assert status_line("failed", None) == "failed"
    assert status_line("completed", "max_steps") == "completed: max_steps"
