"""Checkpoints: data only, versioned, written atomically.

A checkpoint (``checkpoints/latest.pt``) holds tensors, numbers, strings, lists and dicts only:
network and optimiser state, the replay buffer, the run's counters and every random generator's
state (torch's as a byte tensor, numpy's as the plain dict ``bit_generator.state`` gives, its
128-bit integers included). Readers load it with ``torch.load(..., weights_only=True)``, which
builds nothing but those types: a file that asks for anything else (a pickle whose objects run
code when loaded) is refused before any of it runs.

``format`` numbers the layout (``CHECKPOINT_FORMAT``). Format 0 is what riskq wrote before the
number existed: the same layout, with the replay buffer's episode lengths and widths as numpy
int64 arrays. Those arrays, and nothing else of numpy, are allowed when loading, and
``from_format_0`` turns them into tensors: an exact conversion. Any other format is refused
with one line naming both formats; nothing is ever restored in part.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import torch

import riskq
from riskq.run.run_files import atomic_file

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "atomic_file", "load_checkpoint"]

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest.pt"
CHECKPOINT_FORMAT = 1  # the layout this release writes and reads
# What format 0's numpy int64 arrays need, and nothing more: numpy's array constructor (under
# its numpy 2 and numpy 1 module names), the array and dtype classes and the int64 dtype.
_reconstruct = np.zeros(0).__reduce__()[0]
FORMAT_0_ARRAYS = [
    (_reconstruct, "numpy._core.multiarray._reconstruct"),
    (_reconstruct, "numpy.core.multiarray._reconstruct"),
    np.ndarray,
    np.dtype,
    np.dtypes.Int64DType,
]
WEIGHTS_ONLY_REFUSAL = "Weights only load failed"  # how torch.load's refusals begin
PLAIN_TYPES = (torch.Tensor, int, float, bool, str, type(None))


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, refused or of another run (one line)."""


# What loading a checkpoint of the wrong content into a run's objects raises.
MISMATCH_ERRORS = (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError)


def mismatch(error: Exception, location: str | Path) -> CheckpointError:
    """The one-line error for a checkpoint whose content does not fit the run's config."""
    detail = " ".join(str(error).split())[:160]
    return CheckpointError(
        f"checkpoint {resolve_checkpoint(location)} does not fit this run's config "
        f"({type(error).__name__}: {detail})"
    )


def first_non_plain(value, where: str = "checkpoint") -> str | None:
    """Where ``value`` holds something other than tensors, numbers, strings, None, lists,
    tuples and dicts with string or integer keys (e.g. ``checkpoint.buffer.widths: ndarray``),
    or None."""
    if isinstance(value, PLAIN_TYPES):
        return None
    if isinstance(value, list | tuple):
        items = enumerate(value)
    elif isinstance(value, dict):
        if not all(isinstance(key, str | int) for key in value):
            return f"{where}: a key that is not a string or an integer"
        items = value.items()
    else:
        return f"{where}: {type(value).__name__}"
    return next(
        (found for key, item in items if (found := first_non_plain(item, f"{where}.{key}"))), None
    )


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` with its format to ``path`` atomically (``atomic_file``). A value that
    ``weights_only`` loading would refuse is a bug here, not a file no reader can open."""
    found = first_non_plain(state)
    if found is not None:
        raise TypeError(f"a checkpoint holds only plain data; found {found}")
    versioned = {**state, "format": CHECKPOINT_FORMAT, "riskq_version": riskq.__version__}
    with atomic_file(path) as handle:
        torch.save(versioned, handle)


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
    if path.suffix != ".pt":
        raise CheckpointError(
            f"{path} is not a checkpoint (give its run directory {path.parent}, or a .pt file)"
        )
    return path


def refusal(path: Path) -> CheckpointError:
    """The error for a file that ``weights_only`` loading refuses, naming what it asks for."""
    try:
        wanted = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip archive: a bare pickle or a damaged file
        wanted = []
    named = f" ({', '.join(wanted[:3])})" if wanted else ""
    return CheckpointError(
        f"checkpoint {path} is refused: it holds objects{named} that loading would have to "
        f"build or run, and a riskq checkpoint holds only tensors, numbers, strings, lists and "
        f"dicts; nothing of it was loaded"
    )


def from_format_0(state: dict) -> dict:
    """Format 0 -> 1: the replay buffer's numpy lengths and widths become tensors."""
    buffer = state.get("buffer")
    if isinstance(buffer, dict):
        arrays = {k: torch.from_numpy(v) for k, v in buffer.items() if isinstance(v, np.ndarray)}
        state = {**state, "buffer": {**buffer, **arrays}}
    return {**state, "format": CHECKPOINT_FORMAT}


MIGRATIONS = {0: from_format_0}  # format -> its exact conversion to CHECKPOINT_FORMAT


def versioned(state, path: Path) -> dict:
    """``state`` in CHECKPOINT_FORMAT: as it is, converted from format 0, or refused."""
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} is not a riskq checkpoint (no dict inside)")
    version = state.get("format", 0)
    if version == CHECKPOINT_FORMAT:
        found = first_non_plain(state)
        if found is not None:
            raise CheckpointError(f"checkpoint {path} is not a riskq checkpoint ({found})")
        return state
    if version in MIGRATIONS:
        return MIGRATIONS[version](state)
    writer = f" (written by riskq {state['riskq_version']})" if "riskq_version" in state else ""
    raise CheckpointError(
        f"checkpoint {path} has format {version}{writer}; this riskq ({riskq.__version__}) "
        f"reads format {CHECKPOINT_FORMAT} and converts format 0: evaluate or resume it with "
        f"the riskq release that wrote it"
    )


def load_checkpoint(location: str | Path) -> dict:
    """The checkpoint of a run directory (or a checkpoint file), in CHECKPOINT_FORMAT, loaded
    with ``weights_only=True`` (nothing in the file runs). Raises CheckpointError (one line)
    for a missing, unreadable, refused or other-format file."""
    path = resolve_checkpoint(location)
    try:
        with torch.serialization.safe_globals(FORMAT_0_ARRAYS), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on odd files: the error says it
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        if isinstance(error, pickle.UnpicklingError) and WEIGHTS_ONLY_REFUSAL in str(error):
            raise refusal(path) from None
        detail = " ".join(str(error).split())[:200]
        raise CheckpointError(f"checkpoint {path} is unreadable: {detail}") from None
    return versioned(state, path)
