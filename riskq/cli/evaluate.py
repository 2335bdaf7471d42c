"""``riskq-eval``: evaluate trained runs greedily, optionally under another risk measure.

    riskq-eval results/runs/<...>/seed0_<time> --episodes 500 --risk cvar --risk-param 0.2
    riskq-eval results/sweeps/<time>/*/ --episodes 320      # every run of a sweep, one by one

Loads ``config.yaml`` and ``checkpoints/latest.pt`` of a run directory (or a checkpoint file
inside one), plays greedy episodes and prints and saves the same statistics as training's
evaluation (``eval/return_mean``, CVaR/VaR of returns, env metrics, matrix-game optimum) to
``eval_<risk>.json`` in the run directory, e.g. ``eval_cvar_0.2.json``. With several runs each
gets its own file; ``riskq-table baselines --scores eval`` tabulates them.

The acting measure: the run's own by default; ``--risk NAME`` alone takes NAME's default level
(``configs/risk/NAME.yaml``); ``--risk-param`` alone changes the level of the run's measure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from riskq.cli.compose import compose_config
from riskq.cli.errors import exit_with_error, is_reported, report
from riskq.config import RiskConfig
from riskq.errors import UsageError
from riskq.model.risk import RISK_MEASURES
from riskq.run.evaluate import evaluate_run, load_run, read_run
from riskq.run.labels import eval_file_name, risk_level
from riskq.run.run_files import atomic_file

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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument(
        "runs", nargs="+", metavar="run", help="run directory (or a checkpoint .pt file inside one)"
    )
    parser.add_argument("--episodes", type=int, default=None, help="default: the run's")
    parser.add_argument(
        "--risk", default=None, help="risk measure for action selection (default: the run's)"
    )
    parser.add_argument(
        "--risk-param", type=float, default=None, help="its level (default: configs/risk/<risk>)"
    )
    parser.add_argument("--seed", type=int, default=None, help="evaluation seed")
    parser.add_argument("--output", default=None, help="JSON path, one run only (default: run dir)")
    return parser.parse_args(argv)


def evaluate_one(run: str, args: argparse.Namespace) -> Path:
    """Evaluate one run as the options say and print the result; the JSON file written.
    Input that cannot be evaluated raises (``is_reported`` errors: one line for the user)."""
    run_cfg, _, _ = read_run(run)
    risk = acting_risk(run_cfg.risk, args.risk, args.risk_param)
    cfg, exp, run_dir = load_run(run, episodes=args.episodes, risk=risk)
    result = evaluate_run(cfg, exp, run_dir, seed=args.seed)
    output = Path(args.output or run_dir / eval_file_name(cfg.risk.name, cfg.risk.param))
    with atomic_file(output, "w") as handle:  # a failed write keeps the previous file
        handle.write(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return output


def main(argv: list[str] | None = None) -> None:
    """Evaluate every run given; one that cannot be evaluated gets its one-line error and the
    others still run; the exit code is then that error's (2 for refused input)."""
    args = parse_args(argv)
    if args.output and len(args.runs) > 1:
        exit_with_error(
            PROG, UsageError(f"--output names one file, but {len(args.runs)} runs were given")
        )
    if args.output and Path(args.output).is_dir():  # refused before the evaluation, not after
        exit_with_error(PROG, UsageError(f"--output names a file, got the folder {args.output}"))
    codes = []
    for index, run in enumerate(args.runs, start=1):
        if len(args.runs) > 1:
            print(f"{PROG}: [{index}/{len(args.runs)}] {run}", flush=True)
        try:
            print(f"saved {evaluate_one(run, args)}", flush=True)
        except Exception as error:
            if not is_reported(error):
                raise
            codes.append(report(PROG, error))
    if codes:
        sys.exit(max(codes))


if __name__ == "__main__":
    main()
