"""``riskq-eval``: evaluate a trained run greedily, optionally under another risk measure.

    riskq-eval results/runs/<...>/seed0_<time> --episodes 500 --risk cvar --risk-param 0.2

Loads ``config.yaml`` and ``checkpoints/latest.pt`` of a run directory (or a checkpoint file
inside one), plays greedy episodes and prints and saves the same statistics as training's
evaluation (``eval/return_mean``, CVaR/VaR of returns, env metrics, matrix-game optimum).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from omegaconf import OmegaConf

from riskq.checkpoint import CheckpointError, load_checkpoint, resolve_checkpoint
from riskq.config import RiskConfig, TrainConfig
from riskq.experiment import EVAL_SEED_OFFSET, Experiment, build_experiment, evaluate
from riskq.matrix_report import matrix_summary


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
    risk = RiskConfig(
        name=risk_name or cfg.risk.name,
        param=risk_param if risk_param is not None else cfg.risk.level(),
    )
    episodes = episodes if episodes is not None else cfg.eval_episodes
    cfg = replace(cfg, resume=None, progress=False, risk=risk, eval_episodes=episodes)
    exp = build_experiment(cfg, with_buffer=False)
    exp.learner.load_state_dict(load_checkpoint(checkpoint)["learner"])
    return cfg, exp, run_dir


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="riskq-eval", description=__doc__.split("\n")[0])
    parser.add_argument("run", help="run directory (or a checkpoint .pt file inside one)")
    parser.add_argument("--episodes", type=int, default=None, help="default: the run's")
    parser.add_argument("--risk", default=None, help="risk measure for action selection")
    parser.add_argument("--risk-param", type=float, default=None, help="its parameter")
    parser.add_argument("--seed", type=int, default=None, help="evaluation seed")
    parser.add_argument("--output", default=None, help="JSON path (default: run dir)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        cfg, exp, run_dir = load_run(
            args.run, episodes=args.episodes, risk_name=args.risk, risk_param=args.risk_param
        )
    except (ValueError, ImportError) as error:
        print(f"riskq-eval: error: {error}", file=sys.stderr)
        sys.exit(2)
    seed = args.seed if args.seed is not None else cfg.seed + EVAL_SEED_OFFSET
    rollout, stats = evaluate(exp.eval_runner, seed=seed)
    result = {
        "run_dir": str(run_dir),
        "risk": exp.risk_fn.label,
        "episodes": cfg.eval_episodes,
        "seed": seed,
        **stats,
        **matrix_summary(exp.eval_env, rollout, exp.risk_fn),
    }
    output = Path(args.output) if args.output else run_dir / f"eval_{cfg.risk.name}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"saved {output}")


if __name__ == "__main__":
    main()
