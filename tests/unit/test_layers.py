"""The packages' layers: each imports only the ones below it.

    commands  ->  producer  ->  cli  ->  tasks
    worker (the Celery app)  ->  tasks

``tasks`` (the domain: replication, backups, diffs, coordination) imports none of the others,
so a task module does not import the application that runs it (Celery's ``shared_task``);
``cli`` (the pieces every command line shares) only ``tasks``; ``producer`` no command.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.servers import ROOT

ALLOWED = {
    "tasks": {"tasks"},
    "cli": {"cli", "tasks"},
    "producer": {"producer", "cli", "tasks", "worker"},  # the fleet sends through the worker app
    "worker": {"worker", "tasks"},
}
PACKAGES = {"tasks", "cli", "producer", "worker", "commands"}


def imported(path: Path) -> set[str]:
    """The project packages a module imports (at its top or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found & PACKAGES


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported(path) - ALLOWED[package])
        for path in sorted((ROOT / package).rglob("*.py"))
        if imported(path) - ALLOWED[package]
    }
    assert wrong == {}
