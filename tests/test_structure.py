"""One-way structure: the commands (riskq/cli/) sit on the library, never the other way round,
and only the commands import Hydra (docs/concepts/layout.md). The analysis layer
(riskq/analysis/, the tables of riskq-table) sits above the model and run code: it reads their
runs, and nothing below it imports it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "riskq" / "cli"
ANALYSIS = ROOT / "riskq" / "analysis"
LIBRARY = sorted(
    path
    for folder in ("riskq", "envs")
    for path in (ROOT / folder).rglob("*.py")
    if CLI not in path.parents
)


def imported_modules(source: str, *, package: str = "riskq") -> set[str]:
    """Every module an ``import`` or ``from ... import`` of ``source`` names, with the names
    a ``from`` import takes (``from riskq import cli`` -> riskq, riskq.cli); relative imports
    are resolved against ``package``."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_imported_modules_sees_every_import_form():
    source = "import hydra.core\nfrom riskq import cli\nfrom .cli.errors import report\n"
    found = imported_modules(source, package="riskq")
    assert {"hydra.core", "riskq.cli", "riskq.cli.errors"} <= found
    assert not any(is_under(name, "riskq.cli") for name in imported_modules("import riskq.clip"))


def test_no_library_module_imports_the_commands_or_hydra():
    assert len(LIBRARY) > 30  # riskq/*.py and envs/*.py were found
    offenders = []
    for path in LIBRARY:
        package = ".".join(path.relative_to(ROOT).parent.parts)
        for name in imported_modules(path.read_text(), package=package):
            if is_under(name, "riskq.cli") or is_under(name, "hydra"):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, offenders


def test_nothing_below_the_analysis_layer_imports_it():
    below = [path for path in LIBRARY if ANALYSIS not in path.parents]
    assert len(below) < len(LIBRARY)  # riskq/analysis/*.py were found
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in below
        for name in imported_modules(
            path.read_text(), package=".".join(path.relative_to(ROOT).parent.parts)
        )
        if is_under(name, "riskq.analysis")
    ]
    assert not offenders, offenders


def test_model_trainer_and_checker_import_without_hydra():
    code = (
        "import sys\n"
        "import riskq.mixers, riskq.learner, riskq.trainer, riskq.rigm\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'hydra'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
