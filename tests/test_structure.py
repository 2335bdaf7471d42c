"""One-way structure (docs/concepts/layout.md). The library is grouped by layer, each group a
package that imports only the groups below it:

    riskq.config, riskq.errors  <-  riskq.model  <-  riskq.run  <-  riskq.analysis  <-  riskq.cli

(``envs`` sits below the model and imports nothing of riskq). Only the commands (riskq/cli/)
import Hydra. ``riskq.model.kernels`` and ``riskq.model.optim`` are speed machinery: only the
model's fast path uses them, never the plain reference update."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("riskq.model", "riskq.run", "riskq.analysis", "riskq.cli")  # lowest first
BASE = ("riskq", "riskq.config", "riskq.errors")  # the top level: schemas and the two errors
SOURCES = sorted(path for folder in ("riskq", "envs") for path in (ROOT / folder).rglob("*.py"))
# speed machinery -> the only library modules that may import it (the fast path)
FAST_PATH = {
    "riskq.model.kernels": {"riskq.model.learner", "riskq.model.networks"},
    "riskq.model.optim": {"riskq.model.learner"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


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


def imports_of(path: Path) -> set[str]:
    package = ".".join(path.relative_to(ROOT).parent.parts)
    return imported_modules(path.read_text(), package=package)


def modules_of(group: str) -> list[Path]:
    return [path for path in SOURCES if is_under(module_name(path), group)]


def test_imported_modules_sees_every_import_form():
    source = "import hydra.core\nfrom riskq import cli\nfrom .cli.errors import report\n"
    found = imported_modules(source, package="riskq")
    assert {"hydra.core", "riskq.cli", "riskq.cli.errors"} <= found
    assert not any(is_under(name, "riskq.cli") for name in imported_modules("import riskq.clip"))


def test_every_library_module_is_in_a_group_or_the_base():
    riskq_modules = [module_name(path) for path in SOURCES if module_name(path) != "envs"]
    riskq_modules = [name for name in riskq_modules if is_under(name, "riskq")]
    assert len(riskq_modules) > 40  # riskq/**/*.py were found
    homeless = [
        name
        for name in riskq_modules
        if name not in BASE and not any(is_under(name, group) for group in GROUPS)
    ]
    assert not homeless, f"place these in one of {GROUPS}: {homeless}"


@pytest.mark.parametrize("group", GROUPS)
def test_a_group_imports_no_group_above_it(group):
    above = GROUPS[GROUPS.index(group) + 1 :]
    assert modules_of(group)  # the group's modules were found
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules_of(group)
        for name in imports_of(path)
        if any(is_under(name, higher) for higher in above)
    ]
    assert not offenders, offenders


@pytest.mark.parametrize("base", ["envs", *BASE[1:]])
def test_the_base_and_envs_import_no_group(base):
    paths = modules_of(base)
    assert paths  # the modules were found
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in paths
        for name in imports_of(path)
        if any(is_under(name, group) for group in GROUPS)
    ]
    assert not offenders, offenders


def test_no_library_module_outside_the_commands_imports_hydra():
    library = [path for path in SOURCES if not is_under(module_name(path), "riskq.cli")]
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in library
        for name in imports_of(path)
        if is_under(name, "hydra")
    ]
    assert not offenders, offenders


@pytest.mark.parametrize("machinery", FAST_PATH)
def test_speed_machinery_is_used_only_by_the_fast_path(machinery):
    users = {
        module_name(path)
        for path in SOURCES
        if module_name(path) != machinery
        and any(is_under(name, machinery) for name in imports_of(path))
    }
    assert users  # the fast path was found using it
    assert users <= FAST_PATH[machinery], sorted(users - FAST_PATH[machinery])
    assert "riskq.model.reference" not in users


def test_model_trainer_and_checker_import_without_hydra():
    code = (
        "import sys\n"
        "import riskq.model.mixers, riskq.model.learner, riskq.run.trainer, riskq.analysis.rigm\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'hydra'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
