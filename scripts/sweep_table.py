"""Markdown table of a sweep's final summaries, one row per (env, algo, risk) group.

    python scripts/sweep_table.py results/sweeps/risk_ladder --keys greedy_action eval/return_mean

Numeric keys show the mean over seeds (and the min-max range); text keys (e.g. the greedy joint
action of a matrix game) show how often each value occurred, e.g. "(M, M) x5".
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import yaml


def load_runs(sweep_dir: Path) -> list[tuple[dict, dict]]:
    """(config, summary) of every finished run under ``sweep_dir``."""
    runs = []
    for summary_path in sorted(sweep_dir.rglob("summary.json")):
        config = yaml.safe_load((summary_path.parent / "config.yaml").read_text())
        runs.append((config, json.loads(summary_path.read_text())))
    if not runs:
        raise SystemExit(f"sweep_table: error: no summary.json under {sweep_dir}")
    return runs


def cell(values: list) -> str:
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        mean = sum(values) / len(values)
        return f"{mean:.3g} [{min(values):.3g}, {max(values):.3g}]"
    counts = Counter(str(v) for v in values)
    return ", ".join(f"{value} x{count}" for value, count in counts.most_common())


def table(runs: list[tuple[dict, dict]], keys: list[str]) -> str:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for config, summary in runs:
        risk = config["risk"]
        label = risk["name"] if risk["name"] == "neutral" else f"{risk['name']}({risk['param']})"
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
    args = parser.parse_args()
    print(table(load_runs(args.sweep_dir), args.keys))


if __name__ == "__main__":
    main()
