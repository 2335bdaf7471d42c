"""``riskq-train``: train one algorithm on one env under one risk measure (Hydra app).

    riskq-train algo=riskq env=macn risk=cvar risk.param=0.2 seed=3
    riskq-train -m seed=0,1,2 risk=neutral,cvar,wang

Each run writes into Hydra's run directory: ``config.yaml`` (resolved), ``tb/`` (TensorBoard),
``metrics.jsonl``, ``checkpoints/latest.pt`` and ``summary.json`` (the final evaluation).
"""

from __future__ import annotations

import json
import shutil
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

from riskq.checkpoint import CHECKPOINT_DIR, LATEST, load_checkpoint, save_checkpoint
from riskq.config import TrainConfig, register_configs
from riskq.experiment import EVAL_SEED_OFFSET, Experiment, build_experiment, evaluate
from riskq.logger import RunLogger
from riskq.matrix_report import matrix_summary
from riskq.runner import Rollout, linear_epsilon

register_configs()


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
    """Learner updates owed for ``n_episodes`` new episodes (algo.updates_per_episode each)."""
    counters.update_credit += cfg.algo.updates_per_episode * n_episodes
    metrics: dict[str, float] = {}
    while counters.update_credit >= 1.0 and exp.buffer.can_sample(cfg.algo.batch_size):
        counters.update_credit -= 1.0
        batch = exp.buffer.sample(cfg.algo.batch_size, exp.sample_rng)
        metrics = exp.learner.update(batch, episodes_seen=counters.episodes)
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


def restore(exp: Experiment, state: dict) -> Counters:
    exp.learner.load_state_dict(state["learner"])
    exp.buffer.load_state_dict(state["buffer"])
    torch.set_rng_state(state["rng"]["torch"])
    exp.env.set_rng_state(state["rng"]["env"])
    exp.runner.rng.bit_generator.state = state["rng"]["runner"]
    exp.sample_rng.bit_generator.state = state["rng"]["sample"]
    return Counters(**state["counters"])


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


def train(cfg: TrainConfig, run_dir: Path, exp: Experiment) -> dict:
    """The training loop; returns the final evaluation statistics (also in summary.json)."""
    counters = Counters()
    if cfg.resume is not None:
        counters = restore(exp, load_checkpoint(run_dir))
    logger = RunLogger(
        run_dir, total_steps=cfg.t_max, start_step=counters.t_env, progress=cfg.progress
    )
    eval_seed, latest, clock = cfg.seed + EVAL_SEED_OFFSET, {}, Clock(counters.t_env)
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
            logger.advance(counters.t_env, {"eval_return": latest.get("eval/return_mean", np.nan)})
        final_rollout, final = evaluate(exp.eval_runner, seed=eval_seed)
        logger.log(counters.t_env, final, final=True)
        save_checkpoint(checkpoint_path, checkpoint_state(exp, counters))
    finally:
        logger.close()
    summary = {
        "t_env": counters.t_env,
        "episodes": counters.episodes,
        "updates": exp.learner.updates,
        **final,
        **matrix_summary(exp.eval_env, final_rollout, exp.risk_fn),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def fail(message: str, *, fresh_dir: Path | None = None) -> None:
    """One-line error, exit code 2; remove a run directory that only Hydra has written to."""
    if (
        fresh_dir is not None
        and fresh_dir.is_dir()
        and {p.name for p in fresh_dir.iterdir()} <= {".hydra"}
    ):
        shutil.rmtree(fresh_dir)
    print(f"riskq-train: error: {message}", file=sys.stderr)
    sys.exit(2)


def prepare_run_dir(cfg: TrainConfig, hydra_dir: Path) -> Path:
    """The directory this run writes to: Hydra's, or the resumed run's."""
    if cfg.resume is None:
        return hydra_dir
    run_dir = Path(cfg.resume)
    run_dir = run_dir.parent.parent if run_dir.suffix == ".pt" else run_dir
    load_checkpoint(run_dir)  # fail early on a missing or unreadable checkpoint
    if hydra_dir.resolve() != run_dir.resolve():
        shutil.rmtree(hydra_dir, ignore_errors=True)
    return run_dir


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(raw: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    hydra_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        cfg: TrainConfig = OmegaConf.to_object(raw)
        if hydra_cfg.mode == RunMode.MULTIRUN:  # parallel runs would garble one console
            cfg = replace(cfg, progress=False)
        run_dir = prepare_run_dir(cfg, hydra_dir)
        exp = build_experiment(cfg)  # validates names and arguments before anything is written
    except (ValueError, ImportError) as error:
        fail(str(error), fresh_dir=hydra_dir)
    OmegaConf.save(raw, run_dir / "config.yaml", resolve=True)
    summary = train(cfg, run_dir, exp)
    shown = {k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool))}
    print(json.dumps({"run_dir": str(run_dir), **shown}, indent=2))


if __name__ == "__main__":
    main()
