"""riskq.model.buckets: episodes grouped by length for the least padded work."""

import itertools

import numpy as np
import pytest

from riskq.model.buckets import bucket_cost, length_buckets


def brute_force_cost(lengths: np.ndarray, max_buckets: int, overhead: float) -> float:
    """The least padded work over every split of the sorted lengths into <= max_buckets runs."""
    ordered, size = np.sort(lengths), len(lengths)
    best = np.inf
    for groups in range(1, max_buckets + 1):
        for cuts in itertools.combinations(range(1, size), groups - 1):
            bounds = zip((0, *cuts), (*cuts, size), strict=True)
            best = min(best, sum(bucket_cost(ordered, a, b, overhead) for a, b in bounds))
    return best


def padded_work(lengths: np.ndarray, groups: list[np.ndarray], overhead: float) -> float:
    return sum((len(g) + overhead) * lengths[g].max() for g in groups)


@pytest.mark.parametrize("max_buckets", [1, 2, 3, 4])
@pytest.mark.parametrize("overhead", [0.0, 4.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_buckets_reach_the_least_padded_work(max_buckets, overhead, seed):
    lengths = np.random.default_rng(seed).integers(1, 101, size=9)
    groups = length_buckets(lengths, max_buckets=max_buckets, step_overhead=overhead)
    assert len(groups) <= max_buckets
    assert sorted(np.concatenate(groups).tolist()) == list(range(9))
    best = brute_force_cost(lengths, max_buckets, overhead)
    assert padded_work(lengths, groups, overhead) == pytest.approx(best)


def test_one_time_out_gets_its_own_bucket():
    lengths = np.array([30, 100, 31, 29, 33, 28, 32, 30])
    groups = length_buckets(lengths, max_buckets=2, step_overhead=0.0)
    assert [sorted(g.tolist()) for g in groups] == [[0, 2, 3, 4, 5, 6, 7], [1]]


def test_equal_lengths_stay_one_bucket():
    groups = length_buckets(np.full(6, 40), max_buckets=4, step_overhead=1.0)
    assert [g.tolist() for g in groups] == [list(range(6))]
