"""RIGM on a trained model: the checker of ``riskq.analysis.rigm`` over the states met in
evaluation.

    riskq-rigm run=results/runs/<...>/seed0_<time> episodes=32

Loads a run (config and checkpoint), plays greedy evaluation episodes, and at every valid step
feeds the trained agents' quantiles of every action and the trained mixer to ``check_rigm``:
does each agent's own risk-greedy action also maximise psi of the trained joint distribution?
Progress goes to stderr (one line per stage and per risk measure). For expected-value mixers
with one quantile per action (VDN, QMIX) the check is vacuous and is not run.
Shapes: B episodes, T steps, N agents, A actions, K quantiles, M = valid (b, t) pairs.
"""

from __future__ import annotations

import sys

import torch

from riskq.analysis.rigm import RigmConfig, check_rigm, validate
from riskq.model.learner import agent_inputs
from riskq.model.risk import RiskMeasure
from riskq.run.evaluate import load_run
from riskq.run.experiment import EVAL_SEED_OFFSET


def say(message: str) -> None:
    print(f"riskq-rigm: {message}", file=sys.stderr, flush=True)


def unique_measures(measures: list[RiskMeasure]) -> list[RiskMeasure]:
    """``measures`` without repeats of the same (name, level), first occurrence kept."""
    seen, kept = set(), []
    for measure in measures:
        if (measure.name, measure.param) not in seen:
            seen.add((measure.name, measure.param))
            kept.append(measure)
    return kept


def vacuous_reason(*, algo: str, mixer, n_quantiles: int) -> str | None:
    """Why the check cannot fail for this model (VDN, QMIX: one quantile per action and an
    expected-value joint output), or None when it is informative."""
    if mixer.distributional or n_quantiles > 1:
        return None
    return (
        f"the RIGM check is vacuous for {algo}: with one quantile per action every risk measure "
        f"is the plain value, and its monotone expected-value mixer makes the agents' greedy "
        f"actions maximise the joint value by construction; nothing was checked"
    )


def trained_rigm_rows(
    *, run: str, episodes: int, tol: float, risks: list
) -> tuple[list[dict], str | None]:
    """One row per risk measure, the run's own first, then each of ``risks`` not equal to it;
    or no rows and the reason when the check is vacuous."""
    say(f"loading {run}")
    cfg, exp, _ = load_run(run, episodes=episodes)
    reason = vacuous_reason(
        algo=cfg.algo.name, mixer=exp.learner.mixer, n_quantiles=cfg.algo.agent.n_quantiles
    )
    if reason is not None:
        return [], reason
    say(f"playing {episodes} greedy evaluation episodes of {cfg.env.label}")
    rollout = exp.eval_runner.collect(epsilon=0.0, seed=cfg.seed + EVAL_SEED_OFFSET)
    batch = rollout.batch
    with torch.no_grad():
        quantiles = exp.learner.agent(agent_inputs(batch, exp.env.info.n_actions))
    valid = batch.mask  # [B, T]
    agent_quantiles = quantiles[:, :-1][valid]  # [M, N, A, K]
    state = batch.state[:, :-1][valid]  # [M, S]
    features = batch.agent_features[:, :-1][valid]  # [M, N, F]
    features = features if features.shape[-1] > 0 else None
    measures = unique_measures([exp.risk_fn, *risks])
    rows = []
    for index, risk_fn in enumerate(measures, start=1):
        say(f"checking {risk_fn.label} on {len(state)} states ({index}/{len(measures)})")
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
    return rows, None


def run_trained(cfg: RigmConfig) -> tuple[list[dict], str | None]:
    """RIGM of a trained run (``run=``): under its own risk measure, then each of ``risks``
    not equal to it; no rows and the reason when the check is vacuous (VDN, QMIX)."""
    return trained_rigm_rows(run=cfg.run, episodes=cfg.episodes, tol=cfg.tol, risks=validate(cfg))
