"""Aggregate performance over runs with rliable: interquartile mean, stratified bootstrap
confidence intervals and the probability of improvement (Agarwal et al., "Deep Reinforcement
Learning at the Edge of the Statistical Precipice", NeurIPS 2021).

Scores are ``dict[str, np.ndarray]``: one [R, M] array per algorithm (R runs, M tasks), as
rliable takes them. The stratified bootstrap resamples runs with replacement within each task;
for one task it is the ordinary percentile bootstrap over seeds. rliable draws its resamples
from NumPy's global generator, so every estimate here seeds it and restores it afterwards:
the same scores and seed always give the same interval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from rliable import library, metrics

DEFAULT_REPS = 2_000  # bootstrap resamples; rliable's own default, 50 000, is for publication
CONFIDENCE = 0.95


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of scores [R, M] over all runs and tasks: the mean of the middle 50%
    (25% trimmed from each end, ``floor(R * M / 4)`` values per side)."""
    return float(metrics.aggregate_iqm(np.asarray(scores, dtype=float)))


def mean(scores: np.ndarray) -> float:
    """Mean of scores [R, M] over runs, averaged over tasks."""
    return float(metrics.aggregate_mean(np.asarray(scores, dtype=float)))


AGGREGATES: dict[str, Callable[[np.ndarray], float]] = {"iqm": iqm, "mean": mean}


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap confidence interval [low, high]."""

    point: float
    low: float
    high: float


@contextmanager
def _seeded_global_rng(seed: int) -> Iterator[None]:
    """Seed NumPy's global generator (which rliable resamples with) and restore it on exit."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _as_scores(name: str, values) -> np.ndarray:
    """Scores [R, M] as float; a 1-D array [R] is one task. Empty or 3-D input is a ValueError."""
    scores = np.asarray(values, dtype=float)
    scores = scores[:, None] if scores.ndim == 1 else scores  # [R, M]
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(
            f"scores of '{name}' must be a non-empty [runs, tasks] array, got shape "
            f"{np.shape(values)}"
        )
    return scores


def interval_estimates(
    scores: Mapping[str, np.ndarray],
    *,
    statistic: str = "iqm",
    reps: int = DEFAULT_REPS,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> dict[str, Interval]:
    """``statistic`` (a key of AGGREGATES) of every algorithm's scores [R, M] with its
    stratified bootstrap percentile CI, via ``rliable.library.get_interval_estimates``."""
    if statistic not in AGGREGATES:
        raise ValueError(f"statistic '{statistic}' unknown; valid choices: {', '.join(AGGREGATES)}")
    score_dict = {name: _as_scores(name, values) for name, values in scores.items()}
    aggregate = AGGREGATES[statistic]
    with _seeded_global_rng(seed):
        points, cis = library.get_interval_estimates(
            score_dict,
            lambda s: np.array([aggregate(s)]),
            reps=reps,
            confidence_interval_size=confidence,
        )
    return {name: _interval(points[name], cis[name]) for name in score_dict}


def _interval(point, ci) -> Interval:
    """rliable's point estimate [1] and CI [2, 1] (low row, high row) as an Interval."""
    return Interval(float(np.ravel(point)[0]), float(ci[0, 0]), float(ci[1, 0]))


def curve_intervals(
    values: np.ndarray, *, reps: int = DEFAULT_REPS, confidence: float = CONFIDENCE, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over runs and stratified bootstrap CI at every point of a curve.

    values: [R, X] (R runs, X points, each point a stratum) -> (mean, ci_low, ci_high), each [X].
    """
    values = _as_scores("curve", values)  # [R, X]
    with _seeded_global_rng(seed):
        points, cis = library.get_interval_estimates(
            {"curve": values},
            lambda s: s.mean(axis=0),  # [X]
            reps=reps,
            confidence_interval_size=confidence,
        )
    return points["curve"], cis["curve"][0], cis["curve"][1]  # [X] each


def probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
    """P(X > Y): the chance that a random run of X scores above a random run of Y on a task
    (ties count half), averaged over tasks; rliable's metric (Mann-Whitney U / (R_x R_y)).
    Scores [R_x, M], [R_y, M]."""
    return float(
        metrics.probability_of_improvement(_as_scores("x", scores_x), _as_scores("y", scores_y))
    )


def pairwise_improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
    """The same P(X > Y) as ``probability_of_improvement`` by counting all run pairs at once:
    rliable's metric calls SciPy's Mann-Whitney test per task, too slow inside thousands of
    bootstrap resamples. Scores [R_x, M], [R_y, M]."""
    diff = scores_x[:, None, :] - scores_y[None, :, :]  # [R_x, R_y, M]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def improvement_estimates(
    pairs: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    reps: int = DEFAULT_REPS,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> dict[str, Interval]:
    """Probability of improvement of X over Y for every named pair (scores_x, scores_y), with a
    CI from resampling each algorithm's runs independently (rliable's stratified independent
    bootstrap)."""
    pair_dict = {
        name: [_as_scores(f"{name} x", x), _as_scores(f"{name} y", y)]
        for name, (x, y) in pairs.items()
    }
    with _seeded_global_rng(seed):
        points, cis = library.get_interval_estimates(
            pair_dict,
            lambda x, y: np.array([pairwise_improvement(x, y)]),
            reps=reps,
            confidence_interval_size=confidence,
        )
    return {name: _interval(points[name], cis[name]) for name in pair_dict}
