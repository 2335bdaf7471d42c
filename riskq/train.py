"""``riskq-train``: train one algorithm on one env under one risk measure (Hydra app).

    riskq-train algo=riskq env=macn risk=cvar risk.param=0.2 seed=3
    riskq-train -m seed=0,1,2 risk=neutral,cvar,wang

Each run writes into Hydra's run directory: ``config.yaml`` (resolved), ``overrides.yaml``,
``tb/`` (TensorBoard), ``metrics.jsonl``, ``checkpoints/latest.pt`` and ``summary.json`` (status
and final evaluation). The rules that keep run directories safe (locking, resume, clean-up of
failed start-ups) live in ``riskq.run_dir``; every error is one line (``riskq.cli_errors``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from riskq.checkpoint import (
    CHECKPOINT_DIR,
    LATEST,
    MISMATCH_ERRORS,
    load_checkpoint,
    mismatch,
    save_checkpoint,
)
from riskq.cli_errors import RunFailed, UsageError, hydra_command, job_errors
from riskq.config import CONFIG_PATH, TrainConfig, register_configs
from riskq.experiment import EVAL_SEED_OFFSET, Experiment, build_experiment, evaluate
from riskq.finite import non_finite
from riskq.labels import canonical_risk, register_resolvers
from riskq.logger import RunLogger
from riskq.matrix_report import initial_greedy_report, matrix_summary
from riskq.resume import check_same_experiment, checkpoint_step, resume_dir
from riskq.run_dir import (
    SUMMARY_FILE,
    RunLock,
    existing_run_files,
    remove_created_empty_dirs,
    run_status,
)
from riskq.runner import Rollout, linear_epsilon

register_configs()
register_resolvers()  # ${riskq_risk_dir:...} in configs/train.yaml's hydra.run.dir


@dataclass
class Counters:
    """Progress of a run, saved in checkpoints."""

    t_env: int = 0
    episodes: int = 0
    update_credit: float = 0.0
    next_log: int = 0
    next_eval: int = 0
    next_checkpoint: int = 0


def train_scalars(rollout: Rollout, metrics: dict[str, float], epsilon: float) -> dict:
    scalars = {
        "train/return_mean": float(rollout.returns.mean()),
        "train/episode_length": float(rollout.lengths.mean()),
        "train/epsilon": epsilon,
        "train/psi_chosen": rollout.psi_chosen,
        **{f"train/{name}": value for name, value in metrics.items()},
    }
    for name, values in rollout.env_metrics.items():
        scalars[f"train/{name}"] = float(np.mean(values))
    return scalars


def run_updates(exp: Experiment, cfg: TrainConfig, counters: Counters, n_episodes: int) -> dict:
    """Learner updates owed for ``n_episodes`` new episodes (algo.updates_per_episode each).

    Raises RunFailed at the first update whose loss, gradient norm or parameters are not finite.
    """
    counters.update_credit += cfg.algo.updates_per_episode * n_episodes
    metrics: dict[str, float] = {}
    networks = {"agent": exp.learner.agent, "mixer": exp.learner.mixer}
    while counters.update_credit >= 1.0 and exp.buffer.can_sample(cfg.algo.batch_size):
        counters.update_credit -= 1.0
        batch = exp.buffer.sample(cfg.algo.batch_size, exp.sample_rng)
        metrics = exp.learner.update(batch, episodes_seen=counters.episodes)
        quantity = non_finite(metrics, networks, flat_params=exp.learner.flat_params)
        if quantity is not None:
            raise RunFailed(
                f"non-finite {quantity} at update {exp.learner.updates} (env step {counters.t_env})"
            )
    return metrics


def checkpoint_state(exp: Experiment, counters: Counters) -> dict:
    return {
        "learner": exp.learner.state_dict(),
        "buffer": exp.buffer.state_dict(),
        "counters": counters.__dict__.copy(),
        "rng": {
            "torch": torch.get_rng_state(),
            "env": exp.env.rng_state(),
            "runner": exp.runner.rng.bit_generator.state,
            "sample": exp.sample_rng.bit_generator.state,
        },
    }


def restore(exp: Experiment, state: dict, location: str | Path) -> Counters:
    """Load the checkpoint ``state`` (read from ``location``) into ``exp``; one that does not
    fit raises CheckpointError."""
    try:
        exp.learner.load_state_dict(state["learner"])
        exp.buffer.load_state_dict(state["buffer"])
        torch.set_rng_state(state["rng"]["torch"])
        exp.env.set_rng_state(state["rng"]["env"])
        exp.runner.rng.bit_generator.state = state["rng"]["runner"]
        exp.sample_rng.bit_generator.state = state["rng"]["sample"]
        return Counters(**state["counters"])
    except MISMATCH_ERRORS as error:
        raise mismatch(error, location) from None


class Clock:
    """Env steps per second between two log points."""

    def __init__(self, t_env: int) -> None:
        self.time, self.t_env = time.perf_counter(), t_env

    def rate(self, t_env: int) -> float:
        now = time.perf_counter()
        rate = (t_env - self.t_env) / max(now - self.time, 1e-9)
        self.time, self.t_env = now, t_env
        return rate


def iteration(exp: Experiment, cfg: TrainConfig, counters: Counters) -> tuple[Rollout, dict, float]:
    """Collect one episode per env copy, store them, and run the updates they pay for."""
    epsilon = linear_epsilon(
        counters.t_env,
        start=cfg.algo.epsilon_start,
        finish=cfg.algo.epsilon_finish,
        anneal_steps=cfg.algo.epsilon_anneal_steps,
    )
    rollout = exp.runner.collect(epsilon=epsilon)
    exp.buffer.add(rollout.batch)
    counters.t_env += rollout.steps
    counters.episodes += exp.env.num_envs
    return rollout, run_updates(exp, cfg, counters, exp.env.num_envs), epsilon


def write_summary(run_dir: Path, summary: dict) -> None:
    (run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")


def train(cfg: TrainConfig, run_dir: Path, exp: Experiment, *, state: dict | None = None) -> dict:
    """The training loop; returns the final evaluation statistics (also in summary.json).

    ``state``: the checkpoint to continue (default: the run's own when ``cfg.resume`` is set).
    summary.json says ``running`` until the run is ``complete`` (or ``failed``: non-finite
    values, RunFailed; ``interrupted``: Ctrl-C).
    """
    eval_seed = cfg.seed + EVAL_SEED_OFFSET
    initial = initial_greedy_report(exp.eval_runner, seed=eval_seed)  # before restore: untrained
    if state is None and cfg.resume is not None:
        state = load_checkpoint(run_dir)
    counters = Counters() if state is None else restore(exp, state, run_dir)
    saved_step = None if state is None else counters.t_env  # of the last good checkpoint
    run_dir.mkdir(parents=True, exist_ok=True)
    write_summary(run_dir, {"status": "running", "t_env": counters.t_env, "t_max": cfg.t_max})
    logger = RunLogger(
        run_dir, total_steps=cfg.t_max, start_step=counters.t_env, progress=cfg.progress
    )
    latest, clock = {}, Clock(counters.t_env)
    checkpoint_path = run_dir / CHECKPOINT_DIR / LATEST
    try:
        while counters.t_env < cfg.t_max:
            rollout, metrics, epsilon = iteration(exp, cfg, counters)
            if counters.t_env >= counters.next_log:
                counters.next_log += cfg.log_interval
                scalars = train_scalars(rollout, metrics, epsilon)
                logger.log(
                    counters.t_env, {**scalars, "train/env_steps_per_s": clock.rate(counters.t_env)}
                )
            if counters.t_env >= counters.next_eval:
                counters.next_eval += cfg.eval_interval
                latest = evaluate(exp.eval_runner, seed=eval_seed)[1]
                logger.log(counters.t_env, latest)
            if counters.t_env >= counters.next_checkpoint:
                counters.next_checkpoint += cfg.checkpoint_interval
                save_checkpoint(checkpoint_path, checkpoint_state(exp, counters))
                saved_step = counters.t_env
            logger.advance(counters.t_env, {"eval_return": latest.get("eval/return_mean", np.nan)})
        final_rollout, final = evaluate(exp.eval_runner, seed=eval_seed)
        logger.log(counters.t_env, final, final=True)
        save_checkpoint(checkpoint_path, checkpoint_state(exp, counters))
    except RunFailed as error:
        progress = {"t_env": counters.t_env, "t_max": cfg.t_max, "updates": exp.learner.updates}
        write_summary(run_dir, {"status": "failed", "error": str(error), **progress})
        kept = "no checkpoint was written before"
        if saved_step is not None:
            kept = f"{checkpoint_path} keeps env step {saved_step}"
        raise RunFailed(f"{error}; {kept}; {run_dir / SUMMARY_FILE} marks the run failed") from None
    except KeyboardInterrupt:
        write_summary(
            run_dir, {"status": "interrupted", "t_env": counters.t_env, "t_max": cfg.t_max}
        )
        raise
    finally:
        logger.close()
    summary = {
        "status": "complete",
        "t_env": counters.t_env,
        "t_max": cfg.t_max,
        "episodes": counters.episodes,
        "updates": exp.learner.updates,
        **final,
        **initial,
        **matrix_summary(exp.eval_env, final_rollout, exp.risk_fn),
    }
    write_summary(run_dir, summary)
    return summary


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
    OmegaConf.save(OmegaConf.structured(cfg), run_dir / "config.yaml")
    if state is None:
        OmegaConf.save(OmegaConf.create(list(hydra_cfg.overrides.task)), run_dir / "overrides.yaml")
    return train(cfg, run_dir, exp, state=state)


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
    if hydra_cfg.mode == RunMode.MULTIRUN:  # parallel runs would garble one console
        cfg = replace(cfg, progress=False, threads=sweep_threads(cfg.threads, hydra_cfg.launcher))
    run_dir, state = Path(hydra_cfg.runtime.output_dir), None
    if cfg.resume is not None:
        state = load_checkpoint(cfg.resume)  # read-only checks first
        run_dir = resume_dir(cfg, hydra_cfg)
        check_same_experiment(cfg, run_dir)
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
    """The task function that Hydra calls."""
    with job_errors("riskq-train"):
        train_from_config(raw)


# Console entry point: one-line errors (exit 2; 1 for a failed run), and removal of the
# directories this invocation created and left empty.
main = hydra_command("riskq-train", run, cleanup=remove_created_empty_dirs)


if __name__ == "__main__":
    main()
