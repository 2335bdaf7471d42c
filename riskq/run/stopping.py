"""Stopping a run on a signal: the first SIGINT (Ctrl-C) or SIGTERM (``kill``, a cluster's time
limit) stops it; every later one while it stops is ignored.

The first signal raises ``KeyboardInterrupt`` in the main thread, wherever the run is: the
training loop (``riskq.run.trainer.train``) marks ``summary.json`` ``interrupted`` with the env step
of its last checkpoint, closes its logs, and ``riskq-train`` releases the run lock, prints one
line and exits with 130. Slurm signals a job step more than once at its time limit, and an
impatient user presses Ctrl-C twice: a second ``KeyboardInterrupt`` raised inside those steps
would leave the summary at ``running`` and print a second traceback, so the handler lets only
the first one through. A checkpoint being written when the signal arrives is abandoned whole
(``riskq.run.checkpoint.atomic_file``): the previous one stays.

Python runs a signal handler at the next bytecode of the main thread, which may belong to a
garbage-collector callback or a ``__del__`` (JAX registers one in ``gc.callbacks``): there the
``KeyboardInterrupt`` cannot propagate; Python reports it as "Exception ignored" and goes on.
The stop is still recorded, so the training loop raises it again at its next iteration
(``StopRequest.raise_if_requested``), and the report of the swallowed one is dropped.

``STOP`` is the process's one request; a hook that must act on a stop (e.g. save before a
requeue) checks ``STOP.requested`` or ``STOP.signum``.
"""

from __future__ import annotations

import signal
import sys
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
RACE = "ignored due to race condition"  # CPython's words for a signal caught just before SIG_IGN
STOP_TEXT = "signal "  # the stop's KeyboardInterrupt reads "signal <number>"


def quiet_signal_races(previous_hook):
    """A ``sys.unraisablehook`` that drops two reports of the stop itself: CPython's report of
    a repeated stop signal that arrived just before SIG_IGN took over (``OSError: Signal 15
    ignored due to race condition``), whose ignoring is what the handler asked for, and the
    stop's own ``KeyboardInterrupt`` raised where it could not propagate (a gc callback), which
    the training loop raises again. Every other unraisable exception goes to ``previous_hook``."""

    def hook(unraisable) -> None:
        error = unraisable.exc_value
        race = isinstance(error, OSError) and RACE in str(error)
        swallowed_stop = isinstance(error, KeyboardInterrupt) and str(error).startswith(STOP_TEXT)
        if not (race or swallowed_stop):
            previous_hook(unraisable)

    return hook


class StopRequest:
    """Whether, and by which signal, this process was asked to stop."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def handle(self, signum: int, frame) -> None:
        """Signal handler: the first signal raises KeyboardInterrupt; from then on the process
        ignores the stop signals (SIG_IGN, which also holds while the interpreter shuts down,
        when Python's own handlers are gone), so the summary, the logs and the lock are
        finished and the exit code stays 130."""
        if self.signum is not None:
            return  # a repeat that arrived before SIG_IGN was in place
        self.signum = signum
        sys.unraisablehook = quiet_signal_races(sys.unraisablehook)
        for stop_signal in STOP_SIGNALS:
            signal.signal(stop_signal, signal.SIG_IGN)
        raise KeyboardInterrupt(f"{STOP_TEXT}{signum}")

    def raise_if_requested(self) -> None:
        """Raise the stop's KeyboardInterrupt again if a signal came: the handler's own may have
        been swallowed where it was raised (a gc callback). Called between iterations."""
        if self.requested:
            raise KeyboardInterrupt(f"{STOP_TEXT}{self.signum}")

    def install(self, signals: tuple[int, ...] = STOP_SIGNALS) -> bool:
        """Forget an earlier stop and handle ``signals`` from now on. Python delivers signals to
        the main thread only, so elsewhere (a launcher's worker thread) nothing is installed:
        returns whether the handler is in place."""
        self.signum = None
        if threading.current_thread() is not threading.main_thread():
            return False
        for signum in signals:
            signal.signal(signum, self.handle)
        return True


STOP = StopRequest()
