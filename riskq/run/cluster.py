"""riskq-train as a Slurm job of a sweep (``hydra/launcher=slurm``; guide: "Running on a
cluster"): stopping for a requeue at the job's time limit or preemption, and continuing after it.

Slurm warns a job ``signal_delay_s`` seconds before its time limit with a signal (submitit asks
for ``USR2``; ``scancel --signal=USR2 <job>`` sends the same to a job being preempted).
submitit's protocol then requeues it: the launcher's ``checkpoint`` method re-submits the same
call, ``scontrol requeue`` puts the job back in the queue, and the job starts again with the
same overrides in the same run directory (at most ``max_num_timeout`` times after a time
limit). riskq's part:

- ``requeue_on_signal`` (around the task function, in a submitit Slurm job only): the signal no
  longer interrupts the run wherever it is. It sets ``PREEMPTION``; the training loop stops at
  the end of its iteration, saves a checkpoint there and marks summary.json ``interrupted``
  (``riskq.run.trainer``); then submitit's own handler requeues the job.
- ``requeued_resume``: a requeued job (``SLURM_RESTART_COUNT`` >= 1) continues its own run from
  the checkpoint in its run directory, exactly as ``resume=<run dir>`` would.

Exactness: with lock-step collection no episode is in flight at the end of an iteration, and
the counters, random states and buffer in the checkpoint are all the loop carries over, so the
requeued run logs the same metrics.jsonl and ends with the same summary.json as a run that was
never stopped. With ``collection=streaming`` episodes run across iterations; playing them out
early would change what the run collects, so no checkpoint is added there and the job
continues from its last periodic one (``checkpoint_interval``), which is exact too.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from riskq.config import TrainConfig
from riskq.errors import RunFailed
from riskq.run.checkpoint import CHECKPOINT_DIR, LATEST
from riskq.run.stopping import StopRequest

SUBMITIT_SLURM = "slurm"  # SUBMITIT_EXECUTOR in a job that submitit's Slurm executor submitted


class Preempted(KeyboardInterrupt):
    """The job's time-limit or preemption signal stopped the run at the end of an iteration.

    A KeyboardInterrupt, so the run ends as it does on SIGTERM (summary.json ``interrupted``,
    logs closed, lock released) before the job is requeued."""


class Preemption(StopRequest):
    """Whether submitit's signal has reached this job: the handler only records it, and the
    training loop stops at the end of its iteration."""

    def handle(self, signum: int, frame) -> None:
        self.signum = signum


PREEMPTION = Preemption()


def in_slurm_job() -> bool:
    """Whether this process runs a job that submitit submitted to Slurm."""
    return os.environ.get("SUBMITIT_EXECUTOR") == SUBMITIT_SLURM and "SLURM_JOB_ID" in os.environ


def restart_count() -> int:
    """How many times Slurm has requeued this job: 0 on its first start and outside Slurm."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0"))


def requeued_resume(cfg: TrainConfig, run_dir: Path) -> TrainConfig:
    """``cfg`` with ``resume=run_dir`` when this is a requeued Slurm job whose run directory holds
    its checkpoint; otherwise ``cfg`` unchanged (a first start, or a plain ``riskq-train``)."""
    requeued = in_slurm_job() and restart_count() > 0
    if cfg.resume is None and requeued and (run_dir / CHECKPOINT_DIR / LATEST).is_file():
        return replace(cfg, resume=str(run_dir))
    return cfg


def preemption_signal() -> signal.Signals:
    """The signal submitit asks Slurm for (``SUBMITIT_PREEMPT_SIGNAL``, ``USR2`` by default)."""
    from submitit import JobEnvironment  # only ever called inside a submitit job

    return signal.Signals[f"SIG{JobEnvironment.USR_SIG}"]


@contextmanager
def requeue_on_signal() -> Iterator[None]:
    """Around a run in a submitit Slurm job: the preemption signal makes the run stop at the end
    of an iteration (``Preempted``), then the job is requeued by submitit's handler, which exits
    the process. A run stopped by SIGTERM after the signal is requeued too (from its last
    checkpoint). Elsewhere (no Slurm, or not the main thread) nothing changes."""
    if not in_slurm_job():
        yield
        return
    signum = preemption_signal()
    submitit_handler = signal.getsignal(signum)  # checkpoint the call, scontrol requeue, exit
    if not PREEMPTION.install((signum,)):  # signals reach the main thread only
        yield
        return
    try:
        yield
    except KeyboardInterrupt as stop:
        if not PREEMPTION.requested:
            raise  # SIGTERM or Ctrl-C alone: the job is cancelled, not preempted
        requeue(submitit_handler, signum, stop)
    finally:
        signal.signal(signum, submitit_handler)


def requeue(submitit_handler: Callable, signum: int, stop: KeyboardInterrupt) -> None:
    """Hand the stopped run to submitit's handler: it requeues the job and exits, or refuses
    (the job reached its time limit more than ``max_num_timeout`` times): RunFailed."""
    from submitit.core.utils import UncompletedJobError

    if not callable(submitit_handler):  # not submitit's process: nothing would requeue it
        raise stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # scontrol requeue ends this job with SIGTERM
    try:
        submitit_handler(signum, None)
    except UncompletedJobError as refused:
        raise RunFailed(
            f"{refused} ({stop}); raise hydra.launcher.max_num_timeout or timeout_min, or "
            f"continue the run with resume=<its run dir>"
        ) from None
