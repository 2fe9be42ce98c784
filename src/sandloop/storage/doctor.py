"""`sandloop doctor`: what is wrong with a store, and the repairs that lose nothing.

Readers and resumes refuse a damaged store (a table that cannot be read, a run whose recorded
steps are gone) rather than show holes or silently compute steps again. The doctor says what
is damaged and repairs what the store itself still holds:

- the logs of writers that died are replayed;
- a table whose latest version cannot be read is restored to its newest readable version;
- steps missing from the latest version of `invocations` are copied back from older versions.

Steps that no version and no log holds are lost. Only ``rewind`` (asked for by name) makes
such a run resumable again, by counting its steps from the last one still recorded, so that
the next run computes the rest again: never silently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sandloop.storage.lance_io import to_frame
from sandloop.storage.schema import TABLES
from sandloop.storage.store import AkashicStore, StoreError, sql_str

Severity = Literal["damaged", "warning"]

#: Older versions searched for lost rows; each costs one filtered read.
MAX_VERSIONS_SEARCHED = 200


@dataclass
class Finding:
    severity: Severity
    what: str  # one line
    repair: str | None = None  # what --repair does (or did) about it
    repaired: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _readable(table: Any) -> str | None:
    """None when every row of the checked-out version can be read, else why not."""
    try:
        table.search().limit(None).to_arrow()
    except Exception as exc:
        return str(exc).splitlines()[0]
    return None


def _newest_readable_version(store: AkashicStore, name: str) -> int | None:
    table = store.table_at(name, store.table(name).version)
    versions = sorted((int(v["version"]) for v in table.list_versions()), reverse=True)
    for version in versions[1 : MAX_VERSIONS_SEARCHED + 1]:
        try:
            table.checkout(version)
        except Exception:
            continue
        if _readable(table) is None:
            return version
    return None


def _check_tables(store: AkashicStore, repair: bool) -> list[Finding]:
    findings = []
    for name in TABLES:
        if not store.has_table(name):
            continue
        try:
            table = store.table(name)
        except StoreError as exc:
            findings.append(Finding("damaged", f"table {name}: cannot be opened ({exc})"))
            continue
        problem = _readable(table)
        if problem is None:
            continue
        version = _newest_readable_version(store, name)
        finding = Finding(
            "damaged",
            f"table {name}: its latest version cannot be read ({problem})",
            f"restore version {version}, the newest readable one" if version is not None else None,
        )
        if repair and version is not None:
            store.table(name).restore(version)
            finding.repaired = True
        findings.append(finding)
    return findings


def _recorded(store: AkashicStore, thread: str) -> set[int]:
    steps = store.steps(thread)
    return set(steps.loc[steps["status"] == "ok", "step"].astype(int))


def _copy_back(store: AkashicStore, thread: str, missing: list[int]) -> int:
    """Rows of ``missing`` steps found in older versions of invocations, upserted again."""
    if not store.has_table("invocations"):
        return 0
    table = store.table("invocations")
    where = f"thread = {sql_str(thread)} AND step IN ({', '.join(map(str, missing))})"
    old = store.table_at("invocations", table.version)
    found: dict[str, dict[str, Any]] = {}
    versions = sorted((int(v["version"]) for v in old.list_versions()), reverse=True)
    for version in versions[1 : MAX_VERSIONS_SEARCHED + 1]:
        try:
            old.checkout(version)
            rows = to_frame(old.search().where(where).limit(None).to_arrow())
        except Exception:
            continue
        for row in rows.to_dict("records"):
            found.setdefault(str(row["key"]), row)
        if {int(r["step"]) for r in found.values() if r["status"] == "ok"} >= set(missing):
            break
    return store.upsert("invocations", list(found.values()))


def _check_runs(store: AkashicStore, repair: bool, rewind: bool) -> list[Finding]:
    findings = []
    for run in store.rows("runs"):
        claimed = int(run["steps"] or 0)
        if run["kind"] != "network" or claimed == 0:
            continue
        thread = str(run["thread"])
        missing = [n for n in range(claimed) if n not in _recorded(store, thread)]
        if not missing:
            continue
        finding = Finding(
            "damaged",
            f"run {thread[:12]} ({run['name']}): {claimed} steps recorded in runs, "
            f"{len(missing)} of them missing from the store (from step {missing[0]})",
            "copy missing steps back from older versions of invocations",
        )
        findings.append(finding)
        if not repair:
            continue
        _copy_back(store, thread, missing)
        still = [n for n in range(claimed) if n not in _recorded(store, thread)]
        if not still:
            finding.repaired = True
            continue
        finding.repair = (
            f"{len(still)} steps are in no version and no log: they are lost; "
            "`sandloop doctor --repair --rewind` lets the run compute them again"
        )
        if rewind:
            keep = still[0]
            store.put_run(
                {
                    **run,
                    "steps": keep,
                    "status": "interrupted",
                    "stop_reason": None,
                    "error": f"rewound by sandloop doctor on {datetime.now(UTC):%Y-%m-%d}: "
                    f"steps {keep}–{claimed - 1} were lost",
                }
            )
            finding.repair = f"rewound to step {keep}: the next run computes the rest again"
            finding.repaired = True
    return findings


def _check_logs(store: AkashicStore, repair: bool) -> list[Finding]:
    findings = []
    dead = store.journal.abandoned()
    if dead:
        finding = Finding(
            "warning",
            f"{len(dead)} write-ahead log(s) of writers that stopped hold steps not yet in the "
            "tables (readers see them; the next run of each thread commits them)",
            "commit them now",
        )
        if repair:
            store.recover()
            finding.repaired = True
        findings.append(finding)
    if store.local is not None and store.wal_dir.is_dir():
        for path in sorted(store.wal_dir.glob("*.jsonl.quarantine")):
            findings.append(
                Finding(
                    "warning",
                    f"{path}: lines moved aside from thread {path.name.split('.')[0][:12]}'s "
                    "log because they were not step records; look, then delete the file",
                )
            )
    return findings


def _check_uncommitted(store: AkashicStore) -> list[Finding]:
    if store.local is None:
        return []  # on object storage a table's creation is one conditional put
    return [
        Finding(
            "warning",
            f"{path}: a table whose creation never committed, moved aside; delete it when sure",
        )
        for path in sorted(store.path.glob("*.lance.uncommitted-*"))
    ]


def examine(store: AkashicStore, *, repair: bool = False, rewind: bool = False) -> list[Finding]:
    """Every problem found, in the order repairs must run: logs first (they hold the newest
    steps), then tables, then what the runs claim."""
    if store.local is not None and not store.local.is_dir():
        return []
    findings = _check_logs(store, repair)
    findings += _check_tables(store, repair)
    findings += _check_runs(store, repair, rewind)
    findings += _check_uncommitted(store)
    return findings
