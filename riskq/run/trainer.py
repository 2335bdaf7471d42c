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

from riskq.config import AlgoConfig, TrainConfig
from riskq.errors import RunFailed
from riskq.run.checkpoint import (
    CHECKPOINT_DIR,
    LATEST,
    MISMATCH_ERRORS,
    load_checkpoint,
    mismatch,
    save_checkpoint,
)
from riskq.run.cluster import PREEMPTION, Preempted
from riskq.run.experiment import EVAL_SEED_OFFSET, Experiment, evaluate, rollout_statistics
from riskq.run.finite import non_finite
from riskq.run.logger import METRICS_FILE, RunLogger
from riskq.run.matrix_report import initial_greedy_report, matrix_summary
from riskq.run.run_dir import SUMMARY_FILE
from riskq.run.run_files import TEMPORARY_SUFFIX, RunFileError, atomic_file, remove_quietly, writing
from riskq.run.runner import Rollout, linear_schedule
from riskq.run.stopping import STOP
from riskq.run.tracking import WandbTracker, start_tracking


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


def check_complete(state: dict) -> None:
    """Raise ValueError for a checkpoint that would restore only in part: counters other than
    Counters' fields, or no optimiser state although updates ran."""
    saved, expected = set(state["counters"]), set(Counters.__dataclass_fields__)
    if saved != expected:
        raise ValueError(f"counters {sorted(saved)} differ from {sorted(expected)}")
    learner = state["learner"]
    if learner["updates"] > 0 and not learner["optimiser"]["state"]:
        raise ValueError(f"no optimiser state after {learner['updates']} updates")


def restore(exp: Experiment, state: dict, location: str | Path) -> Counters:
    """Load the checkpoint ``state`` (read from ``location``) into ``exp``, all of it; one that
    does not fit raises CheckpointError."""
    try:
        check_complete(state)
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


class Progress:
    """What summary.json says about a run that has not completed: its status, env steps so far
    and the env step of its last checkpoint (``checkpoint_t_env``, what ``resume=`` continues
    from; None before the first)."""

    def __init__(self, run_dir: Path, counters: Counters, *, t_max: int, saved: int | None):
        self.run_dir, self.counters, self.t_max, self.saved = run_dir, counters, t_max, saved
        self.checkpoint_path = run_dir / CHECKPOINT_DIR / LATEST

    def write(self, status: str, **details) -> None:
        """Replace summary.json with this status (and ``details``)."""
        summary = {"status": status, "t_env": self.counters.t_env, "t_max": self.t_max}
        write_summary(self.run_dir, {**summary, "checkpoint_t_env": self.saved, **details})

    def checkpoint(self, exp: Experiment) -> None:
        """Save a checkpoint, then say so in summary.json: a run killed from here on still says
        where resume= continues it."""
        save_checkpoint(self.checkpoint_path, checkpoint_state(exp, self.counters))
        self.saved = self.counters.t_env
        self.write("running")

    def failed(self, error: RunFailed, *, updates: int) -> RunFailed:
        """The one-line error of a failed run, after marking summary.json ``failed`` (if it
        can still be written): what failed, the checkpoint kept, what the summary says."""
        kept = "no checkpoint was written before"
        if self.saved is not None:
            kept = f"{self.checkpoint_path} keeps env step {self.saved}"
        parts = [str(error), kept]
        try:
            self.write("failed", error=str(error), updates=updates)
            parts.append(f"{self.run_dir / SUMMARY_FILE} marks the run failed")
        except RunFileError as unwritable:
            parts.append(f"{unwritable.path} could not be marked failed ({unwritable.reason})")
        if isinstance(error, RunFileError) and self.saved is not None:
            parts.append(f"once the file can be written, resume={self.run_dir} continues it")
        return RunFailed("; ".join(parts))


def remove_stale_temporaries(run_dir: Path) -> None:
    """The temporary files of a run killed while it wrote them (``atomic_file``): garbage that
    would hold disk space. Only this run writes them, under its lock."""
    for name in (f"{CHECKPOINT_DIR}/{LATEST}", SUMMARY_FILE, METRICS_FILE):
        remove_quietly(run_dir / (name + TEMPORARY_SUFFIX))


def train_loop(exp: Experiment, cfg: TrainConfig, progress: Progress, logger: RunLogger):
    """Iterations until t_max with their logs, evaluations and checkpoints, then the final
    evaluation and checkpoint. Returns (final rollout, final statistics)."""
    counters, eval_seed = progress.counters, cfg.seed + EVAL_SEED_OFFSET
    latest, clock = {}, Clock(counters.t_env)
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
            progress.checkpoint(exp)
        logger.advance(counters.t_env, {"eval_return": latest.get("eval/return_mean", np.nan)})
        STOP.raise_if_requested()  # a stop signal whose KeyboardInterrupt a gc callback swallowed
        if PREEMPTION.requested:  # the job's time limit or preemption (riskq.run.cluster)
            if not exp.runner.in_flight:  # a checkpoint here keeps the continuation exact
                progress.checkpoint(exp)
            raise Preempted(f"stopped at env step {counters.t_env} for a requeue")
    final_rollout, final = evaluate(exp.eval_runner, seed=eval_seed)
    logger.log(counters.t_env, final, final=True)
    save_checkpoint(progress.checkpoint_path, checkpoint_state(exp, counters))
    progress.saved = counters.t_env
    return final_rollout, final


def train(
    cfg: TrainConfig,
    run_dir: Path,
    exp: Experiment,
    *,
    state: dict | None = None,
    tracker: WandbTracker | None = None,
) -> dict:
    """The training loop; returns the final evaluation statistics (also in summary.json).

    ``state``: the checkpoint to continue (default: the run's own when ``cfg.resume`` is set);
    ``tracker``: the run's W&B run when already started (default: started here when
    ``logger.wandb`` is set; ``riskq.run.tracking``).
    summary.json says ``running`` until the run is ``complete``, or ``failed`` (RunFailed:
    non-finite values, or a run file that could not be written: RunFileError; or any other
    error, which then propagates as it is), or ``interrupted`` (Ctrl-C, SIGTERM:
    ``riskq.run.stopping``).
    """
    initial = initial_greedy_report(exp.eval_runner, seed=cfg.seed + EVAL_SEED_OFFSET)
    if state is None and cfg.resume is not None:
        state = load_checkpoint(run_dir)
    counters = Counters() if state is None else restore(exp, state, run_dir)
    saved = None if state is None else counters.t_env  # of the last good checkpoint
    progress = Progress(run_dir, counters, t_max=cfg.t_max, saved=saved)
    logger = None
    try:
        with writing(run_dir):
            run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(run_dir)
        logger = RunLogger(  # reads the logs a resumed run continues before anything is written
            run_dir,
            total_steps=cfg.t_max,
            start_step=counters.t_env,
            progress=cfg.progress,
            tracker=tracker or start_tracking(cfg, run_dir),
        )
        progress.write("running")
        final_rollout, final = train_loop(exp, cfg, progress, logger)
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
    except RunFailed as error:
        raise progress.failed(error, updates=exp.learner.updates) from None
    except KeyboardInterrupt:
        progress.write("interrupted")
        raise
    except Exception as error:  # a fault nothing above foresaw: the run says so, the error goes on
        progress.failed(RunFailed(f"{type(error).__name__}: {error}"), updates=exp.learner.updates)
        raise
    finally:
        if logger is not None:
            logger.close(quiet=True)
