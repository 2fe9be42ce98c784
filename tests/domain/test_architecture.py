"""The house rules, read from the source: no import circles (a function-level import counts too:
it is a circle deferred), loops and domain code import no Prefect, and the flows never import
the API that starts them."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "sandloop"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> dict[str, set[str]]:
    """Every sandloop module and every outside top-level package that ``path`` imports."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, set[str]] = {"sandloop": set(), "outside": set()}
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from sandloop.x import y` imports the module y when there is one
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        for target in targets:
            if target.split(".")[0] == "sandloop":
                found["sandloop"].add(target)
            else:
                found["outside"].add(target.split(".")[0])
    return found


def graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    inside, outside = {}, {}
    for name, path in paths.items():
        found = imports_of(path, modules)
        inside[name] = {m for m in found["sandloop"] if m in modules and m != name}
        outside[name] = found["outside"]
    return inside, outside


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan). A package's
    ``__init__`` importing its own submodules is how packages work, not a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt.startswith(node + "."):
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_checker_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"p": {"p.x"}, "p.x": {"q"}, "q": set()}) == []


def test_there_are_no_import_circles() -> None:
    inside, _ = graph()
    assert len(inside) > 50  # the whole package was read
    assert cycles(inside) == []


def test_loops_and_domain_code_import_no_prefect() -> None:
    _, outside = graph()
    prefect_free = [
        name
        for name in outside
        if name.startswith(("sandloop.loops", "sandloop.storage", "sandloop.models"))
        or name in ("sandloop.records", "sandloop.registration", "sandloop.hashing")
    ]
    assert "sandloop.loops.network.engine" in prefect_free
    assert [name for name in prefect_free if "prefect" in outside[name]] == []


def test_file_locks_are_taken_only_through_the_lock_module() -> None:
    _, outside = graph()
    assert {name for name, found in outside.items() if "fcntl" in found} == {"sandloop.locks"}


def test_the_flows_never_import_the_api() -> None:
    inside, _ = graph()
    flows = {name for name in inside if name.startswith(("sandloop.flows", "sandloop.tasks"))}
    assert "sandloop.flows.driver" in flows
    assert {name for name in flows if "sandloop.api" in inside[name]} == set()
    assert "sandloop.flows.driver" in inside["sandloop.flows.network"]


def test_the_cli_starts_flows_only_through_the_api() -> None:
    inside, _ = graph()
    cli = {name for name in inside if name.startswith("sandloop.cli")}
    assert "sandloop.api" in inside["sandloop.cli.runs"]
    reaching = {
        name: sorted(m for m in inside[name] if m.startswith(("sandloop.flows", "sandloop.tasks")))
        for name in cli
    }
    assert {name: found for name, found in reaching.items() if found} == {}


#: What a command may use besides the API: how it reports (errors, secrets scrubbed from its one
#: line, excerpts, figures, progress events, the typed results it prints), its settings, and
#: the managed Prefect server, which is looked for at start-up before anything heavy loads,
#: and the HTTP app `sandloop api` serves (another face over the API, with no logic of its own).
CLI_MAY_USE = {
    "sandloop.api",
    "sandloop.config",
    "sandloop.display",
    "sandloop.errors",
    "sandloop.plots",
    "sandloop.progress",
    "sandloop.scrub",
    "sandloop.server",
    "sandloop.storage.location",
    "sandloop.summaries",
    "sandloop.web.app",
    "sandloop.web.listen",  # how that app is put on a socket (who a client is)
    "sandloop.mcp_server",
}


def test_the_cli_does_its_work_through_the_api() -> None:
    inside, _ = graph()
    cli = {name for name in inside if name.startswith("sandloop.cli")}
    assert len(cli) > 10
    beyond = {
        name: sorted(m for m in inside[name] if not m.startswith("sandloop.cli")) for name in cli
    }
    assert {n: [m for m in found if m not in CLI_MAY_USE] for n, found in beyond.items()} == {
        n: [] for n in cli
    }
