"""The engine's modules import only modules below them; settings.py imports only the plain-data ones."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "cassio_migration"

# Bottom to top: each module may import only the modules before it.
LAYERS = [
    "errors",
    "cql",
    "job",
    "retry",
    "connect",
    "legacy",
    "frameworks",
    "target",
    "handoff",
    "transform",
    "plan",
    "scan",
    "rejects",
    "preflight",
    "inflight",
    "digest",
    "lease",
    "state",
    "copy",
    "verify",
    "tasks",
    "scheduler",
    "report",
    "workflow",
    "status",
    "seed",
    "cli",
]


def engine_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.module and node.module.startswith("cassio_migration."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("cassio_migration.")}
    return found


def test_every_engine_module_has_its_layer() -> None:
    modules = {p.stem for p in ENGINE.glob("*.py")} - {"__init__"}
    assert modules == set(LAYERS)


def test_no_module_imports_a_module_above_it() -> None:
    upward = [
        f"{module} imports {other}"
        for module in LAYERS
        for other in engine_imports(ENGINE / f"{module}.py")
        if LAYERS.index(other) >= LAYERS.index(module)
    ]
    assert upward == []


def test_settings_import_no_engine_module_but_the_plain_data_ones() -> None:
    assert engine_imports(ROOT / "settings.py") <= {"errors", "cql", "job"}
