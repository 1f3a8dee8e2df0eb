"""The layering of STYLE.md, checked on the source: rules are pure, services and models never import Flask."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PMO = Path(__file__).resolve().parents[1] / "pmo"
FLASK_MODULES = {"flask", "flask_login", "flask_wtf", "werkzeug"}
IO_MODULES = {"sqlalchemy", "flask", "requests", "os", "pathlib", "subprocess", "socket"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def layer_files(*names: str) -> list[Path]:
    return sorted(p for name in names for p in PMO.glob(f"*/{name}"))


@pytest.mark.parametrize("path", layer_files("rules.py", "service.py", "models.py", "queries.py"),
                         ids=lambda p: str(p.relative_to(PMO)))
def test_domain_layers_do_not_import_flask(path):
    assert not imported_modules(path) & FLASK_MODULES


@pytest.mark.parametrize("path", sorted(PMO.glob("core/*.py")), ids=lambda p: p.name)
def test_core_imports_nothing_from_flask_or_other_domains(path):
    modules = imported_modules(path)
    assert not modules & FLASK_MODULES
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pmo."):
            assert node.module.startswith("pmo.core"), f"{path.name} imports {node.module}"


@pytest.mark.parametrize("path", layer_files("rules.py"), ids=lambda p: str(p.relative_to(PMO)))
def test_rules_are_pure(path):
    modules = imported_modules(path)
    assert not modules & IO_MODULES, f"{path} imports {modules & IO_MODULES}"
    source = path.read_text(encoding="utf-8")
    for forbidden in ("date.today(", "datetime.now(", "datetime.utcnow(", "time.time("):
        assert forbidden not in source, f"{path} reads the clock ({forbidden})"


@pytest.mark.parametrize("path", layer_files("service.py"), ids=lambda p: str(p.relative_to(PMO)))
def test_services_never_commit(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "commit":
            raise AssertionError(f"{path.relative_to(PMO)}:{node.lineno} commits; the boundary commits")


@pytest.mark.parametrize("path", sorted(PMO.glob("*/__init__.py")), ids=lambda p: p.parent.name)
def test_each_domain_says_what_it_owns(path):
    assert ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))), f"{path} has no module docstring"


def test_only_the_clock_reads_the_wall_clock():
    for path in PMO.rglob("*.py"):
        if path.name == "clock.py" or "_data" in path.parts:
            continue
        source = path.read_text(encoding="utf-8")
        for forbidden in ("date.today()", "datetime.now(", "datetime.utcnow("):
            assert forbidden not in source, f"{path.relative_to(PMO)} reads the clock; use pmo.core.clock"
