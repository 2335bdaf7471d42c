"""Markdown table and figures of a baselines sweep (``scripts/baselines.py``), via rliable.

    python scripts/baselines_table.py results/sweeps/baselines_macn --out results/baselines
    python scripts/baselines_table.py results/sweeps/smax_500k --scores eval   # after riskq-eval

Per env, one block per risk measure that RiskQ ran under (risk-neutral last): RiskQ, the
distributional baselines under the same measure, and the expected-value baselines
(risk-neutral, the same runs in every block). Each score is one number per run from its
``summary.json`` (the final greedy evaluation of training), or with ``--scores eval`` from
the ``eval_<risk>.json`` that ``riskq-eval`` wrote for the run's own measure (the final policy
on as many episodes as asked; runs without one stop the table), or with ``--scores late`` the
mean of the run's greedy evaluations from half its budget on (``late_scores``: steadier than
one final evaluation where a deterministic greedy policy makes every evaluation episode alike,
e.g. MACF, whose only randomness is crashes): mean return, CVaR(0.2) of the
evaluation returns, and the env's risk events per episode (RISK_EVENTS); on SMAX maps also the
win rate, and the risk event is allies lost. Cells show the interquartile mean over runs with a
95% stratified bootstrap CI; the last columns give the probability that a RiskQ run of the block
beats a run of the row on each higher-is-better score (riskq/aggregate.py). Writes
``baselines_<env>.md`` (also printed) and ``baselines_<env>_iqm.png/.svg`` (intervals) under
``--out`` (``baselines_<env>_eval.md`` and ``baselines_<env>_eval_iqm.*`` with ``--scores eval``).

Run directories are not kept in git, so the table also writes ``baselines_<env>_runs.json``:
one record per run (its directory, env, algo, risk, seed and every ``eval/`` score). Commit it
beside the table; ``--runs`` reads such files back, so a later sweep adds rows and seeds to a
table without re-running the runs behind it::

    python scripts/baselines_table.py results/sweeps/new_seeds --runs \
        results/baselines/macf/baselines_macf_runs.json --out results/baselines/macf
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from riskq.aggregate import Interval, improvement_estimates, interval_estimates
from riskq.labels import eval_file_name, risk_label, risk_level
from riskq.run_dir import incomplete_note, run_status

REFERENCE = "riskq"
NEUTRAL = "neutral"
SCORES = {"eval/return_mean": "return", "eval/return_cvar_0.2": "CVaR(0.2)"}  # higher is better
# per env family (an env label or its prefix before "_", e.g. smax_3m -> smax)
ENV_SCORES = {"smax": {"eval/win_rate": "win rate"}}  # higher is better, before SCORES
RISK_EVENTS = {
    "macn": ("eval/cliff_falls", "falls"),
    "macf": ("eval/crashes", "crashes"),
    "smax": ("eval/allies_dead", "allies lost"),
}
ALGO_ORDER = ("riskq", "dmix", "ddn", "iqr", "risk_mix", "vdn", "qmix")  # table row order

Group = tuple[str, str, str]  # (env label, algo name, risk label)
RUNS_SUFFIX = "_runs.json"  # baselines_<env><source suffix>_runs.json: the table's run records


def json_scores(path: Path, config: dict) -> dict:
    """The scores a JSON file holds (summary.json, riskq-eval's eval_<risk>.json)."""
    return json.loads(path.read_text())


def late_scores(path: Path, config: dict) -> dict:
    """Mean of every ``eval/`` scalar of metrics.jsonl over the greedy evaluations from half
    the run's budget (``t_max`` / 2) on; the closing evaluation, which repeats the policy of
    the last one, is left out."""
    start = int(config["t_max"]) / 2
    rows = [
        record
        for record in map(json.loads, path.read_text().splitlines())
        if record["step"] >= start and not record.get("final")
    ]
    keys = sorted({key for record in rows for key in record if key.startswith("eval/")})
    return {key: float(np.mean([r[key] for r in rows if key in r])) for key in keys}


@dataclass(frozen=True)
class ScoreSource:
    """Where ``--scores NAME`` reads a run's scores and how its outputs are named."""

    file: Callable[[Path, dict], Path]  # (run dir, its config.yaml) -> the scores' file
    suffix: str  # outputs: baselines_<env><suffix>.md and baselines_<env><suffix>_iqm.png
    title: str  # the figure's name for the scores
    read: Callable[[Path, dict], dict] = json_scores  # (scores' file, config) -> scores
    missing: str = ""  # what to do when a complete run lacks the file


SCORE_SOURCES = {
    "final": ScoreSource(
        file=lambda run_dir, config: run_dir / "summary.json",
        suffix="",
        title="final greedy evaluation",
    ),
    "eval": ScoreSource(  # riskq-eval's file for the run's own measure
        file=lambda run_dir, config: (
            run_dir / eval_file_name(str(config["risk"]["name"]), risk_level(config["risk"]))
        ),
        suffix="_eval",
        title="final policy (riskq-eval)",
        missing="run riskq-eval {run_dir} first",
    ),
    "late": ScoreSource(  # the second half of training, from the run's metrics.jsonl
        file=lambda run_dir, config: run_dir / "metrics.jsonl",
        suffix="_late",
        title="mean of the greedy evaluations from half the budget on",
        read=late_scores,
    ),
}


def run_record(run_dir: Path, config: dict, scores: dict) -> dict:
    """What the table keeps of one run: where it ran, its (env, algo, risk, seed) and every
    numeric ``eval/`` score of its scores' file."""
    risk = config["risk"]
    return {
        "run": str(run_dir),
        "env": config["env"]["label"],
        "algo": config["algo"]["name"],
        "risk": risk_label(str(risk["name"]), risk_level(risk)),
        "seed": int(config["seed"]),
        "scores": {
            key: float(value)
            for key, value in scores.items()
            if key.startswith("eval/") and isinstance(value, int | float)
        },
    }


def load_records(
    sweep_dir: Path, source: str = "final"
) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Run records (``run_record``) of every complete run under ``sweep_dir``, read from the
    file of ``SCORE_SOURCES[source]``, and the (run dir, status) of the incomplete ones. A run
    directory holds config.yaml and tb/ (as for riskq-plot and sweep_table.py; Hydra's
    .hydra/config.yaml is not one). A complete run without its scores' file raises
    FileNotFoundError."""
    records, incomplete = [], []
    for config_path in sorted(sweep_dir.rglob("config.yaml")):
        run_dir = config_path.parent
        if not (run_dir / "tb").is_dir():
            continue
        if (status := run_status(run_dir)) != "complete":
            incomplete.append((run_dir, status))
            continue
        config = yaml.safe_load(config_path.read_text())
        scores = SCORE_SOURCES[source]
        path = scores.file(run_dir, config)
        if not path.is_file():
            hint = f" ({scores.missing.format(run_dir=run_dir)})" if scores.missing else ""
            raise FileNotFoundError(f"--scores {source}: {path} not found{hint}")
        records.append(run_record(run_dir, config, scores.read(path, config)))
    return records, incomplete


def run_key(record: dict) -> tuple[str, str, str, int]:
    return record["env"], record["algo"], record["risk"], record["seed"]


def merge_records(fresh: list[dict], kept: list[dict]) -> tuple[list[dict], list[dict]]:
    """``fresh`` records (this call's sweeps) and those of ``kept`` (``--runs`` files) that
    no fresh record replaces (same env, algo, risk and seed), and the replaced ones."""
    fresh_keys = {run_key(record) for record in fresh}
    replaced = [record for record in kept if run_key(record) in fresh_keys]
    merged = fresh + [record for record in kept if run_key(record) not in fresh_keys]
    return sorted(merged, key=lambda record: (*run_key(record), record["run"])), replaced


def read_records(path: Path) -> list[dict]:
    """The records of a ``--runs`` file; one that is not such a file raises ValueError."""
    try:
        records = json.loads(path.read_text())
        if not isinstance(records, list):
            raise TypeError
        for record in records:
            run_key(record), dict(record["scores"])
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise ValueError(
            f"--runs {path}: not a run-records file written by this script ({error!r})"
        ) from None
    return records


def groups_of(records: list[dict]) -> dict[Group, list[dict]]:
    """Scores of each run by (env, algo, risk), in record order."""
    groups: dict[Group, list[dict]] = defaultdict(list)
    for record in records:
        groups[(record["env"], record["algo"], record["risk"])].append(record["scores"])
    return dict(groups)


def env_family(env: str) -> str:
    """The env label's family: ``smax_3m`` -> ``smax``; ``macn`` -> ``macn``."""
    return env.split("_")[0]


def higher_is_better(env: str) -> dict[str, str]:
    """Summary key -> column name of the scores that RiskQ should raise in ``env``."""
    return {**ENV_SCORES.get(env_family(env), {}), **SCORES}


def score_keys(env: str) -> dict[str, str]:
    """Summary key -> column name: the scores, then the env's risk events (if it has any)."""
    family = env_family(env)
    events = dict([RISK_EVENTS[family]]) if family in RISK_EVENTS else {}
    return {**higher_is_better(env), **events}


def block_rows(groups: dict[Group, list], *, env: str, risk: str) -> list[tuple[str, str]]:
    """(algo, risk) rows of one block: algorithms run under ``risk``, then risk-neutral ones."""
    rows = [(algo, risk) for e, algo, r in groups if e == env and r == risk]
    if risk != NEUTRAL:
        rows += [(algo, NEUTRAL) for e, algo, r in groups if e == env and r == NEUTRAL]
    rows = [row for row in rows if row[0] != REFERENCE or row[1] == risk]
    rank = {algo: i for i, algo in enumerate(ALGO_ORDER)}
    return sorted(set(rows), key=lambda row: (rank.get(row[0], len(rank)), row))


def block_risks(groups: dict[Group, list], *, env: str) -> list[str]:
    """The risk measures RiskQ ran under in ``env``, risk-neutral last (its block compares
    risk-neutral RiskQ with the risk-neutral baselines)."""
    risks = sorted({r for e, algo, r in groups if e == env and algo == REFERENCE})
    return sorted(risks, key=lambda risk: risk == NEUTRAL)


def scores_of(summaries: list[dict], key: str) -> np.ndarray:
    """One score per run [R, 1] (rliable's runs x tasks; one task)."""
    return np.array([[float(s[key])] for s in summaries if key in s])  # [R, 1]


def block_table(groups: dict[Group, list], *, env: str, risk: str, reps: int) -> list[dict]:
    """Rows of one block: per score an IQM Interval, per higher-is-better score the
    probability of improvement of RiskQ (under ``risk``) over the row."""
    keys, rows = score_keys(env), block_rows(groups, env=env, risk=risk)
    reference = groups.get((env, REFERENCE, risk))
    table = []
    for algo, row_risk in rows:
        summaries = groups[(env, algo, row_risk)]
        row = {"algo": algo, "risk": row_risk, "seeds": len(summaries), "iqm": {}, "p": {}}
        for key in keys:
            scores = scores_of(summaries, key)
            row["iqm"][key] = (
                interval_estimates({key: scores}, reps=reps)[key] if len(scores) else None
            )
            if key in higher_is_better(env) and reference and algo != REFERENCE and len(scores):
                pair = (scores_of(reference, key), scores)
                row["p"][key] = improvement_estimates({key: pair}, reps=reps)[key]
        table.append(row)
    return table


def _cell(interval: Interval | None, digits: int = 3) -> str:
    if interval is None:
        return "n/a"
    point, low, high = (f"{v:.{digits}g}" for v in (interval.point, interval.low, interval.high))
    return f"{point} [{low}, {high}]"


def markdown(tables: dict[str, list[dict]], *, env: str) -> str:
    """The blocks of one env as one Markdown table."""
    keys = score_keys(env)
    header = [
        "block",
        "algo",
        "risk",
        "seeds",
        *(f"{name}: IQM [95% CI]" for name in keys.values()),
    ]
    better = higher_is_better(env)
    header += [f"P(RiskQ > algo): {name}" for name in better.values()]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for block, rows in tables.items():
        for row in rows:
            cells = [block, row["algo"], row["risk"], str(row["seeds"])]
            cells += [_cell(row["iqm"][key]) for key in keys]
            cells += [
                _cell(row["p"].get(key), digits=2) if key in row["p"] else "-" for key in better
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_intervals(
    tables: dict[str, list[dict]], *, env: str, out_dir: Path, source: str = "final"
) -> list[Path]:
    """One subplot per score: each row's IQM with its 95% CI, RiskQ's colour from riskq-plot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from riskq.plot import algo_colour

    keys = score_keys(env)
    rows = [(block, row) for block, block_rows_ in tables.items() for row in block_rows_]
    fig = Figure(figsize=(4.2 * len(keys), 0.9 + 0.32 * len(rows)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(keys), sharey=True, squeeze=False)[0]
    labels = [
        f"{row['algo']}, {row['risk']}" + ("" if row["risk"] == block else f" ({block} block)")
        for block, row in rows
    ]
    for ax, (key, name) in zip(axes, keys.items(), strict=True):
        for y, (_, row) in enumerate(rows):
            interval = row["iqm"][key]
            if interval is None:
                continue
            error = [[interval.point - interval.low], [interval.high - interval.point]]
            ax.errorbar(interval.point, y, xerr=error, fmt="o", color=algo_colour(row["algo"]),
                        capsize=3)  # fmt: skip
        ax.set(xlabel=f"{name} (IQM, 95% CI)", yticks=range(len(rows)), yticklabels=labels)
        ax.grid(alpha=0.3)
    axes[0].invert_yaxis()
    fig.suptitle(f"{env}: {SCORE_SOURCES[source].title}, interquartile mean over runs")
    stem = re.sub(r"[^\w.-]+", "_", env) + SCORE_SOURCES[source].suffix
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"baselines_{stem}_iqm{suffix}" for suffix in (".png", ".svg")]
    for path in paths:
        fig.savefig(path, dpi=150, metadata={"Date": None} if path.suffix == ".svg" else None)
    return paths


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument(
        "--scores",
        choices=tuple(SCORE_SOURCES),
        default="final",
        help="final: summary.json (training's last evaluation); eval: riskq-eval's file; "
        "late: mean of the evaluations from t_max / 2 on (metrics.jsonl)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.sweep_dirs and not args.runs:
        print("baselines_table: error: give a sweep dir or --runs FILE", file=sys.stderr)
        return 2
    fresh, incomplete, kept = [], [], []
    try:
        for sweep_dir in args.sweep_dirs:
            records, left_out = load_records(sweep_dir, args.scores)
            fresh, incomplete = fresh + records, incomplete + left_out
        for path in args.runs:
            kept += read_records(path)
    except (FileNotFoundError, ValueError) as error:
        print(f"baselines_table: error: {error}", file=sys.stderr)
        return 1
    if incomplete:
        print(f"baselines_table: warning: {incomplete_note(incomplete, where='the table')}",
              file=sys.stderr)  # fmt: skip
    records, replaced = merge_records(fresh, kept)
    if replaced:
        runs = ", ".join(record["run"] for record in replaced)
        print(f"baselines_table: warning: runs of the sweep replace --runs records: {runs}",
              file=sys.stderr)  # fmt: skip
    groups = groups_of(records)
    if not groups:
        where = ", ".join(map(str, args.sweep_dirs + args.runs))
        print(f"baselines_table: error: no complete run under {where}", file=sys.stderr)
        return 1
    out_dir = args.out or (args.sweep_dirs[0] if args.sweep_dirs else args.runs[0].parent)
    suffix = SCORE_SOURCES[args.scores].suffix
    for env in sorted({env for env, _, _ in groups}):
        tables = {
            risk: block_table(groups, env=env, risk=risk, reps=args.reps)
            for risk in block_risks(groups, env=env)
        }
        text = markdown(tables, env=env)
        out_dir.mkdir(parents=True, exist_ok=True)
        table_path = out_dir / f"baselines_{env}{suffix}.md"
        table_path.write_text(text)
        runs_path = out_dir / f"baselines_{env}{suffix}{RUNS_SUFFIX}"
        env_records = [record for record in records if record["env"] == env]
        runs_path.write_text(json.dumps(env_records, indent=1) + "\n")
        paths = plot_intervals(tables, env=env, out_dir=out_dir, source=args.scores)
        print(f"{env}: {table_path}, {runs_path}, {', '.join(map(str, paths))}\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
