"""Length buckets: one sampled batch as a few sub-batches of similar episode length.

A batch of episodes is padded to its longest episode, so on SMAX, where one time-out in 32
episodes (100 steps) pads a batch whose median episode is 45 steps, about half of every update's
arithmetic is padding. The update's loss is a mean over valid steps, and episodes enter it
independently (each has its own recurrent state and its own TD(lambda) targets), so it can be
computed on sub-batches, each padded only to its own longest episode, and recombined with
weights proportional to their valid steps: the same loss and gradient, less padding.

Shapes: B episodes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["length_buckets"]


def bucket_cost(lengths: np.ndarray, start: int, end: int, step_overhead: float) -> float:
    """Padded work of the sub-batch of sorted ``lengths[start:end]``: its rows plus the fixed
    per-time-step cost (``step_overhead``, in episodes), times its longest episode."""
    return (end - start + step_overhead) * float(lengths[end - 1])


def length_buckets(
    lengths: np.ndarray, *, max_buckets: int, step_overhead: float = 4.0
) -> list[np.ndarray]:
    """Episode indices in at most ``max_buckets`` groups of similar length, cheapest first.

    lengths: valid steps of each episode [B]. The groups are contiguous runs of the episodes
    sorted by length, chosen by dynamic programming to minimise the total padded work
    (``bucket_cost``). Returns index arrays (into ``lengths``) whose union is every episode.
    """
    order = np.argsort(lengths, kind="stable")  # [B]
    ordered = np.asarray(lengths)[order]
    size = len(ordered)
    buckets = max(1, min(max_buckets, size))
    # best[k][j]: least cost of the first j sorted episodes in k groups; cut: its last group start
    best = np.full((buckets + 1, size + 1), np.inf)
    cut = np.zeros((buckets + 1, size + 1), dtype=np.int64)
    best[0][0] = 0.0
    for groups in range(1, buckets + 1):
        for end in range(1, size + 1):
            for start in range(groups - 1, end):
                cost = best[groups - 1][start] + bucket_cost(ordered, start, end, step_overhead)
                if cost < best[groups][end]:
                    best[groups][end], cut[groups][end] = cost, start
    groups = int(np.argmin(best[1:, size])) + 1  # fewer groups when more do not pay
    bounds, end = [], size
    for k in range(groups, 0, -1):
        start = int(cut[k][end])
        bounds.append((start, end))
        end = start
    return [order[start:end] for start, end in reversed(bounds)]
