"""RIGM on a trained model: the checker of ``riskq.rigm`` over the states met in evaluation.

    riskq-rigm run=results/runs/<...>/seed0_<time> episodes=32

Loads a run (config and checkpoint), plays greedy evaluation episodes, and at every valid step
feeds the trained agents' quantiles of every action and the trained mixer to ``check_rigm``:
does each agent's own risk-greedy action also maximise psi of the trained joint distribution?
Shapes: B episodes, T steps, N agents, A actions, K quantiles, M = valid (b, t) pairs.
"""

from __future__ import annotations

import torch

from riskq.experiment import EVAL_SEED_OFFSET
from riskq.learner import agent_inputs
from riskq.rigm import check_rigm


def trained_rigm_rows(*, run: str, episodes: int, tol: float, risks: list) -> list[dict]:
    """One row per risk measure, the run's own first, then each of ``risks``."""
    from riskq.evaluate import load_run  # local: evaluate imports the whole trainer

    cfg, exp, _ = load_run(run, episodes=episodes)
    rollout = exp.eval_runner.collect(epsilon=0.0, seed=cfg.seed + EVAL_SEED_OFFSET)
    batch = rollout.batch
    with torch.no_grad():
        quantiles = exp.learner.agent(agent_inputs(batch, exp.env.info.n_actions))
    valid = batch.mask  # [B, T]
    agent_quantiles = quantiles[:, :-1][valid]  # [M, N, A, K]
    state = batch.state[:, :-1][valid]  # [M, S]
    features = batch.agent_features[:, :-1][valid]  # [M, N, F]
    features = features if features.shape[-1] > 0 else None
    rows = []
    for risk_fn in [exp.risk_fn, *risks]:
        result = check_rigm(
            mixer=exp.learner.mixer,
            risk_fn=risk_fn,
            agent_quantiles=agent_quantiles,
            state=state,
            agent_features=features,
            tol=tol,
        )
        rows.append(
            {
                "mixer": cfg.algo.mixer,
                "risk": risk_fn.name,
                "param": risk_fn.param,
                "label": risk_fn.label,
                "run": str(run),
                **result.summary(),
            }
        )
    return rows
