"""Trace one greedy evaluation episode of a saved run: what the agents see, do and value.

    python scripts/greedy_trace.py results/sweeps/macf_300k/risk-wang_seed-0 --every 8
    python scripts/greedy_trace.py RUN --values 3 9      # psi and mean per action at steps 3, 9
    python scripts/greedy_trace.py RUN --mixing          # the mixer's slope per agent, per step

Per printed step: the global state, the joint action and the team reward. With ``--values``,
for each agent at those steps: psi (the run's risk measure) and the mean of every action's
quantiles, the numbers its greedy choice is made from. This is how the results pages' diagnoses of
stalled runs were made (cars that hover short of the target on MACF, agents that wait at the
left end of the grid on MACN). With ``--mixing``, per printed step the mixer's local weight of
each agent (``slope``: d mean(theta_jt) / d (a shift of agent i's chosen-action quantiles),
kappa_i(s) for RiskQ, the local monotone slope for QMIX and DMIX), its output for agents
that value 0 (``intercept``: c(s) for RiskQ) and its output (``joint``, the mean of the joint
quantiles), in the learner's units (rewards times ``algo.reward_scale``); independent
learners have no mixer.
Shapes: T steps, N agents, A actions, K quantiles, S state.
"""

from __future__ import annotations

import argparse
import sys

import torch

from riskq.cli.errors import exit_with_error, is_reported
from riskq.model.kernels import sort_quantiles
from riskq.model.learner import agent_inputs
from riskq.run.evaluate import load_run
from riskq.run.experiment import EVAL_SEED_OFFSET


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run directory (or a checkpoint inside one)")
    parser.add_argument("--every", type=int, default=1, help="print every n-th step")
    parser.add_argument("--values", type=int, nargs="*", default=[], help="steps to value")
    parser.add_argument("--seed", type=int, help="evaluation seed (default: the run's)")
    parser.add_argument("--mixing", action="store_true", help="print the mixer's slopes")
    return parser.parse_args(argv)


@torch.no_grad()
def action_values(exp, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """psi and mean of every action's sorted quantiles, [T+1, N, A] each, for episode 0."""
    learner = exp.learner
    features = learner.agent.features(agent_inputs(batch, learner.n_actions))  # [B, T+1, N, H]
    quantiles = sort_quantiles(learner.agent.quantiles(features[:1]))  # [1, T+1, N, A, K]
    return exp.risk_fn(quantiles)[0], quantiles.mean(-1)[0]


def mixing(exp, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """slope [T, N], intercept [T] and joint value (mean of the joint quantiles) [T] of the
    mixer along episode 0's chosen actions (module docstring); the mixer must have a joint
    output (``mixer.joint``)."""
    learner = exp.learner
    steps = slice(0, batch.actions.shape[1])
    with torch.no_grad():
        features = learner.agent.features(agent_inputs(batch, learner.n_actions))
        quantiles = learner.agent.quantiles(features[:1, steps])  # [1, T, N, A, K]
    index = batch.actions[:1, steps, :, None, None].expand(*quantiles.shape[:3], 1, -1)
    chosen = sort_quantiles(quantiles.gather(-2, index).squeeze(-2))  # [1, T, N, K], as learnt
    chosen.requires_grad_(True)
    joint = learner.mix(learner.mixer, chosen, batch, steps)  # [1, T, K']
    (slope,) = torch.autograd.grad(joint.mean(-1).sum(), chosen)  # [1, T, N, K]
    with torch.no_grad():
        intercept = learner.mix(learner.mixer, torch.zeros_like(chosen), batch, steps)
    return slope.sum(-1)[0], intercept.mean(-1)[0], joint.detach().mean(-1)[0]


def rounded(values: torch.Tensor) -> list[float]:
    return [round(float(value), 3) for value in values.flatten()]


def main(argv=None) -> None:
    args = parse_args(argv)
    try:  # a missing, refused or mismatched checkpoint is one line, exit 2
        cfg, exp, run_dir = load_run(args.run, episodes=1)
    except Exception as error:
        if not is_reported(error):
            raise
        exit_with_error("greedy_trace", error)
    if args.mixing and not exp.learner.mixer.joint:
        sys.exit(f"greedy_trace: error: --mixing: algo {cfg.algo.name} has no joint mixer")
    seed = args.seed if args.seed is not None else cfg.seed + EVAL_SEED_OFFSET
    batch = exp.eval_runner.collect(epsilon=0.0, seed=seed).batch
    steps = int(batch.mask[0].sum())
    print(f"{run_dir}: {exp.risk_fn.label}, evaluation seed {seed}, {steps} steps")
    for t in range(0, steps, max(args.every, 1)):
        state = rounded(batch.state[0, t])
        print(f"t={t:3d} state={state} actions={batch.actions[0, t].tolist()} "
              f"reward={float(batch.reward[0, t]):.3f}")  # fmt: skip
    if args.mixing:
        slope, intercept, joint = mixing(exp, batch)  # [T, N], [T], [T]
        for t in range(0, steps, max(args.every, 1)):
            print(f"t={t:3d} slope={rounded(slope[t])} intercept={float(intercept[t]):.3f} "
                  f"joint={float(joint[t]):.3f}")  # fmt: skip
    total = float((batch.reward[0] * batch.mask[0]).sum())
    print(f"return {total:.3f}")
    psi, mean = action_values(exp, batch)  # [T+1, N, A] each
    for t in args.values:
        for agent in range(psi.shape[1]):
            print(f"t={t} agent {agent}: psi {rounded(psi[t, agent])}")
            print(f"t={t} agent {agent}: mean {rounded(mean[t, agent])}")


if __name__ == "__main__":
    main()
