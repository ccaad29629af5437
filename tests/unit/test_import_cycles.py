"""No module of the project imports, directly or through others, a module that imports it back:
each import at any depth (a function's lazy import counts too), read from the source with ast."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("flows", "ops", "prefect_runs", "services", "tasks")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports: `from a import b` counts as a.b when that is a module."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_a_cycle_is_found_when_two_modules_import_each_other():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_of_the_project_imports_itself_back():
    modules = project_modules()
    known = set(modules)
    graph = {name: imports_of(name, path, known) for name, path in modules.items()}
    # The walk saw the packages it guards.
    assert {"ops.cli", "flows.admin", "services", "prefect_runs.engine", "tasks.store"} <= set(graph)
    assert find_cycle(graph) is None


def test_nothing_under_tasks_imports_the_flows_the_command_line_or_the_layers_that_drive_prefect():
    """tasks/ is what is done; flows/ and ops/ decide when, through services/ and prefect_runs/. The arrow points one way."""
    modules = project_modules()
    known = set(modules)
    wrong = {
        name: sorted(i for i in imports_of(name, path, known) if i.split(".")[0] in ("flows", "ops", "services", "prefect_runs"))
        for name, path in modules.items()
        if name.startswith("tasks")
    }
    assert {k: v for k, v in wrong.items() if v} == {}


def test_nothing_under_tasks_imports_prefect():
    """tasks/ is plain Python: the flows wrap it in Prefect tasks, so it runs and is tested without a server."""
    offenders = []
    for name, path in project_modules().items():
        if not name.startswith("tasks"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                found = [node.module or ""]
            else:
                continue
            offenders += [f"{name}: {m}" for m in found if m == "prefect" or m.startswith("prefect.")]
    assert offenders == []
