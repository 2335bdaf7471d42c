"""``riskq-plot``: learning curves and final-performance tables of riskq training runs.

    riskq-plot results/sweeps/risk_ladder --metrics eval/return_mean eval/return_cvar_0.2

Reads every run directory (``config.yaml`` next to a ``tb/`` folder) under the given paths and
writes one figure per metric and ``final_performance.{md,csv}`` (``riskq.analysis.plot``:
grouping by env, algorithm and risk measure; mean over seeds with a 95% bootstrap interval).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from riskq.analysis.plot import DEFAULT_METRICS, PROG, X_AXES, PlotError, run_plot
from riskq.cli.errors import report


def parse_args(argv=None) -> argparse.Namespace:
    """The command line of ``riskq-plot``."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="run or sweep directories (searched recursively)")
    parser.add_argument("--out", type=Path, help="output directory (default: <first path>/plots)")
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), help="scalar tags")
    parser.add_argument("--x", choices=sorted(X_AXES), default="env_steps", help="x axis")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument(
        "--smooth",
        type=int,
        default=1,
        metavar="N",
        help="draw each run's trailing mean over N logged points (default 1: as logged); "
        "the final table is never smoothed",
    )
    parser.add_argument(
        "--published",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="draw published figures of the env and metric (riskq.analysis.published) as "
        "labelled level lines",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Entry point of ``riskq-plot``: 0 on success, 2 with a one-line error otherwise."""
    args = parse_args(argv)
    try:
        result = run_plot(
            args.paths,
            out=args.out,
            metrics=args.metrics,
            x=args.x,
            n_boot=args.n_boot,
            with_published=args.published,
            smooth=args.smooth,
        )
    except (PlotError, OSError) as err:  # OSError: an --out or run path that cannot be used
        return report(PROG, err, code=2)
    print("\n".join(map(str, result.written)) + "\n\n" + result.markdown, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
