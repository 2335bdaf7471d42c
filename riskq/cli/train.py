"""``riskq-train``: train one algorithm on one env under one risk measure (Hydra app).

    riskq-train algo=riskq env=macn risk=cvar risk.param=0.2 seed=3
    riskq-train -m seed=0,1,2 risk=neutral,cvar,wang

Each run writes into Hydra's run directory: ``config.yaml`` (resolved), ``overrides.yaml``,
``tb/`` (TensorBoard), ``metrics.jsonl``, ``checkpoints/latest.pt`` and ``summary.json`` (status
and final evaluation). This module composes the config, checks and locks the run directory and
calls the training loop (``riskq.run.trainer.train``). The rules that keep run directories safe
(locking, resume, clean-up of failed start-ups) live in ``riskq.run.run_dir``,
``riskq.run.resume`` and ``riskq.cli.created_dirs``; every error is one line (``riskq.cli.errors``).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from riskq.cli.compose import CONFIG_PATH, register_configs
from riskq.cli.created_dirs import remove_created_empty_dirs
from riskq.cli.errors import hydra_command, job_errors
from riskq.config import TrainConfig
from riskq.errors import UsageError
from riskq.run.checkpoint import load_checkpoint
from riskq.run.cluster import requeue_on_signal, requeued_resume
from riskq.run.experiment import build_experiment
from riskq.run.labels import canonical_risk, register_resolvers
from riskq.run.resume import (
    auto_resume,
    check_same_experiment,
    checkpoint_step,
    resume_dir,
    resumed_config,
)
from riskq.run.run_dir import RunLock, existing_run_files, run_status
from riskq.run.run_files import writing
from riskq.run.stopping import STOP
from riskq.run.tracking import start_tracking
from riskq.run.trainer import restore, train

register_configs()
register_resolvers()  # ${riskq_risk_dir:...} in configs/train.yaml's hydra.run.dir


def start(cfg: TrainConfig, run_dir: Path, state: dict | None, hydra_cfg) -> dict | None:
    """Checks that need the lock, then the run; None when a resumed run is already complete."""
    if state is None and existing_run_files(run_dir):
        raise UsageError(
            f"{run_dir} already holds a run ({', '.join(existing_run_files(run_dir))}); continue "
            f"it with resume={run_dir}, or choose another hydra.run.dir"
        )
    step = None if state is None else checkpoint_step(state, cfg.resume)
    if step is not None and step >= cfg.t_max and run_status(run_dir) == "complete":
        print(
            f"riskq-train: {run_dir} is already complete (env step {step} >= t_max "
            f"{cfg.t_max}); nothing to do",
            file=sys.stderr,
        )
        return None
    exp = build_experiment(cfg)  # validates names and arguments before anything is written
    if state is not None:
        restore(exp, state, cfg.resume)  # a checkpoint that does not fit fails before any write
    tracker = start_tracking(cfg, run_dir)  # W&B (logger.wandb): a failure is refused input
    with writing(run_dir / "config.yaml"):
        OmegaConf.save(OmegaConf.structured(cfg), run_dir / "config.yaml")
    if state is None:
        overrides = OmegaConf.create(list(hydra_cfg.overrides.task))
        with writing(run_dir / "overrides.yaml"):
            OmegaConf.save(overrides, run_dir / "overrides.yaml")
    return train(cfg, run_dir, exp, state=state, tracker=tracker)


def sweep_threads(threads: int, launcher: DictConfig) -> int:
    """Torch threads of one sweep job: ``threads`` capped at the cores each concurrent job has.

    Jobs that share cores must not each spin several threads (a multi-threaded op waits for the
    busiest core): the joblib launcher's ``n_jobs`` runs share ``os.cpu_count()`` cores, and
    submitit's ``cpus_per_task`` is the cores a job gets. The basic launcher runs one job at a time.
    """
    cores = os.cpu_count() or 1
    n_jobs = OmegaConf.select(launcher, "n_jobs", default=None)
    if n_jobs is not None and int(n_jobs) > 0:
        cores = max(1, cores // int(n_jobs))
    cpus = OmegaConf.select(launcher, "cpus_per_task", default=None)
    if cpus is not None and int(cpus) > 0:
        cores = min(cores, int(cpus))
    return max(1, min(threads, cores))


def train_from_config(raw: DictConfig) -> None:
    """One training run from its composed config.

    Nothing in the run directory is written before every check has passed.
    """
    hydra_cfg = HydraConfig.get()
    cfg: TrainConfig = OmegaConf.to_object(raw)
    cfg = replace(cfg, risk=canonical_risk(cfg.risk))  # config.yaml stores one level: param
    run_dir, state = Path(hydra_cfg.runtime.output_dir), None
    cfg = requeued_resume(cfg, run_dir)  # a requeued Slurm job continues its own run
    cfg = auto_resume(cfg, run_dir)  # resume=auto: continue the run there, if there is one
    if cfg.resume is not None:
        state = load_checkpoint(cfg.resume)  # read-only checks first
        run_dir = resume_dir(cfg, hydra_cfg)
        cfg = resumed_config(cfg, run_dir, list(hydra_cfg.overrides.task))
        check_same_experiment(cfg, run_dir)
    if hydra_cfg.mode == RunMode.MULTIRUN:  # parallel runs would garble one console
        cfg = replace(cfg, progress=False, threads=sweep_threads(cfg.threads, hydra_cfg.launcher))
    lock = RunLock(run_dir).acquire()
    try:
        summary = start(cfg, run_dir, state, hydra_cfg)
    finally:
        lock.release()
    if summary is not None:
        shown = {k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool))}
        print(json.dumps({"run_dir": str(run_dir), **shown}, indent=2))


@hydra.main(config_path=CONFIG_PATH, config_name="train", version_base="1.3")
def run(raw: DictConfig) -> None:
    """The task function that Hydra calls. SIGINT and SIGTERM stop the run (``riskq.run.stopping``):
    summary.json says ``interrupted`` and the last checkpoint stays, so ``resume=<run dir>``
    continues it; repeated signals while it stops are ignored. In a Slurm job the time-limit or
    preemption signal stops it for a requeue, after which it continues (``riskq.run.cluster``)."""
    STOP.install()
    with job_errors("riskq-train"), requeue_on_signal():
        train_from_config(raw)


# Console entry point: one-line errors (exit 2; 1 for a failed run), and removal of the
# directories this invocation created and left empty.
main = hydra_command("riskq-train", run, cleanup=remove_created_empty_dirs)


if __name__ == "__main__":
    main()
