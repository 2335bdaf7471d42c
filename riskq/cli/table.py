"""``riskq-table``: Markdown tables of finished runs (``riskq.analysis``).

    riskq-table sweep results/sweeps/risk_ladder --keys greedy_action eval/return_mean
    riskq-table baselines results/sweeps/baselines_macn --out results/baselines
    riskq-table seeds results/sweeps/macn20 --keys eval/detour eval/cliff_falls \\
        --effect "eval/detour>=0.8" --effect "eval/cliff_falls<=neutral/3" --out macn20.md

``sweep``: one row per (env, algo, risk), mean and [min, max] over seeds (``--by-seed``: one
row per run), optionally the best evaluation (``--best``), the mean of the late ones
(``--late``) or of those in each of ``--windows`` parts of the budget (``--curve``).
``baselines``: RiskQ against the baselines per env, IQM with 95% CIs and the probability of
improvement, with figures and the run records (``--runs`` reads them back). ``seeds``: a seed
sweep's results page, per-seed figures, their IQM and on how many seeds each ``--effect``
holds (``riskq.analysis.effects`` gives the syntax). Every subcommand lists incomplete runs on
stderr and never counts them. ``baselines`` and ``seeds`` need the [plot] extra (rliable).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from riskq.analysis.effects import parse_effect
from riskq.analysis.runs import (
    SCORE_SOURCES,
    Incomplete,
    gather_records,
    merge_records,
    read_records,
)
from riskq.analysis.sweep import curve_columns, load_runs, table
from riskq.cli.errors import REFUSED, report
from riskq.errors import UsageError
from riskq.run.run_dir import incomplete_note

PROG = "riskq-table"
DEFAULT_KEYS = ["eval/return_mean", "eval/return_cvar_0.2"]
PLOT_EXTRA = "pip install 'riskq[plot]'"


def warn(prog: str, message: str) -> None:
    print(f"{prog}: warning: {message}", file=sys.stderr)


def warn_incomplete(prog: str, incomplete: list[Incomplete], *, where: str) -> None:
    if incomplete:
        warn(prog, incomplete_note(incomplete, where=where))


def run_sweep(args: argparse.Namespace) -> int:
    if args.windows is not None and not args.curve:
        raise UsageError("--windows splits the --curve keys' evaluations: give --curve KEY too")
    windows = 4 if args.windows is None else args.windows
    if windows < 1:
        raise UsageError(f"--windows must be a whole number >= 1, got {windows}")
    runs, incomplete = load_runs(
        args.sweep_dir,
        best=tuple(args.best),
        late=tuple(args.late),
        late_from=args.late_from,
        curve=tuple(args.curve),
        windows=windows,
    )
    warn_incomplete(args.prog, incomplete, where="the table")
    if not runs:
        raise UsageError(f"no complete run under {args.sweep_dir}")
    held = {key for _, summary in runs for key in summary}
    missing = [key for key in args.keys if key not in held]
    if missing:
        valid = ", ".join(sorted(key for key in held if " " not in key))  # not best/late/curve
        raise UsageError(f"--keys {missing[0]}: no run's summary holds it (they hold: {valid})")
    extra = [*(f"best {key}" for key in args.best), *(f"late {key}" for key in args.late)]
    extra += curve_columns(runs, tuple(args.curve))
    print(table(runs, [*args.keys, *extra], by_seed=args.by_seed))
    return 0


def run_baselines(args: argparse.Namespace) -> int:
    from riskq.analysis.baselines import write_env_table  # rliable and matplotlib: [plot]

    if not args.sweep_dirs and not args.runs:
        raise UsageError("give a sweep dir or --runs FILE")
    fresh, incomplete = gather_records(args.sweep_dirs, args.scores)
    kept = [record for path in args.runs for record in read_records(path)]
    warn_incomplete(args.prog, incomplete, where="the table")
    records, replaced = merge_records(fresh, kept)
    if replaced:
        runs = ", ".join(record["run"] for record in replaced)
        warn(args.prog, f"runs of the sweep replace --runs records: {runs}")
    if not records:
        where = ", ".join(map(str, args.sweep_dirs + args.runs))
        raise UsageError(f"no complete run under {where}")
    out_dir = args.out or (args.sweep_dirs[0] if args.sweep_dirs else args.runs[0].parent)
    for env in sorted({record["env"] for record in records}):
        text, paths = write_env_table(
            records, env=env, out_dir=out_dir, source=args.scores, reps=args.reps
        )
        print(f"{env}: {', '.join(map(str, paths))}\n\n{text}")
    return 0


def run_seeds(args: argparse.Namespace) -> int:
    from riskq.analysis import seeds  # rliable: [plot]

    effects = [parse_effect(text) for text in args.effect]
    records, incomplete = gather_records(args.sweep_dirs, args.scores)
    warn_incomplete(args.prog, incomplete, where="the figures and counts")
    if not records:
        raise UsageError(f"no complete run under {', '.join(map(str, args.sweep_dirs))}")
    keys = args.keys or list(dict.fromkeys(effect.key for effect in effects)) or DEFAULT_KEYS
    sweep = seeds.seed_sweep(records, incomplete, tuple(args.group))
    seeds.check_request(sweep, keys, effects)
    scores = SCORE_SOURCES[args.scores].title
    title = ", ".join(map(str, args.sweep_dirs))
    text = seeds.page(sweep, keys, effects, title=title, scores=scores, reps=args.reps)
    if args.out:
        record = seeds.sweep_record(sweep, keys, effects, scores=args.scores)
        written = seeds.write_page(args.out, text, record)
        print(", ".join(map(str, written)) + "\n")
    print(text, end="")
    return 0


def add_scores(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scores",
        choices=tuple(SCORE_SOURCES),
        default="final",
        help="final: summary.json (training's last evaluation); eval: riskq-eval's file; "
        "late: mean of the evaluations from t_max / 2 on (metrics.jsonl)",
    )
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")


def add_sweep(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--keys", nargs="+", default=DEFAULT_KEYS, help="summary keys")
    parser.add_argument("--best", nargs="+", default=[], help="keys: best evaluation too")
    parser.add_argument("--late", nargs="+", default=[], help="keys: mean of late evaluations")
    parser.add_argument("--late-from", type=int, default=0, help="env step where 'late' starts")
    parser.add_argument(
        "--curve", nargs="+", default=[], help="keys: mean evaluation in each window of t_max"
    )
    parser.add_argument("--windows", type=int, help="--curve: windows of t_max (default 4)")
    parser.add_argument("--by-seed", action="store_true", help="one row per run, with its seed")


def add_baselines(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sweep_dirs", type=Path, nargs="*", help="written by scripts/baselines.py (one or more)"
    )
    parser.add_argument(
        "--runs",
        type=Path,
        action="append",
        default=[],
        help="run records of an earlier table (baselines_<env>_runs.json); repeatable",
    )
    parser.add_argument("--out", type=Path, help="output directory (default: the first sweep dir)")
    add_scores(parser)


def add_seeds(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep_dirs", type=Path, nargs="+", help="sweep or run directories")
    parser.add_argument(
        "--keys", nargs="+", help="scores to report (default: the effects' keys, else return)"
    )
    parser.add_argument(
        "--group",
        nargs="+",
        default=["risk"],
        help="run fields that tell the compared groups apart: env, algo, risk (default: risk)",
    )
    parser.add_argument(
        "--effect",
        action="append",
        default=[],
        help="repeatable: KEY>=NUMBER, or KEY<=GROUP/NUMBER (the GROUP's run of the same seed); "
        "comparisons >=, <=, >, <; GROUP*NUMBER scales up; 'NAME: ' in front names it",
    )
    parser.add_argument("--out", type=Path, help="write the page here and <stem>_runs.json")
    add_scores(parser)


@dataclass(frozen=True)
class Subcommand:
    """One ``riskq-table`` subcommand: its help line, its arguments and what it runs."""

    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]  # -> exit code


SUBCOMMANDS = {
    "sweep": Subcommand("mean and range over seeds per (env, algo, risk)", add_sweep, run_sweep),
    "baselines": Subcommand(
        "RiskQ against the baselines: IQM, CIs, P(improvement)", add_baselines, run_baselines
    ),
    "seeds": Subcommand(
        "a seed sweep's page: per-seed figures, IQM, effects' share of seeds", add_seeds, run_seeds
    ),
}


def parse_args(argv=None) -> argparse.Namespace:
    """The command line of ``riskq-table``: a subcommand and its arguments."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, subcommand in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=subcommand.help, description=subcommand.help)
        subcommand.arguments(sub)
        sub.set_defaults(run=subcommand.run, prog=f"{PROG} {name}")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Entry point of ``riskq-table``: 0 on success, 2 with a one-line error otherwise."""
    args = parse_args(argv)
    try:
        return args.run(args)
    except (UsageError, OSError) as error:
        return report(args.prog, error, code=REFUSED)
    except ModuleNotFoundError as error:
        return report(args.prog, f"{error.name} is not installed ({PLOT_EXTRA})", code=REFUSED)


def deprecated_script(subcommand: str, argv: list[str]) -> int:
    """``scripts/<subcommand>_table.py ARGS``, the paths these tables had before
    ``riskq-table``: a one-line note, then ``riskq-table <subcommand> ARGS``."""
    print(f"note: {argv[0]} is deprecated; run {PROG} {subcommand}", file=sys.stderr)
    return main([subcommand, *argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
