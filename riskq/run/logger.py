"""Run logging: TensorBoard scalars, a ``metrics.jsonl`` copy of them, and console progress.

Scalar names are fixed and documented in docs/guide/run-directory.md ("Logged metrics"); the
x-axis is always the number of environment steps.

Both logs are append-only and written in the training loop's own thread, flushed at every log
point, so a write that fails stops the run there with a one-line error naming the file
(``riskq.run.run_files.RunFileError``). A run killed (or out of disk space) while appending leaves
a partial last record: ``riskq.run.run_files.read_metrics``, the one reader of ``metrics.jsonl``
that every command and script uses, leaves a partial last line out with a one-line warning, and
a resumed run cuts both logs back to their last whole record (``trim_metrics``,
``trim_event_file``).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import socket
import struct
import sys
import time
from pathlib import Path

from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tqdm import tqdm

from riskq.run.run_files import METRICS_FILE, RunFileError, atomic_file, read_metrics, writing
from riskq.run.tracking import WandbTracker

__all__ = ["METRICS_FILE", "RunLogger", "read_metrics", "trim_metrics"]

TB_DIR = "tb"
EVENT_FILE_PREFIX = "events.out.tfevents."


def trim_metrics(path: Path, *, last_step: int) -> list[dict]:
    """Drop what a resumed run will log again: lines after ``last_step``, a partial last line,
    and the final evaluation of the interrupted run (a run continued to a later t_max does not
    end there). Returns the kept records logged at ``last_step``."""
    if not path.exists():
        return []
    kept = [
        r
        for r in read_metrics(path)
        if r["step"] < last_step or (r["step"] == last_step and not r.get("final"))
    ]
    with atomic_file(path, "w") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in kept))
    return [r for r in kept if r["step"] == last_step]


def scalar_values(record: dict) -> dict[str, float]:
    """The scalars of a ``metrics.jsonl`` record (None, a non-finite value, read back as NaN)."""
    return {
        name: math.nan if value is None else value
        for name, value in record.items()
        if name not in ("step", "final")
    }


def event_record(event: Event) -> bytes:
    """``event`` as one TFRecord: length, masked CRC of the length, data, masked CRC of it."""
    data = event.SerializeToString()
    header = struct.pack("<Q", len(data))
    return (
        header
        + struct.pack("<I", masked_crc32c(header))
        + data
        + struct.pack("<I", masked_crc32c(data))
    )


def whole_records_size(path: Path) -> int:
    """Bytes at the start of a TensorBoard event file taken by whole records; anything after
    them is a record cut short (or damaged)."""
    data = path.read_bytes()
    end = 0
    while end + 12 <= len(data):
        header = data[end : end + 8]
        if struct.unpack("<I", data[end + 8 : end + 12])[0] != masked_crc32c(header):
            break
        record_end = end + 12 + struct.unpack("<Q", header)[0] + 4
        if record_end > len(data):
            break
        end = record_end
    return end


def whole_event_records(path: Path) -> int:
    """The bytes of a TensorBoard event file taken by whole records. A partial record after
    them (left by a run killed, or out of disk space, while writing it) gets a one-line warning:
    readers leave it out."""
    size, whole = path.stat().st_size, whole_records_size(path)
    if whole < size:
        print(
            f"warning: {path}: partial last record left out ({size - whole} bytes)", file=sys.stderr
        )
    return whole


def trim_event_file(path: Path) -> None:
    """Cut a TensorBoard event file back to its whole records (a resumed run appends after)."""
    whole = whole_event_records(path)
    if whole < path.stat().st_size:
        with writing(path):
            os.truncate(path, whole)


class EventFile:
    """One TensorBoard event file, written in the calling thread and flushed after every
    record. (TensorBoard's own writer writes from a background thread: there a failed write
    prints that thread's traceback and is raised only at some later call.)"""

    numbers = itertools.count()  # tells apart files opened in the same second by one process

    def __init__(self, log_dir: Path, *, purge_step: int | None = None) -> None:
        number = next(self.numbers)
        name = f"{EVENT_FILE_PREFIX}{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}"
        self.path = log_dir / f"{name}.{number}"
        with writing(self.path):
            log_dir.mkdir(parents=True, exist_ok=True)
            self.handle = self.path.open("xb")
        self.write(Event(wall_time=time.time(), file_version="brain.Event:2"))
        if purge_step is not None:  # TensorBoard hides earlier files' events from this step on
            start = SessionLog(status=SessionLog.START)
            self.write(Event(wall_time=time.time(), step=purge_step, session_log=start))

    def write(self, event: Event) -> None:
        with writing(self.path):
            self.handle.write(event_record(event))
            self.handle.flush()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """One event holding every scalar of ``values`` at env step ``step``."""
        tagged = [Summary.Value(tag=name, simple_value=value) for name, value in values.items()]
        self.write(Event(wall_time=time.time(), step=step, summary=Summary(value=tagged)))


class RunLogger:
    """Writes every scalar to TensorBoard and ``metrics.jsonl`` and drives the progress bar.

    A run resumed at ``start_step`` keeps exactly what ``metrics.jsonl`` keeps: TensorBoard
    forgets every event from ``start_step`` on (a purge event in the new event file) and gets
    the kept records of ``start_step`` again, so a resumed run's final evaluation never appears
    twice.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        total_steps: int,
        start_step: int = 0,
        progress: bool = True,
        tracker: WandbTracker | None = None,  # riskq.run.tracking: every scalar to W&B too
    ) -> None:
        self.run_dir, self.tracker = run_dir, tracker
        self.metrics_path = run_dir / METRICS_FILE
        purge = start_step if start_step > 0 else None
        replay = trim_metrics(self.metrics_path, last_step=start_step if purge else -1)
        if purge is not None:
            for path in sorted((run_dir / TB_DIR).glob(f"{EVENT_FILE_PREFIX}*")):
                trim_event_file(path)
        self.events = EventFile(run_dir / TB_DIR, purge_step=purge)
        for record in replay:
            self.events.scalars(start_step, scalar_values(record))
        with writing(self.metrics_path):
            self.metrics_file = self.metrics_path.open("a")
        self.bar = tqdm(
            total=total_steps,
            initial=min(start_step, total_steps),
            unit="step",
            dynamic_ncols=True,
            disable=not progress,
            desc=run_dir.name,
        )

    def log(self, step: int, scalars: dict[str, float], *, final: bool = False) -> None:
        """Scalars at env step ``step``; ``final`` marks a run's closing evaluation."""
        finite = {name: float(value) for name, value in scalars.items()}
        self.events.scalars(step, finite)
        if self.tracker is not None:
            self.tracker.log(step, finite)
        record = {"step": step, **{k: (v if math.isfinite(v) else None) for k, v in finite.items()}}
        if final:
            record["final"] = True
        with writing(self.metrics_path):
            self.metrics_file.write(json.dumps(record) + "\n")
            self.metrics_file.flush()

    def advance(self, step: int, status: dict[str, float] | None = None) -> None:
        """Move the progress bar to ``step``; ``status`` shows the latest evaluation.

        A run ends after the first collection that reaches t_max, so it may overshoot by up to
        one collection: the bar's total grows to the steps actually run (as in summary.json).
        """
        if step > self.bar.total:
            self.bar.total = step
        self.bar.update(max(0, step - self.bar.n))
        if status:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in status.items()}, refresh=False)

    def close(self, *, quiet: bool = False) -> None:
        """Close both logs (again is harmless). A write that fails while closing raises
        RunFileError, unless ``quiet``: closing after another failure, which is reported."""
        self.bar.close()
        if self.tracker is not None:
            self.tracker.close(failed=quiet)
            self.tracker = None
        failures = []
        files = ((self.events.path, self.events.handle), (self.metrics_path, self.metrics_file))
        for path, handle in files:
            try:
                with writing(path):
                    handle.close()
            except RunFileError as error:
                failures.append(error)
        if failures and not quiet:
            raise failures[0]
