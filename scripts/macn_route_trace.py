"""Why a MACN run takes or loses the detour: its lane choice traced over training.

    python scripts/macn_route_trace.py risk=wang seed=3 --every 2000 --out trace.json

Re-trains one ``env=macn`` run exactly as ``riskq-train`` does (the same config, seeds and
training iterations; any overrides of riskq-train may follow) and, every ``--every`` env steps,
looks at the lane choice: the state after the first step, where both agents stand on the short
lane's first cell, one step above their start. There RIGHT walks the short lane along the cliff
and UP climbs to the detour. Per trace point it prints

- the greedy joint action there, and psi (the run's risk measure) of RIGHT and UP per agent;
- the joint return distribution the mixer fits for (RIGHT, RIGHT) and (UP, UP), its mean and
  risk value, beside the exact one: discounted team returns of the scripted route pairs from
  that state (``--mc`` Monte-Carlo episodes of the env itself, the same discount);
- the greedy policy's detour share and falls per episode on 64 fixed evaluation episodes.

Evaluation uses an env and random stream of its own, so the training run is the one
``riskq-train`` with the same arguments would produce (its final figures can be compared with
the run's summary.json). Shapes: E episodes, N agents, A actions, K quantiles.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs.macn import DOWN, RIGHT, UP, CliffNavigation, route_actions
from riskq.cli.compose import compose_config
from riskq.model.kernels import sort_quantiles
from riskq.model.learner import agent_inputs
from riskq.run.experiment import EVAL_SEED_OFFSET, build_experiment, evaluate, make_env
from riskq.run.runner import Runner
from riskq.run.trainer import Counters, iteration

PROBE_EPISODES = 64
PROBE_SEED = 123_456
ROUTES = {"short": RIGHT, "detour": UP}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="riskq-train overrides (env=macn is set)")
    parser.add_argument("--every", type=int, default=2000, help="env steps between trace points")
    parser.add_argument("--mc", type=int, default=100_000, help="Monte-Carlo episodes (exact)")
    parser.add_argument("--out", type=Path, help="write the trace as JSON here")
    return parser.parse_args(argv)


def lane_start(env: CliffNavigation) -> tuple[int, int]:
    """The short lane's first cell: one row above the start cells (row, col)."""
    return env.height - 2, 0


def exact_returns(env: CliffNavigation, lane: str, *, gamma: float, seed: int) -> np.ndarray:
    """Discounted team returns [M] of both agents on route ``lane`` from the lane-start state:
    episodes of the env's own copies, counted from step 1 where both agents stand there."""
    lane_rows = np.full(env.info.n_agents, env.height - 1 - (1 if lane == "short" else 2))
    env.reset(seed=seed)
    returns, discount, step = np.zeros(env.num_envs), np.ones(env.num_envs), 0
    at_lane_start = None
    while not env.done.all():
        actions = route_actions(env.cells, goals=env.goals, lane_rows=lane_rows)  # [E, N]
        reward = env.step(actions).reward  # [E]
        if step == 0:
            at_lane_start = (env.cells == np.array(lane_start(env))).all(axis=(1, 2))  # [E]
        else:
            returns += discount * reward
            discount *= gamma
        step += 1
    return returns[at_lane_start]


def cell_of(obs: torch.Tensor, *, height: int, width: int) -> tuple[int, int]:
    """An agent's cell from its observation (own one-hot cell first)."""
    index = int(obs[: height * width].argmax())
    return divmod(index, width)


@torch.no_grad()
def lane_choice(env: CliffNavigation, exp, batch) -> dict | None:
    """psi per agent of RIGHT and UP at step 1 of the first probe episode in which both agents
    stand on the lane start, and the mixer's joint distributions of (R, R) and (U, U)."""
    risk_fn = exp.risk_fn
    start = lane_start(env)
    for episode in range(batch.obs.shape[0]):
        cells = [
            cell_of(batch.obs[episode, 1, i], height=env.height, width=env.width)
            for i in range(env.info.n_agents)
        ]
        if bool(batch.mask[episode, 1]) and all(cell == start for cell in cells):
            break
    else:
        return None
    learner = exp.learner
    one = batch.__class__(**{k: v[episode : episode + 1] for k, v in batch.tensors().items()})
    features = learner.agent.features(agent_inputs(one, learner.n_actions))  # [1, T+1, N, H]
    quantiles = sort_quantiles(learner.agent.quantiles(features[:, 1:2]))  # [1, 1, N, A, K]
    psi = risk_fn(quantiles)[0, 0]  # [N, A]
    record = {
        "greedy": [int(a) for a in psi.argmax(-1)],
        "psi": {lane: [float(v) for v in psi[:, action]] for lane, action in ROUTES.items()},
    }
    for lane, action in ROUTES.items():
        chosen = quantiles[..., action, :]  # [1, 1, N, K]
        joint = sort_quantiles(learner.mix(learner.mixer, chosen, one, slice(1, 2)))  # [1,1,K']
        if joint.dim() == 4:  # independent learners: no joint distribution
            joint = joint.sum(-2)
        record[f"joint_{lane}"] = {
            "mean": float(joint.mean()),
            "risk": float(risk_fn(joint)[0, 0]),
            "quantiles": [round(float(q), 3) for q in joint[0, 0]],
        }
    return record


def greedy_runner(exp, cfg, *, episodes: int, seed: int) -> Runner:
    """A greedy evaluation runner on an env of its own (the run's random streams stay as
    they are; greedy actions draw nothing that changes them)."""
    env = make_env(cfg, num_envs=episodes, seed=seed)
    rng = np.random.default_rng(seed)
    device = torch.device(cfg.device)
    return Runner(env=env, agent=exp.learner.agent, risk_fn=exp.risk_fn, rng=rng, device=device)


def probe(exp, cfg) -> tuple[dict | None, dict]:
    """The lane choice and greedy evaluation figures of the current networks."""
    runner = greedy_runner(exp, cfg, episodes=PROBE_EPISODES, seed=PROBE_SEED)
    rollout, stats = evaluate(runner, seed=PROBE_SEED)
    figures = {k: stats[f"eval/{k}"] for k in ("detour", "cliff_falls", "return_mean")}
    return lane_choice(runner.env, exp, rollout.batch), figures


def exact_table(cfg, risk_fn, *, episodes: int) -> dict:
    env = CliffNavigation(num_envs=episodes, seed=0, **cfg.env.args)
    table = {}
    for lane in ROUTES:
        returns = torch.as_tensor(exact_returns(env, lane, gamma=cfg.algo.gamma, seed=1))
        ordered = returns.sort().values  # [M]
        taus = (torch.arange(cfg.algo.agent.n_quantiles) + 0.5) / cfg.algo.agent.n_quantiles
        picks = (taus * len(ordered)).long().clamp(max=len(ordered) - 1)
        table[lane] = {
            "mean": float(returns.mean()),
            "risk": float(risk_fn(ordered[None])[0]),
            "quantiles": [round(float(q), 3) for q in ordered[picks]],
            "episodes": len(returns),
        }
    return table


def print_point(t_env: int, choice: dict | None, figures: dict) -> None:
    if choice is None:
        print(f"{t_env:7d} (no probe episode stands on the lane start at step 1)")
        return
    psi = choice["psi"]
    gap = [r - u for r, u in zip(psi["short"], psi["detour"], strict=True)]
    short, detour = choice["joint_short"], choice["joint_detour"]
    names = "".join({RIGHT: "R", UP: "U", DOWN: "D"}.get(a, ".") for a in choice["greedy"])
    print(
        f"{t_env:7d} {names:>6}  {' '.join(f'{g:+.3f}' for g in gap):>24}"
        f"  {short['risk']:+.2f} / {detour['risk']:+.2f}"
        f"   {short['mean']:+.2f} / {detour['mean']:+.2f}"
        f"   {figures['detour']:.2f} {figures['cliff_falls']:.3f}"
    )


def trace_training(exp, cfg, *, every: int) -> list[dict]:
    """Train as riskq-train does, probing the lane choice every ``every`` env steps and at
    the end."""
    counters, trace, next_probe = Counters(), [], 0
    while True:
        if counters.t_env >= next_probe or counters.t_env >= cfg.t_max:
            next_probe += every
            choice, figures = probe(exp, cfg)
            trace.append({"t_env": counters.t_env, "lane_choice": choice, **figures})
            print_point(counters.t_env, choice, figures)
        if counters.t_env >= cfg.t_max:
            return trace
        iteration(exp, cfg, counters)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = compose_config(["env=macn", "progress=false", *args.overrides])
    exp = build_experiment(cfg, with_buffer=True)
    exact = exact_table(cfg, exp.risk_fn, episodes=args.mc)
    label = exp.risk_fn.label
    print(f"macn seed {cfg.seed} {label}: exact from the lane start, {label} of the discounted")
    for lane, row in exact.items():
        print(f"  {lane:6s} mean {row['mean']:.3f}  risk {row['risk']:.3f} ({row['episodes']} eps)")
    print(
        f"{'t_env':>7} greedy  psi(R)-psi(U) per agent  fit risk R / U   fit mean R / U"
        "   detour falls"
    )
    trace = trace_training(exp, cfg, every=args.every)
    seed = cfg.seed + EVAL_SEED_OFFSET  # the run's own final evaluation, as in summary.json
    final = evaluate(greedy_runner(exp, cfg, episodes=cfg.eval_episodes, seed=seed), seed=seed)[1]
    shown = {k: round(final[f"eval/{k}"], 4) for k in ("detour", "cliff_falls", "return_mean")}
    print(f"final evaluation as in the run's summary.json: {shown}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"overrides": args.overrides, "seed": cfg.seed, "exact": exact}
        payload |= {"trace": trace, "final": shown}
        args.out.write_text(json.dumps(payload, indent=1) + "\n")
        print(f"trace written to {args.out}")


if __name__ == "__main__":
    main()
