"""Run logging: TensorBoard scalars, a ``metrics.jsonl`` copy of them, and console progress.

Scalar names are fixed and documented in the README ("Logged metrics"); the x-axis is always
the number of environment steps.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

TB_DIR = "tb"
METRICS_FILE = "metrics.jsonl"


def trim_metrics(path: Path, *, last_step: int) -> list[dict]:
    """Drop what a resumed run will log again: lines after ``last_step``, and the final
    evaluation of the interrupted run (a run continued to a later t_max does not end there).
    Returns the kept records logged at ``last_step``."""
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines()]
    kept = [
        r
        for r in records
        if r["step"] < last_step or (r["step"] == last_step and not r.get("final"))
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return [r for r in kept if r["step"] == last_step]


class RunLogger:
    """Writes every scalar to TensorBoard and ``metrics.jsonl`` and drives the progress bar.

    A run resumed at ``start_step`` keeps exactly what ``metrics.jsonl`` keeps: TensorBoard
    forgets every event from ``start_step`` on (``purge_step``) and gets the kept records of
    ``start_step`` again, so a resumed run's final evaluation never appears twice.
    """

    def __init__(
        self, run_dir: Path, *, total_steps: int, start_step: int = 0, progress: bool = True
    ) -> None:
        self.run_dir = run_dir
        purge = start_step if start_step > 0 else None
        replay = trim_metrics(run_dir / METRICS_FILE, last_step=start_step if purge else -1)
        self.writer = SummaryWriter(log_dir=str(run_dir / TB_DIR), purge_step=purge)
        for record in replay:
            for name, value in record.items():
                if name not in ("step", "final"):
                    self.writer.add_scalar(name, math.nan if value is None else value, start_step)
        self.metrics_file = (run_dir / METRICS_FILE).open("a")
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
        for name, value in finite.items():
            self.writer.add_scalar(name, value, global_step=step)
        record = {"step": step, **{k: (v if math.isfinite(v) else None) for k, v in finite.items()}}
        if final:
            record["final"] = True
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

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
        self.metrics_file.close()
        self.bar.close()
