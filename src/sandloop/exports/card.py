"""The export's dataset card: YAML metadata the Hub and `datasets` read, then a readable page.

The hf format's file sets are the card's configs, so `load_dataset(EXPORT_DIR, "sft")` (or
`"preference"`) loads one by itself, locally or from the Hub, and the Hub's viewer shows each
as its own table. An export without hf lists its JSONL file sets instead (uncompressed ones:
`datasets` reads .zst only with `zstandard` installed). The snapshot that
made the export goes in the metadata too, so a pushed dataset still says where it came from.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
import yaml

SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
)


def config_name(fmt: str, part: str) -> str:
    """The card's name for one file set: ``sft``, ``preference`` for hf's configs, else the
    format, with its part (``trl-preference``)."""
    if fmt == "hf":
        return part or "sft"
    return f"{fmt}-{part}" if part else fmt


def file_set(path: str) -> tuple[str, str, str] | None:
    """(format, part, split) of an export file, or None for a file that is not data:
    ``hf/sft/train-00000-of-00001.parquet``, ``trl/preference.train.jsonl``,
    ``openai-chat/train.jsonl.zst``."""
    parts = path.split("/")
    if len(parts) < 2:
        return None
    fmt, name = parts[0], parts[-1]
    if fmt == "hf":
        return (fmt, parts[1], name.split("-")[0]) if len(parts) == 3 else None
    if not name.endswith(".jsonl"):  # a .jsonl.zst needs `zstandard` to load: not a config
        return None
    part, _, split = name.split(".jsonl")[0].rpartition(".")
    return fmt, part, split


#: Configs TRL's trainers take as they load, in the order one is made the card's default: a
#: user who loads the dataset with no config name gets one that trains (alpaca and sharegpt,
#: whose roles TRL does not read, never are).
TRL_READY = (
    "sft",
    "preference",
    "vision",
    "openai-chat",
    "trl-messages",
    "trl-prompt_completion",
    "trl-preference",
)


def configs(files: list[str]) -> list[dict[str, Any]]:
    """One config per file set, in a stable order; the first of `TRL_READY` is the default.

    `datasets` reads every config of a card with one builder, so a card lists the parquet
    configs when there are any, else the JSONL ones; the other file sets load with
    ``load_dataset("json", data_files=…)``, as the card says."""
    found: dict[str, dict[str, str]] = defaultdict(dict)
    sets = [(path, named) for path in sorted(files) if (named := file_set(path)) is not None]
    if any(fmt == "hf" for _, (fmt, _, _) in sets):
        sets = [(path, named) for path, named in sets if named[0] == "hf"]
    for path, (fmt, part, split) in sets:
        found[config_name(fmt, part)][split] = path
    first = {"sft": 0, "preference": 1}
    order = sorted(found, key=lambda name: (first.get(name, 2), name))
    result = []
    for name in order:
        splits = found[name]
        entry: dict[str, Any] = {
            "config_name": name,
            "data_files": [
                {"split": split, "path": splits[split]}
                for split in ("train", "validation")
                if split in splits
            ],
        }
        result.append(entry)
    if result:
        ready = [c for c in result if c["config_name"] in TRL_READY]
        ready.sort(key=lambda c: TRL_READY.index(c["config_name"]))
        default = ready[0] if ready else result[0]
        default["default"] = True
    return result


def size_category(examples: int) -> str:
    return next((label for limit, label in SIZE_CATEGORIES if examples < limit), "n>100M")


#: The Hub's task category of each kind of example.
TASKS = {"vision": "image-to-text", "text-to-image": "text-to-image"}


def task_categories(manifest: dict[str, Any]) -> list[str]:
    """The Hub's categories of what the files hold: an example kind that no exported file
    carries (text→image pairs in an export without hf) is not the dataset's task."""
    parts = {named[1] for path in manifest["files"] if (named := file_set(path)) is not None}
    found = {TASKS.get(part, "text-generation") for part in parts}
    return sorted(found) or ["text-generation"]


def metadata(manifest: dict[str, Any], license_id: str) -> dict[str, Any]:
    snapshot = manifest["snapshot"]
    examples = sum(manifest["counts"][s]["examples"] for s in ("train", "validation"))
    return {
        "pretty_name": snapshot["name"],
        "license": license_id,
        **({"language": codes} if (codes := _languages(manifest)) else {}),
        "task_categories": task_categories(manifest),
        "size_categories": [size_category(examples)],
        "tags": ["sandloop", "synthetic"],
        "configs": configs(list(manifest["files"])),
        "sandloop": {
            "version": manifest["sandloop_version"],
            "snapshot": snapshot["name"],
            "created_at": snapshot["created_at"],
            "selection": snapshot["selection"],
            "table_versions": snapshot["table_versions"],
        },
    }


def _languages(manifest: dict[str, Any]) -> list[str]:
    return list(manifest.get("language", {}).get("codes", []))


def card(manifest: dict[str, Any], license_id: str = "unknown") -> str:
    snapshot = manifest["snapshot"]
    counts = manifest["counts"]
    front = yaml.safe_dump(metadata(manifest, license_id), sort_keys=False, allow_unicode=True)
    records = manifest["records"]
    lines = [
        "---",
        front.rstrip("\n"),
        "---",
        "",
        f"# {snapshot['name']}",
        "",
        "A fine-tuning dataset exported by sandloop from a pinned snapshot of its record "
        "(network runs, dialogues and recipes).",
        "",
        f"- selection: `{orjson.dumps(snapshot['selection']).decode()}`",
        f"- table versions: `{orjson.dumps(snapshot['table_versions']).decode()}`",
        f"- formats: {', '.join(manifest['options']['formats'])}",
        f"- language: {', '.join(_languages(manifest)) or 'not given'} "
        f"({manifest.get('language', {}).get('how', 'not given')})",
        f"- train: {counts['train']['examples']} examples {counts['train']['by_kind']}",
        f"- validation: {counts['validation']['examples']} examples "
        f"{counts['validation']['by_kind']}",
        f"- records per file set: `{orjson.dumps(records).decode()}`",
        f"- split: {manifest['options']['split']}",
        f"- de-duplicated: {manifest['dedupe'] or 'nothing'}; "
        f"redacted: {manifest['redactions'] or 'nothing'}",
        f"- tokens ({manifest['tokens']['tokenizer']}, {manifest['tokens']['counted']}): "
        f"{manifest['tokens']['train']}",
        "",
        "Each config of this card loads with `datasets.load_dataset(PATH, NAME)`, for example "
        '`"sft"` (conversational `messages`) or `"preference"` (`prompt`/`chosen`/`rejected`); '
        'a JSONL file set loads with `load_dataset("json", data_files=…)`.',
        "",
        "Network steps are (input → output) pairs with the model named; a dialogue is each "
        "actor's side of the conversation; a recipe is its rendered prompt and accepted output "
        "(with a rejected round as the non-preferred side where there was one). An image→text "
        'step is a vision example (`"vision"`: `messages` and `images`), a text→image step a '
        '(prompt, image) pair (`"text-to-image"`).',
        "",
        "`manifest.json` lists every file with its sha256; exporting the same snapshot again "
        "gives the same bytes.",
        "",
    ]
    return "\n".join(lines)
