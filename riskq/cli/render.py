"""``riskq-render``: a trained run's greedy evaluation episode as an animated GIF.

    riskq-render results/runs/macn/riskq/wang_0.75/seed0_<time> --out episode.gif
    riskq-render RUN_NEUTRAL RUN_WANG --out neutral_vs_wang.gif    # side by side, one env

MACN: grid, cliff and each agent's path; MACF: the two cars on the road with the target and
crashes; SMAX: JaxMARL's visualiser (the ``smax`` extra, one run at a time). Needs matplotlib
and Pillow (the ``plot`` extra). Drawing: ``riskq.analysis.render``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from riskq.cli.errors import exit_with_error, is_reported
from riskq.errors import UsageError

PROG = "riskq-render"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument(
        "runs", nargs="+", metavar="run", help="run directory (or a checkpoint .pt file inside one)"
    )
    parser.add_argument("--out", type=Path, required=True, help="the GIF to write")
    parser.add_argument("--seed", type=int, default=None, help="env seed (default: the run's)")
    parser.add_argument("--fps", type=int, default=4, help="frames per second")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Render the runs given; bad input is a one-line error with exit code 2."""
    args = parse_args(argv)
    try:
        if args.fps < 1:
            raise UsageError(f"--fps must be >= 1, got {args.fps}")
        if args.out.suffix.lower() != ".gif" or args.out.is_dir():
            raise UsageError(f"--out names the GIF file to write (NAME.gif), got {args.out}")
        from riskq.analysis.render import render

        frames = render(args.runs, args.out, seed=args.seed, fps=args.fps)
    except Exception as error:
        if not is_reported(error):
            raise
        exit_with_error(PROG, error)
    print(f"saved {args.out} ({frames} frames drawn)")


if __name__ == "__main__":
    main()
    sys.exit(0)
