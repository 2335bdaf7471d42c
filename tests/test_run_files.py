"""Run files are safe to share and survive the machine: real processes, real files.

- Loading a checkpoint never runs code: a crafted pickle is refused by every reader and its
  payload never runs.
- Every checkpoint holds a format version; another format is refused in one line.
- A write that fails (full disk, read-only file) is one line, exit 1, keeps the last good
  checkpoint, leaves no temporary file, and the run resumes exactly once space is freed.
- A partial last line of metrics.jsonl is dropped with a warning by every reader and by
  ``resume=``, and the resumed run matches an uninterrupted one.
- Any number of SIGTERM/SIGINT while a run stops: one line, exit 130, summary "interrupted".
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from riskq.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def command(name: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """A console script of the installed package (``riskq-train``, ...), run to its end."""
    return subprocess.run(
        [str(BIN / name), *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def start(name: str, *args: str) -> subprocess.Popen:
    """A console script started in the background (stderr captured)."""
    return subprocess.Popen(
        [str(BIN / name), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, process: subprocess.Popen, *, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert path.exists(), process.stderr.read() if process.poll() is not None else "too slow"


# 5. Signals: the first one stops the run, every later one is ignored while it stops.


def test_repeated_signals_while_stopping_leave_one_line_and_an_interrupted_summary(tmp_path):
    run_dir = tmp_path / "run"
    process = start(
        "riskq-train",
        "env=macn",
        "t_max=10000000",
        "checkpoint_interval=200",
        "progress=false",
        f"hydra.run.dir={run_dir}",
    )
    checkpoint = run_dir / "checkpoints" / "latest.pt"
    wait_for(checkpoint, process)
    sent = 0
    while process.poll() is None and sent < 400:  # a burst while the run writes its summary
        with_signal = signal.SIGTERM if sent % 2 == 0 else signal.SIGINT
        try:
            process.send_signal(with_signal)
        except ProcessLookupError:
            break
        sent += 1
        time.sleep(0.002)
    _, err = process.communicate(timeout=120)
    assert sent > 1, "the run ended before a second signal"
    assert process.returncode == 130
    assert err.strip() == "riskq-train: interrupted"
    summary = json.loads((run_dir / "summary.json").read_text())
    saved = load_checkpoint(checkpoint)["counters"]["t_env"]
    assert summary["status"] == "interrupted" and summary["checkpoint_t_env"] == saved
    assert not (run_dir / ".riskq.lock").exists()
    assert not list(run_dir.rglob("*.tmp"))
