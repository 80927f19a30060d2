"""The rooms of ARCHITECTURE.md import only what the table there allows (read from the source, not imported)."""

import ast
from pathlib import Path

import pytest

from mlplatform.settings import PROJECT

PACKAGE = PROJECT / "mlplatform"
# room → module prefixes it must never import (at the top of a module or inside a function)
FORBIDDEN = {
    "lib": ("dagster", "mlplatform.serving", "mlplatform.deploy", "mlplatform.assets", "mlplatform.orchestration",
            "mlplatform.cli", "mlplatform.definitions", "mlplatform.resources", "mlplatform.sensors",
            "mlplatform.jobs"),
    "serving": ("dagster", "mlplatform.lib.data", "mlplatform.lib.training", "mlplatform.lib.evaluation",
                "mlplatform.lib.monitoring", "mlplatform.deploy", "mlplatform.assets", "mlplatform.orchestration"),
    "deploy": ("dagster", "mlplatform.assets", "mlplatform.orchestration", "mlplatform.cli",
               "mlplatform.definitions"),
}
LEAVES = {"specs.py": ("mlplatform", "dagster", "pandas"), "settings.py": ("mlplatform", "dagster", "pandas")}


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return found


def offending(found: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in found if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_a_room_imports_nothing_the_architecture_forbids(room):
    files = sorted((PACKAGE / room).rglob("*.py"))
    assert files
    problems = {str(f.relative_to(PROJECT)): bad for f in files if (bad := offending(imports(f), FORBIDDEN[room]))}
    assert not problems, problems


def test_specs_and_settings_import_nothing_of_the_platform_or_its_engines():
    for name, prefixes in LEAVES.items():
        assert not offending(imports(PACKAGE / name), prefixes), name


def test_the_forbidden_imports_are_found():  # the check itself can fail
    assert offending({"dagster", "mlplatform.deploy.router", "mlplatform.specs"}, FORBIDDEN["lib"]) == [
        "dagster", "mlplatform.deploy.router"]
