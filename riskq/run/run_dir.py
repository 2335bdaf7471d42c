"""Rules that keep run directories safe (docs/guide/run-directory.md).

- riskq deletes only directories that this invocation created and that are still empty
  (``rmdir``, never a recursive delete): ``riskq.cli.created_dirs`` records which directories
  Hydra is about to create and removes those left empty by a failed start-up.
- One run per directory: ``RunLock`` holds an exclusive lock on it while a run writes there,
  and a new run refuses a directory that already holds a run (``existing_run_files``).
- ``resume=<run dir>`` continues that run in place, and only with the same experiment:
  ``config_differences`` lists the keys that differ beyond ``RESUMABLE_KEYS`` (a key written out
  or left out at its default is no difference).
- A run's ``summary.json`` says whether it is complete (``run_status``).
"""

from __future__ import annotations

import fcntl
import inspect
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from riskq.errors import UsageError
from riskq.run.run_files import writing

LOCK_FILE = ".riskq.lock"
SUMMARY_FILE = "summary.json"
RUN_FILES = ("config.yaml", "summary.json", "metrics.jsonl", "checkpoints", "tb")
# Keys a resumed run may change: budget, logging and machine settings. device is allowed (the
# checkpoint is loaded onto the new device; exact continuation holds on the same device only);
# eval_episodes is not (one curve would mix two evaluation protocols).
# Keys a resumed run may change. threads, device and algo.length_buckets change how the same
# update is computed (and so its last floating-point bits), not what it computes.
RESUMABLE_KEYS = frozenset(
    {"t_max", "eval_interval", "log_interval", "checkpoint_interval", "progress", "threads",
     "resume", "device", "algo.length_buckets", "logger.wandb", "logger.project",
     "logger.entity", "logger.group", "logger.tags"}
)  # fmt: skip


class RunLock:
    """Exclusive lock on a run directory: ``.riskq.lock`` holds the owner's PID and is locked
    with ``flock``. The kernel drops the lock when its process dies, so the lock file left by a
    killed run is taken over."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        for _ in range(10):  # retry only while the previous owner is removing its lock file
            with writing(self.path):  # a read-only or full file system: RunFileError
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise UsageError(
                    f"run directory {self.path.parent} is in use by process {owner} (lock file "
                    f"{self.path}); wait for that run to end or choose another hydra.run.dir"
                ) from None
            if self._is_current(fd):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self.fd = fd
                return self
            os.close(fd)
        raise UsageError(f"could not lock {self.path}")

    def _is_current(self, fd: int) -> bool:
        """Whether ``fd`` is still the file at ``self.path`` (not one unlinked meanwhile)."""
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None


def existing_run_files(run_dir: Path) -> list[str]:
    """The files of a run already present in ``run_dir`` (empty for a new directory)."""
    return [name for name in RUN_FILES if (Path(run_dir) / name).exists()]


def run_status(run_dir: Path) -> str:
    """``complete``, ``failed``, ``running`` (also a run killed while running), or why the
    status is unknown (``no summary.json``). Summaries written before the ``status`` field
    existed were only ever written by finished runs: complete."""
    path = Path(run_dir) / SUMMARY_FILE
    if not path.is_file():
        return f"no {SUMMARY_FILE}"
    try:
        summary = json.loads(path.read_text())
    except ValueError:
        return f"unreadable {SUMMARY_FILE}"
    if not isinstance(summary, dict):
        return f"unreadable {SUMMARY_FILE}"
    return str(summary.get("status", "complete"))


def checkpoint_progress(run_dir: Path) -> str:
    """Where ``resume=`` would continue an incomplete run, from its summary.json: e.g.
    ``checkpoint at 250000 of 300000 env steps``, ``no checkpoint``, or "" (not recorded)."""
    try:
        summary = json.loads((Path(run_dir) / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return ""
    if not isinstance(summary, dict) or "checkpoint_t_env" not in summary:  # earlier release
        return ""
    if summary["checkpoint_t_env"] is None:
        return "no checkpoint"
    return f"checkpoint at {summary['checkpoint_t_env']} of {summary.get('t_max')} env steps"


def incomplete_detail(run_dir: Path, status: str) -> str:
    """An incomplete run's status and, where recorded, its last checkpoint, e.g. ``running or
    killed; checkpoint at 250000 of 300000 env steps`` (``checkpoint_progress``)."""
    shown = {"running": "running or killed"}  # a killed run cannot update its status
    return "; ".join(filter(None, [shown.get(status, status), checkpoint_progress(run_dir)]))


def incomplete_note(incomplete: list[tuple[Path, str]], *, where: str) -> str:
    """One line listing the runs left out of ``where``, e.g. the final table, each with its
    ``incomplete_detail``."""
    listed = ", ".join(f"{path} ({incomplete_detail(path, status)})" for path, status in incomplete)
    plural = "run" if len(incomplete) == 1 else "runs"
    return f"{len(incomplete)} incomplete {plural} left out of {where}: {listed}"


def flatten(mapping: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists are values)."""
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def config_differences(
    saved: Mapping, new: Mapping, env_defaults: Mapping[str, Any] = MappingProxyType({})
) -> list[str]:
    """Dotted keys whose values differ between two configs, ignoring RESUMABLE_KEYS; keys
    deeper than two levels are summarised by their group, e.g. ``env.args.*``.

    ``env_defaults`` are the keyword defaults of the env class (``keyword_defaults``): an env
    arg that one config writes out at its default and the other leaves out is no difference.
    """
    old, current = (flatten(with_env_defaults(config, env_defaults)) for config in (saved, new))
    missing = object()
    differing = {
        key if key.count(".") < 2 else ".".join(key.split(".")[:2]) + ".*"
        for key in old.keys() | current.keys()
        if key not in RESUMABLE_KEYS and old.get(key, missing) != current.get(key, missing)
    }
    return sorted(differing)


def with_env_defaults(config: Mapping, env_defaults: Mapping[str, Any]) -> Mapping:
    """``config`` with each keyword of ``env_defaults`` that its ``env.args`` leaves out set to
    its default; the values it writes out stay."""
    if not env_defaults:
        return config
    env = config["env"]
    return {**config, "env": {**env, "args": {**env_defaults, **env["args"]}}}


def keyword_defaults(function: Callable) -> dict[str, Any]:
    """The keyword arguments of ``function`` (of its constructor, for a class) that have a
    default, with their defaults."""
    parameters = inspect.signature(function).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
