"""Configs are data: no config file makes a riskq command run code.

riskq turns its own keys into typed dataclasses and never instantiates anything from them. The
``hydra:`` keys are another matter: Hydra instantiates ``hydra.callbacks`` (any importable
callable, with arguments from the file) and hands ``hydra.job_logging`` and
``hydra.hydra_logging`` to ``logging.config.dictConfig``, whose ``class`` and ``()`` entries
also name callables to build. A file in ``--config-dir`` (a colleague's game, a paper's configs)
could set them: ``hydra.callbacks.x._target_: pathlib.Path.touch`` with a path as argument ran
when tried. So every riskq Hydra command checks the composed configuration before Hydra acts on
any of it (``refuse_code``, run from ``guard_hydra``) and refuses with one line:

- a callback other than riskq's own (``ALLOWED_CALLABLES``);
- a logging ``class`` or ``()`` other than the standard library's stream and file handlers, and
  an ``ext://`` object other than ``sys.stdout`` and ``sys.stderr``;
- a ``_target_`` anywhere else, except the launcher's and the sweeper's: Hydra builds those
  only from installed Hydra plugins (``hydra_plugins``), with no arguments;
- ``hydra.job.env_set`` of a variable that decides which code a process loads (``PATH``,
  ``PYTHON*``, ``LD_*``, ``DYLD_*``): a launcher's worker processes start under it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

from omegaconf import DictConfig, OmegaConf

from riskq.errors import UsageError

CODE_KEYS = ("_target_", "()", "class")  # keys whose value names a callable to build
ALLOWED_CALLABLES = frozenset(
    {
        "riskq.cli.created_dirs.RecordNewDirs",  # configs/train.yaml's callback
        "logging.StreamHandler",  # Hydra's logging presets
        "logging.FileHandler",
        "logging.NullHandler",
    }
)
PLUGIN_TARGETS = ("hydra.launcher._target_", "hydra.sweeper._target_")  # Hydra plugins only
ALLOWED_EXTERNAL = frozenset({"ext://sys.stdout", "ext://sys.stderr"})
CODE_LOADING_ENV = re.compile(r"^(PATH|PYTHON.*|LD_.*|DYLD_.*)$")


def code_entries(node, where: str = "hydra") -> Iterator[tuple[str, object]]:
    """(dotted key, value) of every entry of ``node`` that names something to build or import:
    the CODE_KEYS and ``ext://`` references."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}"
            if key in CODE_KEYS:
                yield path, value
            else:
                yield from code_entries(value, path)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from code_entries(value, f"{where}[{index}]")
    elif isinstance(node, str) and node.startswith("ext://"):
        yield where, node


def refused_entries(hydra_node: dict) -> list[str]:
    """``key=value`` for every entry of the composed ``hydra`` node that would run code from a
    config (see the module docstring); empty when there is none."""
    refused = []
    for path, value in code_entries(hydra_node):
        if path in PLUGIN_TARGETS:
            continue
        allowed = ALLOWED_EXTERNAL if str(value).startswith("ext://") else ALLOWED_CALLABLES
        if value not in allowed:  # an interpolation is never allowed: it is not checked
            refused.append(f"{path}={value}")
    env_set = (hydra_node.get("job") or {}).get("env_set") or {}
    refused += [f"hydra.job.env_set.{name}" for name in env_set if CODE_LOADING_ENV.match(name)]
    return refused


def refuse_code(cfg: DictConfig) -> None:
    """Raise UsageError (one line) when the composed config would make Hydra run code."""
    if "hydra" not in cfg:
        return
    refused = refused_entries(OmegaConf.to_container(cfg.hydra, resolve=False))
    if refused:
        raise UsageError(
            f"refused config: {', '.join(refused)}: it would run code named by a config file "
            f"(riskq configs are data; allowed: {', '.join(sorted(ALLOWED_CALLABLES))}, "
            f"{', '.join(sorted(ALLOWED_EXTERNAL))})"
        )


def guard_hydra() -> None:
    """Make every composition of this process pass ``refuse_code`` before Hydra uses it (for
    logging, callbacks, launchers or the task); installed once, by ``hydra_command``.

    Hydra has no hook between composing a configuration and acting on it, so this wraps its
    config loader's ``load_configuration`` (hydra-core pinned in constraints.txt;
    tests/test_run_files.py checks that a refused callback never runs)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    original = ConfigLoaderImpl.load_configuration
    if getattr(original, "riskq_guarded", False):
        return

    @functools.wraps(original)
    def load_configuration(self, *args, **kwargs):
        cfg = original(self, *args, **kwargs)
        refuse_code(cfg)
        return cfg

    load_configuration.riskq_guarded = True
    ConfigLoaderImpl.load_configuration = load_configuration
