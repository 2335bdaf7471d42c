"""rliable aggregation (riskq/analysis/aggregate.py) on inputs with known answers."""

import numpy as np
import pytest
from rliable import metrics

from riskq.analysis import aggregate


def test_iqm_is_the_mean_of_the_middle_half():
    scores = np.array([8.0, 1.0, 7.0, 2.0, 6.0, 3.0, 5.0, 4.0])  # middle four: 3, 4, 5, 6
    assert aggregate.iqm(scores[:, None]) == pytest.approx(4.5)
    assert aggregate.iqm(scores.reshape(4, 2)) == pytest.approx(4.5)  # pooled over tasks
    outlier = np.array([0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1000.0])[:, None]
    assert aggregate.iqm(outlier) == pytest.approx(1.0)  # both tails trimmed
    assert aggregate.mean(outlier) == pytest.approx(1006.0 / 8)


def test_bootstrap_interval_of_three_runs_is_their_range():
    # P(all three resamples pick the same run) = 1/27 > 2.5%: the 95% CI is exactly [1, 3]
    estimate = aggregate.interval_estimates({"a": np.array([1.0, 2.0, 3.0])}, statistic="mean")
    assert estimate["a"] == aggregate.Interval(point=2.0, low=1.0, high=3.0)


def test_interval_contains_the_point_and_narrows_with_more_runs():
    few = np.random.default_rng(0).normal(size=(5, 1))
    many = np.tile(few, (16, 1))  # the same empirical distribution from 16x the runs
    estimates = aggregate.interval_estimates({"few": few, "many": many})
    for name, scores in (("few", few), ("many", many)):
        interval = estimates[name]
        assert interval.point == pytest.approx(aggregate.iqm(scores))
        assert interval.low <= interval.point <= interval.high
    width = {name: e.high - e.low for name, e in estimates.items()}
    assert width["many"] < 0.5 * width["few"]  # width ~ 1 / sqrt(runs): 4x narrower


def test_intervals_are_seeded_and_leave_the_global_generator_alone():
    scores = {"a": np.random.default_rng(1).normal(size=(6, 3))}
    np.random.seed(7)
    expected_draw = np.random.rand()
    np.random.seed(7)
    first = aggregate.interval_estimates(scores, seed=3)
    assert np.random.rand() == expected_draw
    assert aggregate.interval_estimates(scores, seed=3) == first
    assert aggregate.interval_estimates(scores, seed=4) != first


def test_curve_intervals_per_point():
    values = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])  # [R=3, X=2]
    mean, low, high = aggregate.curve_intervals(values)
    np.testing.assert_allclose(mean, [2.0, 20.0])
    np.testing.assert_allclose(low, [1.0, 10.0])
    np.testing.assert_allclose(high, [3.0, 30.0])
    mean, low, high = aggregate.curve_intervals(np.array([[4.0, -1.0]]))  # one run: no spread
    np.testing.assert_allclose([mean, low, high], [[4.0, -1.0]] * 3)


def test_probability_of_improvement_known_values():
    x = np.array([1.0, 2.0, 3.0, 4.0])[:, None]
    assert aggregate.probability_of_improvement(x + 10.0, x) == 1.0  # dominates
    assert aggregate.probability_of_improvement(x, x + 10.0) == 0.0
    assert aggregate.probability_of_improvement(x, x) == 0.5  # identical
    # x = (3, 4) beats y = (1, 2, 3.5) in 5 of 6 pairs
    assert aggregate.probability_of_improvement(
        np.array([[3.0], [4.0]]), np.array([[1.0], [2.0], [3.5]])
    ) == pytest.approx(5 / 6)


def test_pairwise_improvement_equals_rliables_metric():
    rng = np.random.default_rng(2)
    for runs_x, runs_y, tasks in ((5, 5, 1), (3, 7, 4), (10, 2, 2)):
        x = rng.integers(0, 4, size=(runs_x, tasks)).astype(float)  # ties on purpose
        y = rng.integers(0, 4, size=(runs_y, tasks)).astype(float)
        expected = metrics.probability_of_improvement(x, y)
        assert aggregate.pairwise_improvement(x, y) == pytest.approx(expected)


def test_improvement_estimates():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    estimates = aggregate.improvement_estimates({"dominates": (x + 10.0, x), "same": (x, x)})
    assert estimates["dominates"] == aggregate.Interval(1.0, 1.0, 1.0)
    same = estimates["same"]
    assert same.point == 0.5 and same.low < 0.5 < same.high


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="valid choices: iqm, mean"):
        aggregate.interval_estimates({"a": np.ones(3)}, statistic="median")
    with pytest.raises(ValueError, match="'a'"):
        aggregate.interval_estimates({"a": np.ones((0, 1))})
