"""Markdown table of a sweep's final summaries, one row per (env, algo, risk) group.

    python scripts/sweep_table.py results/sweeps/risk_ladder --keys greedy_action eval/return_mean
    python scripts/sweep_table.py results/sweeps/macf_300k --best eval/return_mean
    python scripts/sweep_table.py results/sweeps/macf --late eval/return_mean --late-from 150000

``--best KEY`` adds a column "best KEY": the highest value of KEY over a run's evaluations
during training (metrics.jsonl), beside the final one the summary holds. ``--late KEY`` adds
"late KEY": the mean of KEY over a run's evaluations from env step ``--late-from`` on, a
figure of the second half of training that one lucky or unlucky final evaluation does not set.

Numeric keys show the mean over seeds (and the min-max range); text keys (e.g. the greedy joint
action of a matrix game) show how often each value occurred, e.g. "(M, M) x5".

Incomplete runs (no summary.json, or a status other than "complete") are left out of the table
and listed on stderr, as ``riskq-plot`` leaves them out of its final table.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import yaml

from riskq.labels import risk_label, risk_level
from riskq.run_dir import SUMMARY_FILE, incomplete_note, run_status


def evaluation_rows(run_dir: Path) -> list[dict]:
    """The rows of a run's metrics.jsonl logged during training (training and evaluation
    scalars; the final row is left out: it repeats the last evaluation)."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [row for row in map(json.loads, lines) if not row.get("final")]


def best_evaluations(rows: list[dict], keys: tuple[str, ...]) -> dict[str, float]:
    """{"best KEY": the highest KEY over the ``rows`` that hold it}."""
    return {f"best {key}": max(row[key] for row in rows if key in row) for key in keys}


def late_evaluations(rows: list[dict], keys: tuple[str, ...], *, start: int) -> dict[str, float]:
    """{"late KEY": the mean of KEY over the ``rows`` that hold it at env step >= ``start``}."""
    late = {}
    for key in keys:
        values = [row[key] for row in rows if key in row and row["step"] >= start]
        if not values:
            raise ValueError(f"no evaluation of {key} at env step >= {start}")
        late[f"late {key}"] = sum(values) / len(values)
    return late


def load_runs(
    sweep_dir: Path,
    *,
    best: tuple[str, ...] = (),
    late: tuple[str, ...] = (),
    late_from: int = 0,
) -> tuple[list[tuple[dict, dict]], list[tuple[Path, str]]]:
    """(config, summary) of every complete run under ``sweep_dir``, and (path, status) of the
    incomplete ones (a run directory holds config.yaml and tb/, as for riskq-plot). ``best``,
    ``late``: keys whose best evaluation, or mean evaluation from env step ``late_from`` on,
    joins the summary (``best_evaluations``, ``late_evaluations``)."""
    runs, incomplete = [], []
    for config_path in sorted(sweep_dir.rglob("config.yaml")):
        run_dir = config_path.parent
        if not (run_dir / "tb").is_dir():
            continue  # not a run directory (e.g. Hydra's .hydra/config.yaml)
        status = run_status(run_dir)
        if status != "complete":
            incomplete.append((run_dir, status))
            continue
        config = yaml.safe_load(config_path.read_text())
        summary = json.loads((run_dir / SUMMARY_FILE).read_text())
        if best or late:
            rows = evaluation_rows(run_dir)
            summary |= best_evaluations(rows, best) | late_evaluations(rows, late, start=late_from)
        runs.append((config, summary))
    return runs, incomplete


def cell(values: list) -> str:
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        mean = sum(values) / len(values)
        return f"{mean:.3g} [{min(values):.3g}, {max(values):.3g}]"
    counts = Counter(str(v) for v in values)
    return ", ".join(f"{value} x{count}" for value, count in counts.most_common())


def table(runs: list[tuple[dict, dict]], keys: list[str]) -> str:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for config, summary in runs:
        label = risk_label(config["risk"]["name"], risk_level(config["risk"]))
        groups[(config["env"]["label"], config["algo"]["name"], label)].append(summary)
    lines = [
        "| env | algo | risk | seeds | " + " | ".join(keys) + " |",
        "|---" * (4 + len(keys)) + "|",
    ]
    for (env, algo, risk), summaries in sorted(groups.items()):
        cells = [cell([s[key] for s in summaries if key in s]) for key in keys]
        lines.append(f"| {env} | {algo} | {risk} | {len(summaries)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--keys", nargs="+", default=["eval/return_mean", "eval/return_cvar_0.2"])
    parser.add_argument("--best", nargs="+", default=[], help="keys: best evaluation too")
    parser.add_argument("--late", nargs="+", default=[], help="keys: mean of late evaluations")
    parser.add_argument("--late-from", type=int, default=0, help="env step where 'late' starts")
    args = parser.parse_args()
    try:
        runs, incomplete = load_runs(
            args.sweep_dir, best=tuple(args.best), late=tuple(args.late), late_from=args.late_from
        )
    except ValueError as error:
        raise SystemExit(f"sweep_table: error: {error}") from None
    if incomplete:
        note = incomplete_note(incomplete, where="the table")
        print(f"sweep_table: warning: {note}", file=sys.stderr)
    if not runs:
        raise SystemExit(f"sweep_table: error: no complete run under {args.sweep_dir}")
    extra = [*(f"best {key}" for key in args.best), *(f"late {key}" for key in args.late)]
    print(table(runs, [*args.keys, *extra]))


if __name__ == "__main__":
    main()
