"""Risk values of MACN's scripted route policies: which route is optimal under which measure.

For every combination of per-agent routes (short along the cliff edge, or the detour two
rows up; CONVENTIONS.md section 8.3) it reports the mean, CVaR(0.2), Wang(0.75) and VaR(0.2) of
the undiscounted team return twice: from ``--episodes`` Monte-Carlo episodes of the batched
env itself (with the share of episodes that had a cliff fall), and from the exact return
distribution, computed by dynamic programming over (cell, falls) with the env's own move
functions. Then the optimal combination per measure. Prints JSON. The figures in
envs/macn.py and configs/env/macn.yaml come from

    .venv/bin/python scripts/macn_optima.py --episodes 100000 --seed 0
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs.macn import ROUTE_LANES, CliffNavigation, move_agents, route_actions, route_returns
from riskq.model.risk import empirical_risk

MEASURES = {  # report key -> (risk measure name, parameter)
    "mean": ("neutral", None),
    "cvar_0.2": ("cvar", 0.2),
    "wang_0.75": ("wang", 0.75),
    "var_0.2": ("var", 0.2),
}


def default_env_args() -> dict[str, object]:
    """The CliffNavigation constructor defaults, without num_envs and seed."""
    parameters = inspect.signature(CliffNavigation.__init__).parameters.values()
    skip = {"self", "num_envs", "seed"}
    return {p.name: p.default for p in parameters if p.name not in skip}


def agent_return_distribution(
    env: CliffNavigation, route: str, *, agent: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact distribution of one agent's undiscounted return on a scripted route: [J], [J].

    Propagates the probability of (cell, falls so far) step by step up to the step limit
    through the env's own ``route_actions`` and ``move_agents``.
    """
    height, width, limit = env.height, env.width, env.info.episode_limit
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    grid = np.stack([rows, cols], axis=-1).reshape(-1, 1, 2)  # [C, 1, 2]
    actions = route_actions(
        grid, goals=env.goals[[agent]], lane_rows=height - 1 - ROUTE_LANES[route]
    )  # [C, 1]
    transitions = []  # (next cell index [C], fell [C], probability) without and with a slip
    for slipped, prob in ((False, 1 - env.slip_prob), (True, env.slip_prob)):
        slips = np.full(actions.shape, slipped)  # [C, 1]
        cells, fell = move_agents(
            grid, actions, slips, starts=env.starts[[agent]], height=height, width=width
        )  # [C, 1, 2], [C, 1]
        transitions.append((cells[:, 0, 0] * width + cells[:, 0, 1], fell[:, 0], prob))
    start = env.starts[agent, 0] * width + env.starts[agent, 1]
    goal = env.goals[agent, 0] * width + env.goals[agent, 1]
    potential = env.potential(grid)[:, agent]  # [C]
    shaping = potential - potential[start]  # [C] telescoped shaping reward, start -> cell
    mass = np.zeros((height * width, limit + 1))  # [C, falls]
    mass[start, 0] = 1.0
    falls = np.arange(limit + 1)  # [falls]
    values, probs = [], []
    for step in range(1, limit + 1):
        moved = np.zeros_like(mass)  # [C, falls]
        for next_cell, fell, prob in transitions:
            shifted = np.where(fell[:, None], np.roll(mass, 1, axis=1), mass)  # [C, falls]
            np.add.at(moved, next_cell, prob * shifted)
        probs.append(moved[goal].copy())  # [falls] arrive at this step: the agent is done
        arrival = -env.step_cost * step - env.cliff_penalty * falls + env.goal_bonus
        values.append(arrival + shaping[goal])  # [falls]
        moved[goal] = 0.0
        mass = moved
    truncated = -env.step_cost * limit - env.cliff_penalty * falls + shaping[:, None]  # [C, falls]
    values.append(truncated.ravel())
    probs.append(mass.ravel())
    return np.concatenate(values), np.concatenate(probs)  # [J], [J]


def team_return_distribution(
    env: CliffNavigation, routes: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Exact team return distribution (sorted values [J], probs [J]) of one route per agent.

    Agents never interact, so the team return is a sum of independent agent returns.
    """
    values, probs = np.zeros(1), np.ones(1)  # [1]
    for agent, route in enumerate(routes):
        agent_values, agent_probs = agent_return_distribution(env, route, agent=agent)
        values = (values[:, None] + agent_values).ravel()  # [J * J_agent]
        probs = (probs[:, None] * agent_probs).ravel()  # [J * J_agent]
    keep = probs > 0
    values, index = np.unique(np.round(values[keep], 9), return_inverse=True)  # [J]
    return values, np.bincount(index, weights=probs[keep])  # [J], [J]


def exact_risk(
    values: np.ndarray, probs: np.ndarray, name: str, param: float | None, *, n_atoms: int
) -> float:
    """psi of a discrete distribution (sorted values [J], probs [J]) through n_atoms atoms.

    Atom k is the quantile at (k + 0.5)/n_atoms, so distortion measures are exact to within
    (max - min)/n_atoms and VaR is exact unless a jump of the CDF lies within 1/n_atoms.
    """
    levels = (np.arange(n_atoms) + 0.5) / n_atoms  # [K]
    cdf = np.cumsum(probs) / probs.sum()  # [J]
    atoms = values[np.minimum(np.searchsorted(cdf, levels), len(values) - 1)]  # [K]
    return float(empirical_risk(atoms, name, param))


def route_table(
    env_args: dict[str, object], *, episodes: int, seed: int, n_atoms: int
) -> dict[str, dict[str, dict[str, float]]]:
    """Risk values of every route combination: label -> {"monte_carlo", "exact"} -> values."""
    env = CliffNavigation(num_envs=episodes, **env_args)
    table = {}
    for routes in itertools.product(sorted(ROUTE_LANES, reverse=True), repeat=env.info.n_agents):
        returns, metrics = route_returns(env, routes, seed=seed)  # [E], name -> [E]
        sampled = {key: float(empirical_risk(returns, *spec)) for key, spec in MEASURES.items()}
        sampled["p_fall"] = float(np.mean(metrics["cliff_falls"] > 0))
        values, probs = team_return_distribution(env, routes)  # [J], [J]
        exact = {
            key: exact_risk(values, probs, *spec, n_atoms=n_atoms) for key, spec in MEASURES.items()
        }
        exact["mean"] = float(values @ probs)
        table["+".join(routes)] = {"monte_carlo": sampled, "exact": exact}
    return table


def optima(table: dict[str, dict[str, dict[str, float]]], *, source: str) -> dict[str, str]:
    """The best route combination under every measure of MEASURES, by ``source`` values."""
    return {key: max(table, key=lambda label: table[label][source][key]) for key in MEASURES}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--atoms", type=int, default=1_000_000, help="atoms of exact_risk")
    args = parser.parse_args(argv)
    env_args = default_env_args()
    table = route_table(env_args, episodes=args.episodes, seed=args.seed, n_atoms=args.atoms)
    rounded = {
        label: {source: {k: round(v, 4) for k, v in row.items()} for source, row in rows.items()}
        for label, rows in table.items()
    }
    report = {
        "env_args": env_args,
        "episodes": args.episodes,
        "seed": args.seed,
        "routes": rounded,
        "optima": {source: optima(table, source=source) for source in ("monte_carlo", "exact")},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
