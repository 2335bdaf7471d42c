"""Learning curves and final-performance tables of riskq training runs (``riskq-plot``,
``riskq.cli.plot``, is the command).

Reads every run directory (``config.yaml`` next to a ``tb/`` folder of TensorBoard events)
under the given paths (``riskq.analysis.curves``), groups runs by (env label, algorithm, risk
measure) and reports the mean over seeds with a 95% bootstrap confidence interval of that mean
(rliable), as the learning curves of RiskQ (Shen et al., NeurIPS 2023, arXiv:2311.01753)
report results over seeds.

Incomplete runs (no ``summary.json``, or a status other than ``complete``: still running,
killed, failed) are drawn in the curves but left out of the final-performance table; a warning
line (and a line under the table) lists them. ``riskq-table`` does the same.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from riskq.analysis.curves import (
    GROUP_KEYS,
    PROG,
    PlotError,
    aggregate,
    bootstrap_ci,
    find_runs,
    load_scalars,
)
from riskq.analysis.published import published
from riskq.run.run_dir import incomplete_note

try:
    import pandas as pd
except ModuleNotFoundError:  # the [plot] extra is missing: main() says so in one line
    pd = None

DEFAULT_METRICS = ("eval/return_mean", "eval/return_cvar_0.2")
PLOT_EXTRAS = ("pandas", "tbparse", "matplotlib", "rliable")  # pip install 'riskq[plot]'
# Fixed colour per algorithm (configs/algo/*.yaml names) so every figure agrees.
ALGO_COLOURS = {
    "riskq": "#d62728",
    "vdn": "#1f77b4",
    "qmix": "#2ca02c",
    "ddn": "#9467bd",
    "dmix": "#ff7f0e",
    "iqr": "#8c564b",
    "risk_mix": "#e377c2",
    "quantile_mix": "#17becf",
}
FALLBACK_COLOURS = ("#7f7f7f", "#bcbd22", "#393b79", "#637939", "#843c39", "#7b4173")
LINE_STYLES = ("-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 3)))
X_AXES = {"env_steps": "environment steps", "wall_minutes": "wall-clock time (minutes)"}
FIXED_LABELS = {
    "eval/return_mean": "evaluation return (team)",
    "train/return_mean": "training return (team, per episode)",
    "train/loss": "training loss (quantile Huber)",
    "train/epsilon": "exploration epsilon",
    "train/psi_chosen": "risk value of chosen actions",
    "train/env_steps_per_s": "throughput (environment steps / s)",
}


@dataclass(frozen=True)
class PlotReport:
    """What ``run_plot`` wrote: the files and the final table (markdown; its last line names
    the incomplete runs left out of it)."""

    written: list[Path]
    markdown: str


def metric_label(metric: str) -> str:
    """Y-axis label with units for a logged scalar tag."""
    if metric in FIXED_LABELS:
        return FIXED_LABELS[metric]
    match = re.fullmatch(r"(eval|train)/return_(c?var)_([0-9.]+)", metric)
    if match:
        phase, measure, alpha = match.groups()
        name = "CVaR" if measure == "cvar" else "VaR"
        return f"{name}$_{{{alpha}}}$ of {'evaluation' if phase == 'eval' else 'training'} return"
    phase, _, name = metric.rpartition("/")
    where = {"eval": "evaluation", "train": "training"}.get(phase, phase)
    return f"{name.replace('_', ' ')} (mean per {where} episode)" if where else name


def algo_colour(algo: str) -> str:
    """The fixed colour of an algorithm; unknown names get a stable fallback colour."""
    fallback = FALLBACK_COLOURS[zlib.crc32(algo.encode()) % len(FALLBACK_COLOURS)]
    return ALGO_COLOURS.get(algo, fallback)


def _group_order(frame: pd.DataFrame) -> list[tuple]:
    """(env, algo, risk) keys sorted with known algorithms in ALGO_COLOURS order."""
    rank = {algo: i for i, algo in enumerate(ALGO_COLOURS)}
    keys = frame[GROUP_KEYS].drop_duplicates().itertuples(index=False, name=None)
    return sorted(keys, key=lambda k: (k[0], rank.get(k[1], len(rank)), k[1], k[2]))


def _in_group(frame: pd.DataFrame, key: tuple) -> pd.DataFrame:
    """The rows of ``frame`` whose (env, algo, risk) equal ``key``."""
    mask = np.logical_and.reduce([frame[k] == v for k, v in zip(GROUP_KEYS, key, strict=True)])
    return frame[mask]


def _seeds_text(counts: set[int]) -> str:
    """``3 seeds`` (``1 seed``), or ``2-3 seeds`` when groups differ."""
    low, high = min(counts), max(counts)
    if low == high:
        return "1 seed" if low == 1 else f"{low} seeds"
    return f"{low}-{high} seeds"


def _draw_published(ax, *, env: str, metric: str) -> None:
    """The published figures of ``env``'s ``metric`` as grey level lines, each labelled with
    its method, value, budget and source (``riskq.analysis.published``)."""
    for figure in published(env, metric):
        ax.axhline(figure.value, color="0.35", linestyle=(0, (1, 2)), linewidth=1)
        ax.annotate(figure.label(), xy=(0.99, figure.value), xycoords=("axes fraction", "data"),
                    fontsize="x-small", color="0.25", ha="right", va="bottom")  # fmt: skip


def _draw_env(
    fig,
    *,
    env: str,
    curves: dict,
    x: str,
    styles: dict,
    with_published: bool = True,
    smooth: int = 1,
) -> None:
    """One subplot per metric logged in ``env``: mean lines with shaded 95% bootstrap CIs, and
    (``with_published``) the published figures of that env and metric as level lines."""
    curves = {metric: frame[frame.env == env] for metric, frame in curves.items()}
    curves = {metric: frame for metric, frame in curves.items() if not frame.empty}
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    counts = set()
    for ax, (metric, frame) in zip(axes, curves.items(), strict=True):
        for key in _group_order(frame):
            line = _in_group(frame, key)
            colour, style = algo_colour(key[1]), styles[key[2]]
            label = f"{key[1]}, {key[2]}"
            ax.plot(line[x], line["mean"], color=colour, linestyle=style, label=label)
            ax.fill_between(line[x], line.ci_low, line.ci_high, color=colour, alpha=0.2, lw=0)
            counts.add(int(line.n_seeds.iloc[0]))
        if with_published:
            _draw_published(ax, env=env, metric=metric)
        ax.set(xlabel=X_AXES[x], ylabel=metric_label(metric), title=metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small", title="algorithm, risk measure")
    smoothed = f"; each run's trailing mean over {smooth} logged points" if smooth > 1 else ""
    seeds = _seeds_text(counts or {0})
    fig.suptitle(f"{env} (mean and 95% bootstrap CI over {seeds}{smoothed})")


def plot_curves(
    curves: dict,
    *,
    out_dir: Path,
    x: str = "env_steps",
    with_published: bool = True,
    smooth: int = 1,
) -> list[Path]:
    """One PNG and one SVG per env, one subplot per metric it logs; returns the paths written.

    curves: metric -> frame of ``aggregate`` (metrics in subplot order).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    envs = sorted(set().union(*(frame.env for frame in curves.values())))
    risks = sorted(set().union(*(frame.risk for frame in curves.values())))
    styles = {risk: LINE_STYLES[i % len(LINE_STYLES)] for i, risk in enumerate(risks)}
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for env in envs:
        n_metrics = sum(bool((frame.env == env).any()) for frame in curves.values())
        fig = Figure(figsize=(5.5 * n_metrics, 4.2), layout="constrained")
        FigureCanvasAgg(fig)
        options = dict(x=x, styles=styles, with_published=with_published, smooth=smooth)
        _draw_env(fig, env=env, curves=curves, **options)
        stem = re.sub(r"[^\w.-]+", "_", env)
        for suffix in (".png", ".svg"):
            path = out_dir / f"{stem}{suffix}"
            fig.savefig(path, dpi=150, metadata={"Date": None} if suffix == ".svg" else None)
            written.append(path)
    return written


def _final_stats(values: np.ndarray, *, metric: str, n_boot: int, seed: int) -> dict:
    """``<metric>_mean/_ci_low/_ci_high`` of one group's final values [R] (NaN when none)."""
    names = [f"{metric}_{stat}" for stat in ("mean", "ci_low", "ci_high")]
    if len(values) == 0:
        return dict.fromkeys(names, float("nan"))
    stats = bootstrap_ci(values[:, None], n_boot=n_boot, seed=seed)  # 3 x [1]
    return {name: float(stat[0]) for name, stat in zip(names, stats, strict=True)}


def final_table(
    scalars: pd.DataFrame, *, metrics=DEFAULT_METRICS, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """One row per (env, algo, risk): n_seeds and, per metric, the mean over runs of each
    run's last logged value with its 95% bootstrap CI (``<metric>_mean/_ci_low/_ci_high``)."""
    last = (
        scalars.sort_values("env_steps", kind="stable").groupby(["run", "tag"], sort=False).tail(1)
    )
    runs = scalars.drop_duplicates("run")
    rows = []
    for key in _group_order(runs):
        group = _in_group(last, key)
        row = dict(zip(GROUP_KEYS, key, strict=True), n_seeds=group.run.nunique())
        for metric in metrics:
            values = group[group.tag == metric].value.to_numpy(float)  # [R]
            row |= _final_stats(values, metric=metric, n_boot=n_boot, seed=seed)
        rows.append(row)
    return pd.DataFrame(rows)


def table_markdown(table: pd.DataFrame, *, metrics=DEFAULT_METRICS, note: str = "") -> str:
    """The final table as Markdown: ``mean [95% CI low, high]`` per metric; ``note`` below."""
    header = ["env", "algo", "risk", "seeds", *(f"{m} (mean [95% CI])" for m in metrics)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.to_dict("records"):
        cells = [row["env"], row["algo"], row["risk"], str(row["n_seeds"])]
        for m in metrics:
            mean, low, high = (row[f"{m}_{s}"] for s in ("mean", "ci_low", "ci_high"))
            cells.append("n/a" if np.isnan(mean) else f"{mean:.2f} [{low:.2f}, {high:.2f}]")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" + (f"\n{note}\n" if note else "")


def _check_metrics(scalars: pd.DataFrame, metrics) -> None:
    """One-line error for a metric that no run logged."""
    logged = set(scalars.tag)
    missing = [m for m in metrics if m not in logged]
    if missing:
        logged_text = ", ".join(sorted(logged))
        raise PlotError(f"metric {missing[0]} is not logged by any run (logged: {logged_text})")


def run_plot(
    paths: list[str],
    *,
    out: Path | None = None,
    metrics=DEFAULT_METRICS,
    x: str = "env_steps",
    n_boot: int = 2000,
    with_published: bool = True,
    smooth: int = 1,
) -> PlotReport:
    """Find, load, aggregate, plot and tabulate the runs under ``paths``; the figures (with
    the published figures of their envs, unless ``with_published`` is false; curves smoothed
    over ``smooth`` logged points) and the final table (never smoothed) go to ``out``
    (default: ``<first path>/plots``)."""
    for option, value in (("--smooth", smooth), ("--n-boot", n_boot)):
        if value < 1:
            raise PlotError(f"{option} must be a whole number >= 1, got {value}")
    missing = [name for name in PLOT_EXTRAS if importlib.util.find_spec(name) is None]
    if missing:
        raise PlotError(f"{missing[0]} is not installed (pip install 'riskq[plot]')")
    runs = find_runs(paths)
    scalars = load_scalars(runs)
    _check_metrics(scalars, metrics)
    out_dir = out or Path(paths[0]) / "plots"
    curves = {m: aggregate(scalars, metric=m, x=x, n_boot=n_boot, smooth=smooth) for m in metrics}
    written = plot_curves(
        curves, out_dir=out_dir, x=x, with_published=with_published, smooth=smooth
    )
    incomplete = [(run.path, run.status) for run in runs if run.status != "complete"]
    note = ""
    if incomplete:
        note = incomplete_note(incomplete, where="the final table (curves still drawn)")
        print(f"{PROG}: warning: {note}", file=sys.stderr)
    complete = scalars[~scalars.run.isin([str(path) for path, _ in incomplete])]
    table = final_table(complete, metrics=metrics, n_boot=n_boot)
    markdown = table_markdown(table, metrics=metrics, note=note)
    (out_dir / "final_performance.md").write_text(markdown)
    table.to_csv(out_dir / "final_performance.csv", index=False)
    written += [out_dir / "final_performance.md", out_dir / "final_performance.csv"]
    return PlotReport(written=written, markdown=markdown)
