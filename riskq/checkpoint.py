"""Atomic checkpoints: a killed run never leaves a corrupt or half-written file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import torch

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest.pt"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or of another run (reported as one line)."""


# What loading a checkpoint of the wrong content into a run's objects raises.
MISMATCH_ERRORS = (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError)


def mismatch(error: Exception, location: str | Path) -> CheckpointError:
    """The one-line error for a checkpoint whose content does not fit the run's config."""
    detail = " ".join(str(error).split())[:160]
    return CheckpointError(
        f"checkpoint {resolve_checkpoint(location)} does not fit this run's config "
        f"({type(error).__name__}: {detail})"
    )


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "wb") -> Iterator[IO]:
    """A handle whose content replaces ``path`` only once it is whole: written to a temporary
    file beside it, fsynced and renamed over ``path`` when the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open(mode) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (``atomic_file``)."""
    with atomic_file(path) as handle:
        torch.save(state, handle)


def resolve_checkpoint(location: str | Path) -> Path:
    """A checkpoint file from a run directory or a file path; missing ones raise."""
    path = Path(location)
    if path.is_dir():
        path = path / CHECKPOINT_DIR / LATEST
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint not found: {path} (give a run directory holding "
            f"{CHECKPOINT_DIR}/{LATEST}, or a .pt file)"
        )
    return path


def load_checkpoint(location: str | Path) -> dict:
    path = resolve_checkpoint(location)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise CheckpointError(f"checkpoint {path} is unreadable: {error}") from error
