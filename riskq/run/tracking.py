"""Optional experiment tracking: every scalar a run logs (``riskq.run.logger``) goes to Weights &
Biases too, at the same env step (extra: wandb)::

    riskq-train logger.wandb=true logger.project=riskq logger.group=macn-cvar logger.tags=[macn]

The W&B run's id comes from the run directory (its name, plus a short hash of its full path:
a sweep's run folders such as ``0_seed-0`` repeat from one sweep to the next), and W&B resumes
the run with that id, so a run continued with ``resume=`` or requeued on a cluster continues
the same W&B run. Its display name is the run directory's name and its config the run's.
W&B's own settings come from its environment variables: ``WANDB_MODE=offline`` keeps the run
under ``<run dir>/wandb/`` for a later ``wandb sync`` (compute nodes without internet access),
``WANDB_API_KEY`` logs in. Without ``logger.wandb`` nothing here is imported.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path

from riskq.config import TrainConfig
from riskq.errors import UsageError

RESERVED = ":;,#?/'"  # characters a W&B run id may not hold


def wandb_run_id(run_dir: Path) -> str:
    """The W&B run id of a run directory: its name (W&B's reserved characters as ``-``) and
    eight hex digits of a hash of its resolved path."""
    name = "".join("-" if char in RESERVED else char for char in run_dir.name)
    digest = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:8]
    return f"{name}-{digest}"


class WandbTracker:
    """A W&B run that receives the run's scalars; ``close`` finishes it."""

    def __init__(self, cfg: TrainConfig, run_dir: Path) -> None:
        try:
            import wandb
        except ImportError:
            raise UsageError(
                "logger.wandb=true needs the wandb extra: pip install -e '.[wandb]' "
                "-c constraints.txt"
            ) from None
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.run = wandb.init(
                project=cfg.logger.project,
                entity=cfg.logger.entity,
                group=cfg.logger.group,
                tags=list(cfg.logger.tags),
                id=wandb_run_id(run_dir),
                name=run_dir.name,
                resume="allow",
                dir=str(run_dir),
                config=asdict(cfg),
                settings=wandb.Settings(console="off", quiet=True),
            )
        except Exception as error:  # no network, no API key, a project it may not write to
            raise UsageError(
                f"logger.wandb: W&B could not start the run ({' '.join(str(error).split())}); "
                f"WANDB_MODE=offline logs without a network"
            ) from None

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log(scalars, step=step)

    def close(self, *, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


def start_tracking(cfg: TrainConfig, run_dir: Path) -> WandbTracker | None:
    """The run's tracker (``logger.wandb``), or None."""
    return WandbTracker(cfg, run_dir) if cfg.logger.wandb else None
