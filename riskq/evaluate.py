"""``riskq-eval``: evaluate a trained run greedily, optionally under another risk measure.

    riskq-eval results/runs/<...>/seed0_<time> --episodes 500 --risk cvar --risk-param 0.2

Loads ``config.yaml`` and ``checkpoints/latest.pt`` of a run directory (or a checkpoint file
inside one), plays greedy episodes and prints and saves the same statistics as training's
evaluation (``eval/return_mean``, CVaR/VaR of returns, env metrics, matrix-game optimum) to
``eval_<risk>.json`` in the run directory, e.g. ``eval_cvar_0.2.json``.

The acting measure: the run's own by default; ``--risk NAME`` alone takes NAME's default level
(``configs/risk/NAME.yaml``); ``--risk-param`` alone changes the level of the run's measure.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from omegaconf import OmegaConf

from riskq.checkpoint import (
    MISMATCH_ERRORS,
    CheckpointError,
    load_checkpoint,
    mismatch,
    resolve_checkpoint,
)
from riskq.cli_errors import UsageError, exit_with_error, is_reported
from riskq.config import RiskConfig, TrainConfig, compose_config
from riskq.experiment import EVAL_SEED_OFFSET, Experiment, build_experiment, evaluate
from riskq.labels import risk_label, risk_level
from riskq.matrix_report import matrix_summary
from riskq.risk import RISK_MEASURES

PROG = "riskq-eval"


def acting_risk(run_risk: RiskConfig, name: str | None, param: float | None) -> RiskConfig:
    """The measure to act under (see the module docstring), with its level in ``param``."""
    if name is None:
        return RiskConfig(
            name=run_risk.name, param=param if param is not None else risk_level(run_risk)
        )
    if name not in RISK_MEASURES:
        raise UsageError(
            f"--risk: unknown risk measure {name!r}; valid choices: {sorted(RISK_MEASURES)}"
        )
    if param is None:
        param = risk_level(compose_config([f"risk={name}"]).risk)  # configs/risk/<name>.yaml
    return RiskConfig(name=name, param=param)


def load_run(
    location: str | Path,
    *,
    episodes: int | None = None,
    risk_name: str | None = None,
    risk_param: float | None = None,
) -> tuple[TrainConfig, Experiment, Path]:
    """A run's config and an experiment holding its trained networks.

    ``episodes``, ``risk_name`` and ``risk_param`` replace the run's evaluation episodes and
    risk measure for action selection. Returns (config, experiment, run directory).
    """
    checkpoint = resolve_checkpoint(location)
    run_dir = checkpoint.parent.parent
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise CheckpointError(f"run config not found: {config_path}")
    schema = OmegaConf.structured(TrainConfig)
    cfg: TrainConfig = OmegaConf.to_object(OmegaConf.merge(schema, OmegaConf.load(config_path)))
    risk = acting_risk(cfg.risk, risk_name, risk_param)
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("run", help="run directory (or a checkpoint .pt file inside one)")
    parser.add_argument("--episodes", type=int, default=None, help="default: the run's")
    parser.add_argument(
        "--risk", default=None, help="risk measure for action selection (default: the run's)"
    )
    parser.add_argument(
        "--risk-param", type=float, default=None, help="its level (default: configs/risk/<risk>)"
    )
    parser.add_argument("--seed", type=int, default=None, help="evaluation seed")
    parser.add_argument("--output", default=None, help="JSON path (default: run dir)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        cfg, exp, run_dir = load_run(
            args.run, episodes=args.episodes, risk_name=args.risk, risk_param=args.risk_param
        )
    except Exception as error:
        if not is_reported(error):
            raise
        exit_with_error(PROG, error)
    seed = args.seed if args.seed is not None else cfg.seed + EVAL_SEED_OFFSET
    rollout, stats = evaluate(exp.eval_runner, seed=seed)
    result = {
        "run_dir": str(run_dir),
        "risk": exp.risk_fn.label,
        "risk_name": cfg.risk.name,
        "risk_param": cfg.risk.param,
        "episodes": cfg.eval_episodes,
        "seed": seed,
        **stats,
        **matrix_summary(exp.eval_env, rollout, exp.risk_fn),
    }
    name = f"eval_{risk_label(cfg.risk.name, cfg.risk.param, for_path=True)}.json"
    output = Path(args.output) if args.output else run_dir / name
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"saved {output}")


if __name__ == "__main__":
    main()
