"""Markdown table of a sweep's final summaries, one row per (env, algo, risk) group.

    python scripts/sweep_table.py results/sweeps/risk_ladder --keys greedy_action eval/return_mean
    python scripts/sweep_table.py results/sweeps/macf_300k --best eval/return_mean

``--best KEY`` adds a column "best KEY": the highest value of KEY over a run's evaluations
during training (metrics.jsonl), beside the final one the summary holds.

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


def best_evaluations(run_dir: Path, keys: tuple[str, ...]) -> dict[str, float]:
    """{"best KEY": the highest KEY over the run's evaluation rows of metrics.jsonl}."""
    if not keys:
        return {}
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {
        f"best {key}": max(row[key] for row in rows if key in row and not row.get("final"))
        for key in keys
    }


def load_runs(
    sweep_dir: Path, *, best: tuple[str, ...] = ()
) -> tuple[list[tuple[dict, dict]], list[tuple[Path, str]]]:
    """(config, summary) of every complete run under ``sweep_dir``, and (path, status) of the
    incomplete ones (a run directory holds config.yaml and tb/, as for riskq-plot). ``best``:
    keys whose best evaluation joins the summary (``best_evaluations``)."""
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
        runs.append((config, {**summary, **best_evaluations(run_dir, best)}))
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
    args = parser.parse_args()
    runs, incomplete = load_runs(args.sweep_dir, best=tuple(args.best))
    if incomplete:
        note = incomplete_note(incomplete, where="the table")
        print(f"sweep_table: warning: {note}", file=sys.stderr)
    if not runs:
        raise SystemExit(f"sweep_table: error: no complete run under {args.sweep_dir}")
    print(table(runs, [*args.keys, *(f"best {key}" for key in args.best)]))


if __name__ == "__main__":
    main()
