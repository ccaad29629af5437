"""The layout's promise: flows/ holds Prefect flows and their step forms, and nothing else; each
package imports only from those below it (ops/, flows/, services/, prefect_runs/, tasks/); tests
share helpers through tests/support/, never by importing another test module."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from types import ModuleType

from prefect import Flow
from prefect.input import RunInput

ROOT = Path(__file__).resolve().parents[2]


def flows_and_step_forms(module: ModuleType) -> list[str]:
    """The flows and the step forms (RunInput classes) the module itself defines."""
    found = []
    for name, value in vars(module).items():
        candidates = value.values() if isinstance(value, dict) else [value]
        for v in candidates:
            if isinstance(v, Flow) and v.fn.__module__ == module.__name__:
                found.append(name)
            elif isinstance(v, type) and issubclass(v, RunInput) and v.__module__ == module.__name__:
                found.append(name)
    return found


def test_every_module_in_flows_defines_a_flow_or_a_step_form():
    names = [p.stem for p in sorted((ROOT / "flows").glob("*.py")) if p.name != "__init__.py"]
    assert len(names) >= 10
    assert [n for n in names if not flows_and_step_forms(importlib.import_module(f"flows.{n}"))] == []


def test_a_module_of_plain_helpers_does_not_pass_for_one():
    assert flows_and_step_forms(importlib.import_module("prefect_runs.engine")) == []


def imports_of_test_modules(tests: Path) -> list[str]:
    """Test modules that another test file imports (their helpers belong in tests/support/)."""
    test_modules = {p.stem for p in tests.rglob("test_*.py")}
    found = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path.relative_to(tests)} imports {n}" for n in names if n.split(".")[0] in test_modules]
    return found


def test_no_test_module_imports_another():
    assert imports_of_test_modules(ROOT / "tests") == []


def test_a_test_module_importing_another_is_caught(tmp_path: Path):
    (tmp_path / "test_a.py").write_text("X = 1\n")
    (tmp_path / "test_b.py").write_text("from test_a import X\n")
    assert imports_of_test_modules(tmp_path) == ["test_b.py imports test_a"]


def imported_modules(path: Path, module: str) -> set[str]:
    """Every module the file imports, at any depth (a function's lazy import counts too), relative
    imports resolved against `module` (the file's dotted name); `from a import b` counts as a."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def layer_breaches(root: Path, package: str, forbidden: tuple[str, ...]) -> list[str]:
    """Each import, in any file under root/package, of a module in one of the `forbidden` packages,
    as "path imports module"."""
    breaches = []
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        breaches += [
            f"{path.relative_to(root).as_posix()} imports {name}"
            for name in sorted(imported_modules(path, module))
            if any(name == f or name.startswith(f"{f}.") for f in forbidden)
        ]
    return breaches


def test_the_flows_import_nothing_from_the_command_line():
    """flows/ say when; ops/ runs things (the CLI, the stacks) and may import the flows, not the reverse."""
    seen = set().union(*(imported_modules(p, "flows") for p in (ROOT / "flows").glob("*.py")))
    assert {"services", "prefect_runs"} <= seen  # the flows reach Prefect and the store through the layers below
    assert layer_breaches(ROOT, "flows", ("ops",)) == []


def test_the_service_layer_and_the_adapter_import_neither_the_flows_nor_the_command_line():
    """Both are shared by flows/ and ops/, so they sit below both."""
    assert (ROOT / "services" / "__init__.py").is_file() and (ROOT / "prefect_runs" / "engine.py").is_file()
    assert layer_breaches(ROOT, "services", ("flows", "ops")) == []
    assert layer_breaches(ROOT, "prefect_runs", ("flows", "ops", "services")) == []


def test_a_flow_importing_the_command_line_is_caught(tmp_path: Path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "fine.py").write_text("import services\nfrom tasks.domain import transfers\nimport opsgenie\n")
    (tmp_path / "flows" / "leans.py").write_text("def f():\n    from ops.stack import api_client\n    return api_client\n")
    assert layer_breaches(tmp_path, "flows", ("ops",)) == ["flows/leans.py imports ops.stack"]


MAX_LINES = 600


def modules_over(limit: int, root: Path = ROOT) -> list[str]:
    """Modules of tasks/, flows/, ops/ (and the layers between) longer than `limit` lines: a room
    that size holds more than one purpose."""
    found = []
    for package in ("tasks", "flows", "ops", "services", "prefect_runs"):
        for path in sorted((root / package).rglob("*.py")):
            n = len(path.read_text().splitlines())
            if n > limit:
                found.append(f"{path.relative_to(root)}: {n} lines")
    return found


def test_no_module_is_over_600_lines():
    assert modules_over(MAX_LINES) == []


def test_a_module_over_the_limit_is_named(tmp_path: Path):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "big.py").write_text("x = 1\n" * 601)
    assert modules_over(MAX_LINES, tmp_path) == ["tasks/big.py: 601 lines"]
