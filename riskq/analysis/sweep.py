"""A sweep's final summaries as one Markdown table, one row per (env, algo, risk) group
(``riskq-table sweep``).

Numeric keys show the mean over seeds and the [min, max] range; text keys (e.g. the greedy
joint action of a matrix game) show how often each value occurred, e.g. ``(M, M) x5``.
``best KEY`` is the highest value of KEY over a run's evaluations during training
(metrics.jsonl), ``late KEY`` the mean of KEY over its evaluations from a given env step on:
a figure of the second half of training that one lucky or unlucky final evaluation does not
set. Incomplete runs are left out and returned, for the caller to list.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from riskq.analysis.markdown import markdown_table
from riskq.analysis.runs import Incomplete, read_config, risk_of, split_by_status
from riskq.errors import UsageError
from riskq.run.run_dir import SUMMARY_FILE
from riskq.run.run_files import METRICS_FILE, read_metrics


def evaluation_rows(run_dir: Path) -> list[dict]:
    """The rows of a run's metrics.jsonl logged during training (training and evaluation
    scalars; the final row is left out: it repeats the last evaluation)."""
    return [row for row in read_metrics(run_dir / METRICS_FILE) if not row.get("final")]


def best_evaluations(rows: list[dict], keys: tuple[str, ...]) -> dict[str, float]:
    """{"best KEY": the highest KEY over the ``rows`` that hold it}."""
    best = {}
    for key in keys:
        values = [row[key] for row in rows if key in row]
        if not values:
            raise UsageError(f"--best {key}: no evaluation of {key} in the run's metrics")
        best[f"best {key}"] = max(values)
    return best


def late_evaluations(rows: list[dict], keys: tuple[str, ...], *, start: int) -> dict[str, float]:
    """{"late KEY": the mean of KEY over the ``rows`` that hold it at env step >= ``start``}."""
    late = {}
    for key in keys:
        values = [row[key] for row in rows if key in row and row["step"] >= start]
        if not values:
            raise UsageError(f"no evaluation of {key} at env step >= {start}")
        late[f"late {key}"] = sum(values) / len(values)
    return late


def load_runs(
    sweep_dir: Path,
    *,
    best: tuple[str, ...] = (),
    late: tuple[str, ...] = (),
    late_from: int = 0,
) -> tuple[list[tuple[dict, dict]], list[Incomplete]]:
    """(config, summary) of every complete run under ``sweep_dir``, and (run dir, status) of
    the incomplete ones. ``best``, ``late``: keys whose best evaluation, or mean evaluation
    from env step ``late_from`` on, joins the summary."""
    complete, incomplete = split_by_status(sweep_dir)
    runs = []
    for run_dir in complete:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text())
        if best or late:
            rows = evaluation_rows(run_dir)
            summary |= best_evaluations(rows, best) | late_evaluations(rows, late, start=late_from)
        runs.append((read_config(run_dir), summary))
    return runs, incomplete


def cell(values: list) -> str:
    """``mean [min, max]`` of numbers; counts of anything else, most frequent first; ``n/a``
    where no run holds the key."""
    if not values:
        return "n/a"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        mean = sum(values) / len(values)
        return f"{mean:.3g} [{min(values):.3g}, {max(values):.3g}]"
    counts = Counter(str(v) for v in values)
    return ", ".join(f"{value} x{count}" for value, count in counts.most_common())


def table(runs: list[tuple[dict, dict]], keys: list[str]) -> str:
    """One Markdown row per (env, algo, risk): the number of seeds, then a ``cell`` per key
    over the runs whose summary holds it."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for config, summary in runs:
        groups[(config["env"]["label"], config["algo"]["name"], risk_of(config))].append(summary)
    rows = []
    for (env, algo, risk), summaries in sorted(groups.items()):
        cells = [cell([s[key] for s in summaries if key in s]) for key in keys]
        rows.append([env, algo, risk, str(len(summaries)), *cells])
    return markdown_table(["env", "algo", "risk", "seeds", *keys], rows)
