"""Run files that survive the machine: whole-file replacement, one-line write errors, and the
one reader of ``metrics.jsonl`` that tolerates a torn last line.

Every file riskq writes into a run directory (``checkpoints/latest.pt``, ``summary.json``,
``metrics.jsonl``, ``tb/`` events, ``config.yaml``, ``riskq-eval``'s ``eval_<risk>.json``) is
written through ``atomic_file`` (files replaced whole) or ``writing`` (files appended to). A
write that fails (a full disk, ENOSPC; a quota, EDQUOT; a read-only file system, EROFS; no
permission, EACCES; ...) raises ``RunFileError``: one line naming the file and the error, exit
code 1 (``riskq.cli.errors``). ``atomic_file`` then removes its temporary file, so the file it
replaces (the last good checkpoint) stays as it was and no space stays taken.

``metrics.jsonl`` is appended one whole record (JSON and newline) at a time; a run killed, or
out of disk space, while appending leaves a partial last line. ``read_metrics`` is how every
command and script reads the file: it leaves that line out with a one-line warning. This module
imports no torch, so the tables (``riskq.analysis``) read runs without loading it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from riskq.errors import RunFailed, UsageError

TEMPORARY_SUFFIX = ".tmp"
METRICS_FILE = "metrics.jsonl"


class RunFileError(RunFailed):
    """A run file that could not be written (reported as one line, exit code 1)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path, self.reason = path, reason


def os_error_in(error: BaseException) -> OSError | None:
    """The OSError behind ``error``: itself, or the one it was raised from or while handling
    (torch.save reports a failed write as a RuntimeError raised while handling it)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def describe_os_error(error: OSError) -> str:
    """``No space left on device (ENOSPC)``: the system's message and the errno's name."""
    name = errno.errorcode.get(error.errno, "") if error.errno is not None else ""
    message = error.strerror or str(error)
    return f"{message} ({name})" if name else message


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Around the writes of ``path``: an OSError among them becomes a RunFileError naming it."""
    try:
        yield
    except RunFileError:
        raise
    except Exception as error:
        cause = os_error_in(error)
        if cause is None:
            raise
        raise RunFileError(path, describe_os_error(cause)) from None


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "wb") -> Iterator[IO]:
    """A handle whose content replaces ``path`` only once it is whole: written to a temporary
    file beside it (``<name>.tmp``), fsynced and renamed over ``path`` when the block ends.

    If anything fails or interrupts the block (a write error: RunFileError; Ctrl-C), the
    temporary file is removed and ``path`` is left as it was."""
    tmp = path.with_name(path.name + TEMPORARY_SUFFIX)
    try:
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open(mode) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise


def read_metrics(path: Path) -> list[dict]:
    """The records of a ``metrics.jsonl``. A run killed while appending leaves a partial last
    line: it is left out, with a one-line warning on stderr. Any other line that is not a JSON
    object with a numeric ``step`` is a UsageError naming the file and the line."""
    text = path.read_text(errors="replace")
    lines = text.splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except ValueError:
            if number == len(lines) and not text.endswith("\n"):
                print(f"warning: {path}: partial last line {number} left out", file=sys.stderr)
                break
            raise UsageError(f"{path}, line {number}: not a JSON record") from None
        if not is_metrics_record(record):
            raise UsageError(f"{path}, line {number}: not a record of scalars with a numeric step")
        records.append(record)
    return records


def is_metrics_record(record) -> bool:
    """A metrics.jsonl record: an object whose ``step`` is a number (not a bool)."""
    step = record.get("step") if isinstance(record, dict) else None
    return isinstance(step, int | float) and not isinstance(step, bool)
