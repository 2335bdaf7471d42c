"""A saved run as library objects: its config and an experiment holding its trained networks
(``load_run``), and its greedy evaluation (``evaluate_run``).

``riskq-eval`` (``riskq.cli.evaluate``) and the trained-model mode of ``riskq-rigm``
(``riskq.analysis.rigm_trained``) load runs here. A run is a directory holding ``config.yaml`` and
``checkpoints/latest.pt`` (or a checkpoint file inside one).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from riskq.config import RiskConfig, TrainConfig, load_train_config
from riskq.run.checkpoint import (
    MISMATCH_ERRORS,
    CheckpointError,
    load_checkpoint,
    mismatch,
    resolve_checkpoint,
)
from riskq.run.experiment import EVAL_SEED_OFFSET, Experiment, build_experiment, evaluate
from riskq.run.labels import canonical_risk
from riskq.run.matrix_report import matrix_summary


def read_run(location: str | Path) -> tuple[TrainConfig, Path, Path]:
    """(config, checkpoint file, run directory) of a run directory or a checkpoint inside one;
    a missing checkpoint or config raises CheckpointError."""
    checkpoint = resolve_checkpoint(location)
    run_dir = checkpoint.parent.parent
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise CheckpointError(f"run config not found: {config_path}")
    return load_train_config(config_path), checkpoint, run_dir


def load_run(
    location: str | Path, *, episodes: int | None = None, risk: RiskConfig | None = None
) -> tuple[TrainConfig, Experiment, Path]:
    """A run's config and an experiment holding its trained networks.

    ``episodes`` and ``risk`` replace the run's evaluation episodes and its risk measure for
    action selection (default: the run's own, with its level in ``param``).
    Returns (config, experiment, run directory).
    """
    cfg, checkpoint, run_dir = read_run(location)
    risk = canonical_risk(cfg.risk if risk is None else risk)
    episodes = episodes if episodes is not None else cfg.eval_episodes
    cfg = replace(cfg, resume=None, progress=False, risk=risk, eval_episodes=episodes)
    exp = build_experiment(cfg, with_buffer=False)
    try:  # the networks only: evaluation needs no optimiser or target networks
        learner_state = load_checkpoint(checkpoint)["learner"]
        exp.learner.agent.load_state_dict(learner_state["agent"])
        exp.learner.mixer.load_state_dict(learner_state["mixer"])
    except MISMATCH_ERRORS as error:
        if isinstance(error, CheckpointError):
            raise
        raise mismatch(error, checkpoint) from None
    return cfg, exp, run_dir


def evaluate_run(cfg: TrainConfig, exp: Experiment, run_dir: Path, *, seed: int | None) -> dict:
    """Greedy episodes of a loaded run (``seed`` None: the run's evaluation seed): the same
    statistics as training's evaluation (``eval/return_mean``, CVaR/VaR of returns, env
    metrics, matrix-game optimum), with the run, measure, episodes and seed."""
    seed = seed if seed is not None else cfg.seed + EVAL_SEED_OFFSET
    rollout, stats = evaluate(exp.eval_runner, seed=seed)
    return {
        "run_dir": str(run_dir),
        "risk": exp.risk_fn.label,
        "risk_name": cfg.risk.name,
        "risk_param": cfg.risk.param,
        "episodes": cfg.eval_episodes,
        "seed": seed,
        **stats,
        **matrix_summary(exp.eval_env, rollout, exp.risk_fn),
    }
