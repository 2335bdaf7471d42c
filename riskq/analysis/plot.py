"""Learning curves and final-performance tables of riskq training runs (``riskq-plot``,
``riskq.cli.plot``, is the command).

Reads every run directory (``config.yaml`` next to a ``tb/`` folder of TensorBoard events)
under the given paths, groups runs by (env label, algorithm, risk measure) and reports the mean
over seeds with a 95% bootstrap confidence interval of that mean (rliable), as the learning
curves of RiskQ (Shen et al., NeurIPS 2023, arXiv:2311.01753) report results over seeds.

Incomplete runs (no ``summary.json``, or a status other than ``complete``: still running,
killed, failed) are drawn in the curves but left out of the final-performance table; a warning
line (and a line under the table) lists them. ``riskq-table`` does the same.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from riskq.analysis.published import published
from riskq.run.labels import risk_label, risk_level
from riskq.run.run_dir import incomplete_note, run_status

try:
    import pandas as pd
except ModuleNotFoundError:  # the [plot] extra is missing: main() says so in one line
    pd = None

PROG = "riskq-plot"
DEFAULT_METRICS = ("eval/return_mean", "eval/return_cvar_0.2")
GROUP_KEYS = ["env", "algo", "risk"]
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


class PlotError(Exception):
    """A problem with the user's input, printed by ``riskq-plot`` as one line (exit code 2)."""


@dataclass(frozen=True)
class PlotReport:
    """What ``run_plot`` wrote: the files and the final table (markdown; its last line names
    the incomplete runs left out of it)."""

    written: list[Path]
    markdown: str


@dataclass(frozen=True)
class Run:
    """One training run: its directory, the config keys that group it, and its status."""

    path: Path
    env: str
    algo: str
    risk: str
    seed: int | None
    status: str = "complete"  # riskq.run.run_dir.run_status


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


def _config_value(config: dict, key: str, *, path: Path):
    """``config['a']['b']`` for ``key='a.b'``; a missing key is a one-line PlotError."""
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise PlotError(f"{path} lacks {key} (is it a riskq-train config?)")
        node = node[part]
    return node


def read_run(config_path: Path) -> Run:
    """The Run described by one resolved ``config.yaml``."""
    try:
        config = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError as err:
        raise PlotError(f"{config_path} is not valid YAML ({str(err).splitlines()[0]})") from None
    get = functools.partial(_config_value, config, path=config_path)
    env, algo, name = str(get("env.label")), str(get("algo.name")), str(get("risk.name"))
    try:
        level = risk_level({**get("risk"), "param": get("risk.param")})
    except ValueError as err:
        raise PlotError(f"{config_path}: {err}") from None
    return Run(
        path=config_path.parent,
        env=env,
        algo=algo,
        risk=risk_label(name, level),
        seed=config.get("seed") if isinstance(config, dict) else None,
        status=run_status(config_path.parent),
    )


def find_runs(paths) -> list[Run]:
    """Every run directory (``config.yaml`` next to ``tb/``) at any depth under ``paths``."""
    config_paths = set()
    for path in map(Path, paths):
        if not path.exists():
            raise PlotError(f"{path} does not exist")
        found = path.rglob("config.yaml") if path.is_dir() else []
        config_paths |= {c.resolve() for c in found if (c.parent / "tb").is_dir()}
    if not config_paths:
        where = ", ".join(map(str, paths)) or "(no paths given)"
        raise PlotError(f"no runs found under {where} (a run directory holds config.yaml and tb/)")
    return [read_run(config_path) for config_path in sorted(config_paths)]


def _read_events(run: Run) -> pd.DataFrame:
    """Long frame (tag, env_steps, wall_minutes, value) of one run's scalars."""
    from tbparse import SummaryReader

    from riskq.run.logger import EVENT_FILE_PREFIX, whole_event_records

    for path in sorted((run.path / "tb").glob(f"{EVENT_FILE_PREFIX}*")):
        whole_event_records(path)  # a partial last record: a warning (tbparse leaves it out)
    reader = SummaryReader(
        str(run.path / "tb"), event_types={"scalars"}, extra_columns={"wall_time"}
    )
    frame = reader.scalars
    if frame.empty:
        return frame
    # A resumed run may log a step twice: the later event wins.
    frame = frame.sort_values("wall_time").drop_duplicates(["tag", "step"], keep="last")
    frame = frame.assign(wall_minutes=(frame.wall_time - frame.wall_time.min()) / 60.0)
    return frame.rename(columns={"step": "env_steps"}).drop(columns="wall_time")


def load_scalars(runs: list[Run]) -> pd.DataFrame:
    """All runs' scalars as one long frame: env, algo, risk, seed, run, tag, x columns, value."""
    frames = []
    for run in runs:
        frame = _read_events(run)
        if frame.empty:
            print(f"{PROG}: warning: {run.path} has no scalars yet, skipped", file=sys.stderr)
            continue
        keys = {"env": run.env, "algo": run.algo, "risk": run.risk, "seed": run.seed}
        frames.append(frame.assign(**keys, run=str(run.path)))
    if not frames:
        raise PlotError("none of the runs found has logged any scalar yet")
    scalars = pd.concat(frames, ignore_index=True)
    return scalars.sort_values(["run", "tag", "env_steps"], ignore_index=True)


def bootstrap_ci(values, *, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0):
    """Mean over runs and rliable's stratified percentile-bootstrap CI of that mean.

    values: [R, X] (R runs, X points) -> (mean, ci_low, ci_high), each [X]. The resampling is
    seeded, so the same values always give the same interval (riskq/analysis/aggregate.py).
    """
    from riskq.analysis.aggregate import curve_intervals  # rliable: the [plot] extra

    return curve_intervals(values, reps=n_boot, confidence=confidence, seed=seed)


def align(curves: list[tuple[np.ndarray, np.ndarray]], *, max_points: int = 500):
    """Interpolate each run's (x, y) curve onto one grid: [X] grid and [R, X] values.

    The grid is the sparsest run's x values clipped into the range that every run covers, so
    runs logged at the same steps are used as they are, and runs whose evaluations drift by a
    few steps keep all their points; at most ``max_points`` of them are kept.
    """
    start = max(x[0] for x, _ in curves)
    stop = min(x[-1] for x, _ in curves)
    if start > stop:
        raise PlotError(f"its runs cover no common range (latest start {start:g} > end {stop:g})")
    sparsest = min((x for x, _ in curves), key=len)
    grid = np.unique(np.clip(sparsest, start, stop))  # [X]
    if len(grid) > max_points:
        grid = grid[np.linspace(0, len(grid) - 1, max_points).round().astype(int)]
    values = np.stack([np.interp(grid, x, y) for x, y in curves])  # [R, X]
    return grid, values


def aggregate(
    scalars: pd.DataFrame, *, metric: str, x: str = "env_steps", n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Learning curve per (env, algo, risk): columns env, algo, risk, n_seeds, x, mean, ci_*."""
    rows = scalars[scalars.tag == metric]
    frames = []
    for keys, group in rows.groupby(GROUP_KEYS, sort=False):
        runs = (run.sort_values(x) for _, run in group.groupby("run"))
        curves = [(run[x].to_numpy(float), run.value.to_numpy(float)) for run in runs]
        try:
            grid, values = align(curves)
        except PlotError as err:
            raise PlotError(f"{metric} of {', '.join(map(str, keys))}: {err}") from None
        mean, ci_low, ci_high = bootstrap_ci(values, n_boot=n_boot, seed=seed)
        columns = dict(zip(GROUP_KEYS, keys, strict=True), n_seeds=len(curves))
        stats = {x: grid, "mean": mean, "ci_low": ci_low, "ci_high": ci_high}
        frames.append(pd.DataFrame({**columns, **stats}))
    empty = pd.DataFrame(columns=[*GROUP_KEYS, "n_seeds", x, "mean", "ci_low", "ci_high"])
    return pd.concat(frames, ignore_index=True) if frames else empty


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
    fig, *, env: str, curves: dict, x: str, styles: dict, with_published: bool = True
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
    fig.suptitle(f"{env} (mean and 95% bootstrap CI over {_seeds_text(counts or {0})})")


def plot_curves(
    curves: dict, *, out_dir: Path, x: str = "env_steps", with_published: bool = True
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
        _draw_env(fig, env=env, curves=curves, x=x, styles=styles, with_published=with_published)
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
) -> PlotReport:
    """Find, load, aggregate, plot and tabulate the runs under ``paths``; the figures (with
    the published figures of their envs, unless ``with_published`` is false) and the final
    table go to ``out`` (default: ``<first path>/plots``)."""
    missing = [name for name in PLOT_EXTRAS if importlib.util.find_spec(name) is None]
    if missing:
        raise PlotError(f"{missing[0]} is not installed (pip install 'riskq[plot]')")
    runs = find_runs(paths)
    scalars = load_scalars(runs)
    _check_metrics(scalars, metrics)
    out_dir = out or Path(paths[0]) / "plots"
    curves = {m: aggregate(scalars, metric=m, x=x, n_boot=n_boot) for m in metrics}
    written = plot_curves(curves, out_dir=out_dir, x=x, with_published=with_published)
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
