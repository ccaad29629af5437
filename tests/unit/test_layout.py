"""The layout's promise: flows/ holds Prefect flows and their step forms, and nothing else; tests share
helpers through tests/support/, never by importing another test module."""

from __future__ import annotations

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
    import ast

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
