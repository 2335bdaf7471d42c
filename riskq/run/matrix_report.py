"""Known-answer report for matrix games: the greedy joint action against the exact optimum."""

from __future__ import annotations

from collections import Counter

import numpy as np

from envs.base import BatchedEnv
from riskq.model.risk import RiskMeasure
from riskq.run.runner import Rollout, Runner


def greedy_joint_action(rollout: Rollout) -> tuple[int, ...]:
    """The most frequent first-step joint action of a greedy rollout."""
    first = rollout.batch.actions[:, 0].cpu().numpy()  # [E, N]
    return Counter(map(tuple, first.tolist())).most_common(1)[0][0]


def initial_greedy_report(runner: Runner, *, seed: int) -> dict:
    """For matrix games, ``{"initial_greedy_action": "(S, S)"}``: the greedy joint action of the
    runner's network as it is now, i.e. untrained when called before any update (the summary
    then shows that training moved it); an empty dict for every other env.

    One greedy evaluation rollout on ``seed``: it draws no random numbers besides re-seeding
    the runner's env, so it leaves training and later evaluations unchanged.
    """
    if not runner.env.has_exact_optimum:
        return {}
    rollout = runner.collect(epsilon=0.0, seed=seed)
    return {"initial_greedy_action": runner.env.action_label(greedy_joint_action(rollout))}


def matrix_summary(env: BatchedEnv, rollout: Rollout, risk_fn: RiskMeasure) -> dict:
    """For envs with an exact return distribution (matrix games), the summary.json entries
    ``greedy_action``, ``optimal_action``, ``optimal_value`` and ``greedy_is_optimal``;
    an empty dict for every other env."""
    if not env.has_exact_optimum:
        return {}
    greedy = greedy_joint_action(rollout)
    optimal, value = env.exact_optimum(risk_fn)
    values = env.exact_risk_values(risk_fn)  # [A_1, ..., A_n]
    greedy_value = float(values[greedy])
    return {
        "greedy_action": env.action_label(greedy),
        "optimal_action": env.action_label(tuple(optimal)),
        "greedy_value": greedy_value,
        "optimal_value": float(value),
        "greedy_is_optimal": bool(np.isclose(greedy_value, value, atol=1e-6)),
    }
