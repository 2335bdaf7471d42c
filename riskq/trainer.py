"""The training loop as library code: counters, one iteration, the updates it pays for,
checkpoint state, and ``train``, which runs a whole run into a run directory.

``riskq-train`` (``riskq.cli.train``) composes the config, checks and locks the run directory,
then calls ``train``; scripts and tests call it directly::

    cfg = compose_config(["env=macn", "t_max=2000"])
    summary = train(cfg, Path("runs/macn"), build_experiment(cfg))

A run directory holds ``tb/`` (TensorBoard), ``metrics.jsonl``, ``checkpoints/latest.pt`` and
``summary.json`` (status and final evaluation). No Hydra, no argument parsing, no exit: a run
that fails raises ``RunFailed`` (``riskq.errors``) after marking its summary failed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from riskq.checkpoint import (
    CHECKPOINT_DIR,
    LATEST,
    MISMATCH_ERRORS,
    atomic_file,
    load_checkpoint,
    mismatch,
    save_checkpoint,
)
from riskq.config import AlgoConfig, TrainConfig
from riskq.errors import RunFailed
from riskq.experiment import EVAL_SEED_OFFSET, Experiment, evaluate, rollout_statistics
from riskq.finite import non_finite
from riskq.logger import RunLogger
from riskq.matrix_report import initial_greedy_report, matrix_summary
from riskq.run_dir import SUMMARY_FILE
from riskq.runner import Rollout, linear_schedule


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
    """The training scalars of one iteration: the rollout's return, length and env metrics,
    epsilon, psi of the chosen actions and the last update's learner metrics."""
    extra = {"epsilon": epsilon, "psi_chosen": rollout.psi_chosen, **metrics}
    return rollout_statistics(rollout, "train", return_risks=(), extra=extra)


def learning_rate(algo: AlgoConfig, t_env: int, t_max: int) -> float:
    """The learning rate after ``t_env`` env steps: ``algo.lr``, or annealed linearly to
    ``algo.lr_finish`` over ``algo.lr_anneal_steps`` (default ``t_max``) when that is set."""
    if algo.lr_finish is None:
        return algo.lr
    steps = t_max if algo.lr_anneal_steps is None else algo.lr_anneal_steps
    return linear_schedule(t_env, start=algo.lr, finish=algo.lr_finish, anneal_steps=steps)


def run_updates(exp: Experiment, cfg: TrainConfig, counters: Counters, n_episodes: int) -> dict:
    """Learner updates owed for ``n_episodes`` new episodes (algo.updates_per_episode each), at
    the learning rate of ``counters.t_env`` (a function of the env step alone, so a resumed run
    takes the same steps).

    Raises RunFailed at the first update whose loss, gradient norm or parameters are not finite.
    """
    counters.update_credit += cfg.algo.updates_per_episode * n_episodes
    metrics: dict[str, float] = {}
    lr = learning_rate(cfg.algo, counters.t_env, cfg.t_max)
    exp.learner.set_learning_rate(lr)
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
    return {**metrics, "lr": lr} if metrics else metrics


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


def iteration(
    exp: Experiment, cfg: TrainConfig, counters: Counters, *, finish: bool = False
) -> tuple[Rollout, dict, float]:
    """Collect episodes (one per env copy; streaming: the next E that end, or with ``finish``
    every one in flight), store them, and run the updates they pay for."""
    epsilon = linear_schedule(
        counters.t_env,
        start=cfg.algo.epsilon_start,
        finish=cfg.algo.epsilon_finish,
        anneal_steps=cfg.algo.epsilon_anneal_steps,
    )
    rollout = exp.runner.collect(epsilon=epsilon, finish=finish)
    episodes = len(rollout.returns)
    if episodes:
        exp.buffer.add(rollout.batch)
    counters.t_env += rollout.steps
    counters.episodes += episodes
    return rollout, run_updates(exp, cfg, counters, episodes), epsilon


def write_summary(run_dir: Path, summary: dict) -> None:
    """Replace ``summary.json`` atomically, so a run killed while writing it keeps the previous
    summary whole."""
    with atomic_file(run_dir / SUMMARY_FILE, "w") as handle:
        handle.write(json.dumps(summary, indent=2) + "\n")


def progress_summary(status: str, counters: Counters, t_max: int, saved: int | None) -> dict:
    """summary.json of a run that has not completed: its status, env steps so far and the
    env step of its last checkpoint (``checkpoint_t_env``, what ``resume=`` continues from;
    None before the first)."""
    return {"status": status, "t_env": counters.t_env, "t_max": t_max, "checkpoint_t_env": saved}


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
    write_summary(run_dir, progress_summary("running", counters, cfg.t_max, saved_step))
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
                if exp.runner.in_flight:  # a checkpoint holds no half-played episode
                    iteration(exp, cfg, counters, finish=True)
                save_checkpoint(checkpoint_path, checkpoint_state(exp, counters))
                saved_step = counters.t_env
                # a run killed from here on still says where resume= continues it
                write_summary(run_dir, progress_summary("running", counters, cfg.t_max, saved_step))
            logger.advance(counters.t_env, {"eval_return": latest.get("eval/return_mean", np.nan)})
        final_rollout, final = evaluate(exp.eval_runner, seed=eval_seed)
        logger.log(counters.t_env, final, final=True)
        save_checkpoint(checkpoint_path, checkpoint_state(exp, counters))
    except RunFailed as error:
        failed = progress_summary("failed", counters, cfg.t_max, saved_step)
        write_summary(run_dir, {**failed, "error": str(error), "updates": exp.learner.updates})
        kept = "no checkpoint was written before"
        if saved_step is not None:
            kept = f"{checkpoint_path} keeps env step {saved_step}"
        raise RunFailed(f"{error}; {kept}; {run_dir / SUMMARY_FILE} marks the run failed") from None
    except KeyboardInterrupt:
        write_summary(run_dir, progress_summary("interrupted", counters, cfg.t_max, saved_step))
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
