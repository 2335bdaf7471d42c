"""Run the baselines table of one env: RiskQ and six baselines under the same budget.

    python scripts/baselines.py macn                          # 5 seeds, one run at a time
    python scripts/baselines.py macf --launcher parallel      # 3 seeds, 2 runs at a time
    python scripts/baselines.py macn --dry-run                # print the commands only
    python scripts/baselines.py macf --risks wang             # one risk block (and VDN, QMIX)
    python scripts/baselines.py macn -- t_max=20000           # extra overrides for every run
    riskq-table baselines results/sweeps/baselines_macn       # table and figures

The distributional algorithms act under each risk measure of RISKS, the measures of the RiskQ
paper (Shen et al., NeurIPS 2023, arXiv:2311.01753): Wang(0.75) and CVaR(0.2), the levels of
configs/risk/. VDN and QMIX learn one value per action (K = 1), on which every risk measure is
the mean, so they run once, risk-neutral. Budgets (t_max, evaluation) are the env file's.
Two ``riskq-train -m`` sweeps write into ``<sweep dir>/distributional`` and
``<sweep dir>/expected_value``.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DISTRIBUTIONAL = ("riskq", "dmix", "ddn", "iqr", "risk_mix")  # configs/algo/
EXPECTED_VALUE = ("vdn", "qmix")  # K = 1: acting on any risk measure is acting on the mean
RISKS = ("wang", "cvar")  # configs/risk/: Wang 0.75, CVaR 0.2
SEEDS = {"macn": 5, "macf": 3}  # per env (issue: MACN 5 seeds, MACF 3)
LAUNCHERS = ("basic", "parallel", "slurm")  # basic: Hydra's sequential launcher


@dataclass(frozen=True)
class Sweep:
    """One ``riskq-train -m`` sweep: the product of its algorithms, risk measures and seeds."""

    name: str
    algos: tuple[str, ...]
    risks: tuple[str, ...]


SWEEPS = (
    Sweep("distributional", DISTRIBUTIONAL, RISKS),
    Sweep("expected_value", EXPECTED_VALUE, ("neutral",)),
)


def selected_sweeps(risks: tuple[str, ...] = RISKS) -> tuple[Sweep, ...]:
    """SWEEPS with the distributional algorithms acting under ``risks`` only (a subset of
    RISKS, e.g. one block of the table); VDN and QMIX run risk-neutral whatever is chosen."""
    unknown = sorted(set(risks) - set(RISKS))
    if unknown or not risks:
        raise ValueError(f"--risks: {unknown or 'none'}; valid choices: {', '.join(RISKS)}")
    chosen = tuple(risk for risk in RISKS if risk in risks)
    return tuple(
        Sweep(sweep.name, sweep.algos, chosen) if sweep.risks == RISKS else sweep
        for sweep in SWEEPS
    )


def sweep_overrides(sweep: Sweep, *, env: str, seeds: int) -> list[str]:
    """The sweep's ``riskq-train -m`` overrides, e.g. ``algo=riskq,dmix``."""
    seed_list = ",".join(map(str, range(seeds)))
    return [f"env={env}", f"algo={','.join(sweep.algos)}", f"risk={','.join(sweep.risks)}",
            f"seed={seed_list}"]  # fmt: skip


def job_overrides(*, env: str, seeds: int, risks: tuple[str, ...] = RISKS) -> list[list[str]]:
    """Every run of the table as its own overrides (what each sweep expands into)."""
    return [
        [f"env={env}", f"algo={algo}", f"risk={risk}", f"seed={seed}"]
        for sweep in selected_sweeps(risks)
        for algo, risk, seed in itertools.product(sweep.algos, sweep.risks, range(seeds))
    ]


def commands(
    *,
    env: str,
    seeds: int,
    sweep_dir: Path,
    launcher: str,
    extra: list[str],
    risks: tuple[str, ...] = RISKS,
) -> list[list[str]]:
    """One ``riskq-train -m`` command line per sweep, run by this interpreter."""
    launch = [] if launcher == "basic" else [f"hydra/launcher={launcher}"]
    return [
        [sys.executable, "-m", "riskq.cli.train", "-m", *launch,
         *sweep_overrides(sweep, env=env, seeds=seeds), *extra,
         f"hydra.sweep.dir={sweep_dir / sweep.name}"]
        for sweep in selected_sweeps(risks)
    ]  # fmt: skip


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env", choices=sorted(SEEDS), help="env config (configs/env/)")
    parser.add_argument("--seeds", type=int, help="seeds per row (default: 5 MACN, 3 MACF)")
    parser.add_argument("--sweep-dir", type=Path, help="default: results/sweeps/baselines_<env>")
    parser.add_argument(
        "--risks", nargs="+", choices=RISKS, default=list(RISKS),
        help="measures the distributional algorithms act under (default: all; one block each)",
    )  # fmt: skip
    parser.add_argument("--launcher", choices=LAUNCHERS, default="basic", help="hydra/launcher")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("overrides", nargs="*", help="extra riskq-train overrides (after --)")
    return parser.parse_intermixed_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    seeds = SEEDS[args.env] if args.seeds is None else args.seeds
    if seeds < 1:
        print(f"baselines: error: --seeds must be >= 1, got {seeds}", file=sys.stderr)
        return 2
    sweep_dir = args.sweep_dir or Path("results/sweeps") / f"baselines_{args.env}"
    lines = commands(
        env=args.env,
        seeds=seeds,
        sweep_dir=sweep_dir,
        launcher=args.launcher,
        extra=args.overrides,
        risks=tuple(args.risks),
    )
    for line in lines:
        print(" ".join(line), flush=True)
        if not args.dry_run and subprocess.run(line).returncode != 0:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
