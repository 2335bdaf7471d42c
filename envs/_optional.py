"""Optional imports of the external suites (``pettingzoo``, ``gym_ma`` adapters).

The suites are optional extras of the package (see ``pyproject.toml``): ``import_optional``
turns a missing package into a one-line error naming the extra to install. What the adapters
share besides (the per-copy loop, padding and masks) is in ``envs._adapter``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from types import ModuleType

# module prefix -> (package to install, extra in pyproject.toml)
EXTRAS: dict[str, tuple[str, str]] = {
    "mpe2": ("mpe2", "mpe"),
    "pettingzoo.sisl": ("pettingzoo[sisl]", "sisl"),
    "lbforaging": ("lbforaging", "lbforaging"),
    "rware": ("rware", "rware"),
}


def missing_package_message(module: str, *, env: str, id: str) -> str:
    """The one-line hint for a module of env ``id`` that cannot be imported."""
    matches = [p for p in EXTRAS if module == p or module.startswith(p + ".")]
    if not matches:
        top = module.split(".")[0]
        return f"env '{env}' id '{id}' needs the package '{top}': pip install {top}"
    package, extra = EXTRAS[max(matches, key=len)]
    return (
        f"env '{env}' id '{id}' needs the optional package '{package}': pip install -e '.[{extra}]'"
    )


def _sibling_ids(module: str) -> list[str]:
    """Versioned modules next to ``module`` (``mpe2.simple_v3``, ...), for error messages."""
    parent_name = module.rpartition(".")[0]
    parent = importlib.import_module(parent_name)
    names = [m.name for m in pkgutil.iter_modules(getattr(parent, "__path__", []))]
    return sorted(f"{parent_name}.{name}" for name in names if re.search(r"_v\d+$", name))


def import_optional(module: str, *, env: str, id: str) -> ModuleType:
    """Import ``module``; a missing optional package becomes an ImportError naming its extra.

    A missing leaf module inside an installed package is a typo in the id: ValueError that lists
    the versioned modules of that package.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name == module and "." in module:
            valid = ", ".join(_sibling_ids(module))
            raise ValueError(f"env '{env}': unknown id '{id}'; valid choices: {valid}") from None
        raise ImportError(missing_package_message(module, env=env, id=id)) from err
