"""Directories this invocation created, and their removal when a failed start-up left them
empty (docs/guide/run-directory.md): riskq deletes only directories that this invocation created
and that are still empty (``rmdir``, never a recursive delete).

``RecordNewDirs`` is a Hydra callback (``configs/train.yaml``, ``hydra.callbacks``): before Hydra
creates the run or sweep directory it notes which of it and its parents do not exist yet;
``riskq-train`` calls ``remove_created_empty_dirs`` after every invocation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

SWEEP_FILE = "multirun.yaml"  # written by Hydra's sweeper into the sweep directory


class _CreatedDirs:
    """Directories this process is about to create, deepest first (set by RecordNewDirs)."""

    def __init__(self) -> None:
        self.dirs: list[Path] = []
        self.sweep_dir: Path | None = None

    def record(self, path: str, *, sweep: bool) -> None:
        target = directory = Path(os.path.abspath(path))
        self.dirs, self.sweep_dir = [], None
        while not directory.exists():
            self.dirs.append(directory)
            directory = directory.parent
        if sweep and self.dirs and self.dirs[0] == target:
            self.sweep_dir = target


CREATED = _CreatedDirs()


class RecordNewDirs(Callback):
    """Hydra callback (configs/train.yaml): before Hydra creates the run or sweep directory,
    record which of it and its parents do not exist yet."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._record(config, "hydra.run.dir", sweep=False)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._record(config, "hydra.sweep.dir", sweep=True)

    @staticmethod
    def _record(config: DictConfig, key: str, *, sweep: bool) -> None:
        try:
            path = OmegaConf.select(config, key)
        except Exception:  # Hydra reports the same error when it makes the directory
            return
        if path is not None:
            CREATED.record(str(path), sweep=sweep)


def remove_created_empty_dirs() -> list[Path]:
    """Remove the recorded directories that hold nothing (deepest first); return them.

    In a sweep directory created by this invocation, empty job folders and Hydra's lone
    ``multirun.yaml`` go too. ``rmdir`` refuses a directory with anything else in it.
    """
    removed = []
    dirs, sweep_dir = CREATED.dirs, CREATED.sweep_dir
    CREATED.dirs, CREATED.sweep_dir = [], None
    for directory in dirs:
        if not directory.is_dir():
            continue
        if directory == sweep_dir:
            for job_dir in directory.iterdir():
                if job_dir.is_dir() and not any(job_dir.iterdir()):
                    job_dir.rmdir()
            if [entry.name for entry in directory.iterdir()] == [SWEEP_FILE]:
                (directory / SWEEP_FILE).unlink()
        try:
            directory.rmdir()
        except OSError:  # not empty: it holds a run (or something else) and stays
            continue
        removed.append(directory)
    return removed
