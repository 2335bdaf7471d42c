"""A sweep's final summaries as one Markdown table, one row per (env, algo, risk) group
(``riskq-table sweep``).

Numeric keys show the mean over seeds and the [min, max] range; text keys (e.g. the greedy
joint action of a matrix game) show how often each value occurred, e.g. ``(M, M) x5``.
``best KEY`` is the highest value of KEY over a run's evaluations during training
(metrics.jsonl), ``late KEY`` the mean of KEY over its evaluations from a given env step on:
a figure of the second half of training that one lucky or unlucky final evaluation does not
set; ``KEY 1.5M-2M`` (``curve``) the mean of KEY over the evaluations in one of ``windows``
equal parts of the budget: a learning curve as a few numbers, which says whether it still rises.
With ``by_seed`` every run is its own row. Incomplete runs are left out and returned, for the
caller to list.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from pathlib import Path

from riskq.analysis.markdown import markdown_table
from riskq.analysis.runs import (
    Incomplete,
    read_config,
    read_json_object,
    risk_of,
    split_by_status,
)
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


def steps_text(steps: float) -> str:
    """Env steps in a column name: 0, 999, 1.5k, 25k, 0.5M, 2M."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if steps >= size / 2 and (unit == "M" or steps >= size):
            return f"{steps / size:.3g}{unit}"
    return f"{steps:.0f}"


def window_evaluations(
    rows: list[dict], keys: tuple[str, ...], *, t_max: int, windows: int
) -> dict[str, float]:
    """{"KEY a-b": the mean of KEY over the ``rows`` at env steps in [a, b)}, for ``windows``
    equal parts [a, b) of [0, t_max); the last part also takes the evaluations at or after
    ``t_max`` (a run stops at the end of the episode that crosses it)."""
    bounds = [t_max * i / windows for i in range(windows + 1)]  # [windows + 1]
    means = {}
    for key in keys:
        for i, (low, high) in enumerate(itertools.pairwise(bounds)):
            last = i == windows - 1
            values = [
                row[key]
                for row in rows
                if key in row and row["step"] >= low and (last or row["step"] < high)
            ]
            span = f"{steps_text(low)}-{steps_text(high)}"
            if not values:
                raise UsageError(f"--curve {key}: no evaluation of {key} in {span}")
            means[f"{key} {span}"] = sum(values) / len(values)
    return means


def curve_columns(runs: list[tuple[dict, dict]], curve: tuple[str, ...]) -> list[str]:
    """The ``window_evaluations`` names of the ``curve`` keys in the runs' summaries, in order
    (runs of different budgets add their own windows)."""
    names = (name for _, summary in runs for name in summary)
    return list(dict.fromkeys(name for name in names if name.rpartition(" ")[0] in curve))


def load_runs(
    sweep_dir: Path,
    *,
    best: tuple[str, ...] = (),
    late: tuple[str, ...] = (),
    late_from: int = 0,
    curve: tuple[str, ...] = (),
    windows: int = 4,
) -> tuple[list[tuple[dict, dict]], list[Incomplete]]:
    """(config, summary) of every complete run under ``sweep_dir``, and (run dir, status) of
    the incomplete ones. ``best``, ``late``, ``curve``: keys whose best evaluation, mean
    evaluation from env step ``late_from`` on, or mean evaluation in each of ``windows`` parts
    of the budget joins the summary."""
    complete, incomplete = split_by_status(sweep_dir)
    runs = []
    for run_dir in complete:
        summary = read_json_object(run_dir / SUMMARY_FILE)
        config = read_config(run_dir)
        if best or late or curve:
            rows = evaluation_rows(run_dir)
            summary |= best_evaluations(rows, best) | late_evaluations(rows, late, start=late_from)
            summary |= window_evaluations(rows, curve, t_max=config["t_max"], windows=windows)
        runs.append((config, summary))
    return runs, incomplete


def value_text(value) -> str:
    """One run's value: a number to 3 significant digits, anything else as it is."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return f"{value:.3g}" if is_number else str(value)


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


def table(runs: list[tuple[dict, dict]], keys: list[str], *, by_seed: bool = False) -> str:
    """One Markdown row per (env, algo, risk): the number of seeds, then a ``cell`` per key
    over the runs whose summary holds it. ``by_seed``: one row per run, with its seed and its
    own values."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for config, summary in runs:
        group = (config["env"]["label"], config["algo"]["name"], risk_of(config))
        groups[(*group, int(config["seed"])) if by_seed else group].append(summary)
    rows = []
    for group, summaries in sorted(groups.items()):
        values = [[s[key] for s in summaries if key in s] for key in keys]
        if by_seed:  # one run (or several of one seed): their own values
            cells = [value_text(v[0]) if len(v) == 1 else cell(v) for v in values]
            rows.append([*group[:3], str(group[3]), *cells])
        else:
            rows.append([*group, str(len(summaries)), *map(cell, values)])
    header = ["env", "algo", "risk", "seed" if by_seed else "seeds", *keys]
    return markdown_table(header, rows)
