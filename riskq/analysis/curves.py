"""Run directories as learning curves: which directories are runs (``config.yaml`` next to a
``tb/`` folder of TensorBoard events), their scalars as one long frame, and the curve of each
(env, algorithm, risk measure) group: runs aligned on one grid, optionally smoothed, their mean
with a 95% bootstrap CI (rliable). ``riskq.analysis.plot`` draws and tabulates them.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from riskq.analysis.runs import config_value
from riskq.run.labels import risk_label, risk_level
from riskq.run.run_dir import run_status

try:
    import pandas as pd
except ModuleNotFoundError:  # the [plot] extra is missing: riskq-plot says so in one line
    pd = None

PROG = "riskq-plot"
GROUP_KEYS = ["env", "algo", "risk"]


class PlotError(Exception):
    """A problem with the user's input, printed by ``riskq-plot`` as one line (exit code 2)."""


@dataclass(frozen=True)
class Run:
    """One training run: its directory, the config keys that group it, and its status."""

    path: Path
    env: str
    algo: str
    risk: str
    seed: int | None
    status: str = "complete"  # riskq.run.run_dir.run_status


def _config_value(config: dict, key: str, *, path: Path):
    """``config['a']['b']`` for ``key='a.b'``; a missing key is a one-line PlotError."""
    value = config_value(config, key)
    if value is None:
        raise PlotError(f"{path} lacks {key} (is it a riskq-train config?)")
    return value


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


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of each point and the ``window - 1`` before it (fewer at the start): [X] -> [X].
    ``window=1`` returns the values as they are."""
    sums = np.cumsum(np.concatenate([[0.0], values]))  # [X + 1]
    ends = np.arange(1, len(values) + 1)  # [X]
    starts = np.maximum(ends - window, 0)  # [X]
    return (sums[ends] - sums[starts]) / (ends - starts)  # [X]


def aggregate(
    scalars: pd.DataFrame,
    *,
    metric: str,
    x: str = "env_steps",
    n_boot: int = 2000,
    seed: int = 0,
    smooth: int = 1,
) -> pd.DataFrame:
    """Learning curve per (env, algo, risk): columns env, algo, risk, n_seeds, x, mean, ci_*.
    ``smooth`` > 1 first replaces each run's values by their trailing mean over that many
    logged points (``trailing_mean``), then aggregates over runs."""
    rows = scalars[scalars.tag == metric]
    frames = []
    for keys, group in rows.groupby(GROUP_KEYS, sort=False):
        runs = (run.sort_values(x) for _, run in group.groupby("run"))
        curves = [
            (run[x].to_numpy(float), trailing_mean(run.value.to_numpy(float), smooth))
            for run in runs
        ]
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
