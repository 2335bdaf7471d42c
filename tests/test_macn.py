"""MACN (toy-games.md section 3): rules by hand, and the documented route optima."""

import inspect
from pathlib import Path

import numpy as np
import pytest
import yaml

import envs
from envs.macn import (
    DOWN,
    LEFT,
    MOVES,
    RIGHT,
    STAY,
    UP,
    CliffNavigation,
    move_agents,
    route_actions,
    route_returns,
)
from riskq.risk import empirical_risk
from scripts.macn_optima import exact_risk, team_return_distribution

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "env" / "macn.yaml"
PAIRS = {"short": ("short", "short"), "mixed": ("short", "detour"), "detour": ("detour", "detour")}
MEASURES = {"mean": ("neutral", None), "cvar": ("cvar", 0.2), "wang": ("wang", 0.75)}


def _env(num_envs=1, **kwargs):
    env = CliffNavigation(num_envs=num_envs, seed=0, **kwargs)
    env.reset()
    return env


def _run(env, actions_per_step):
    """Team rewards [T, E] and the last step result of fixed joint actions [N] per step."""
    rewards, result = [], None
    for joint in actions_per_step:
        result = env.step(np.broadcast_to(joint, (env.num_envs, len(joint))))
        rewards.append(result.reward)
    return np.stack(rewards), result


def test_registered_and_sized():
    env = envs.make_batched_env("macn", num_envs=4, seed=0)
    assert isinstance(env, CliffNavigation)
    info = env.info
    assert (info.n_agents, info.n_actions, info.obs_dim, info.state_dim) == (2, 5, 6, 6)
    assert (info.agent_feature_dim, info.episode_limit) == (3, 30)
    obs = env.reset()
    assert obs.obs.shape == (4, 2, 6) and obs.state.shape == (4, 6)
    assert obs.agent_features.shape == (4, 2, 3) and obs.avail_actions.all()
    np.testing.assert_array_equal(env.starts, [[2, 0], [2, 4]])
    np.testing.assert_array_equal(env.goals, [[2, 4], [2, 0]])


def test_observation_is_own_slice_then_the_others():
    env = _env()
    env.cells[0] = [[1, 2], [0, 4]]
    env.reached[0] = [False, True]
    obs = env._observe()
    own = [[0.5, 0.5, 0.0], [0.0, 1.0, 1.0]]  # (row / 2, col / 4, reached)
    np.testing.assert_allclose(obs.agent_features[0], own)
    np.testing.assert_allclose(obs.state[0], own[0] + own[1])
    np.testing.assert_allclose(obs.obs[0], [own[0] + own[1], own[1] + own[0]])


def test_moves_walls_slips_and_cliff():
    cells = np.array([[[0, 0], [1, 1], [1, 1], [2, 0], [1, 3]]])  # [E=1, N=5, 2]
    actions = np.array([[UP, LEFT, RIGHT, RIGHT, STAY]])
    slipped = np.array([[False, False, False, False, True]])
    starts = np.array([[9, 9]] * 5)  # a marker: fallen agents land here
    new, fell = move_agents(cells, actions, slipped, starts=starts, height=3, width=5)
    np.testing.assert_array_equal(new[0], [[0, 0], [1, 0], [1, 2], [9, 9], [9, 9]])
    np.testing.assert_array_equal(fell[0], [False, False, False, True, True])
    assert MOVES[DOWN].tolist() == [1, 0]


@pytest.mark.parametrize(
    ("routes", "team_return", "detour"),
    [(PAIRS["short"], -12.0, 0.0), (PAIRS["mixed"], -14.0, 0.5), (PAIRS["detour"], -16.0, 1.0)],
)
def test_routes_without_wind(routes, team_return, detour):
    env = CliffNavigation(num_envs=3, slip_prob=0.0)
    returns, metrics = route_returns(env, routes, seed=0)
    np.testing.assert_array_equal(returns, team_return)  # W + 1 = 6 or W + 3 = 8 steps each
    np.testing.assert_array_equal(metrics["detour"], detour)
    np.testing.assert_array_equal(metrics["reached"], 2)
    np.testing.assert_array_equal(metrics["cliff_falls"], 0)
    np.testing.assert_array_equal(metrics["steps"], 8 if detour else 6)


def test_falling_costs_the_penalty_and_restarts():
    env = _env(slip_prob=0.0)
    rewards, result = _run(env, [[RIGHT, LEFT]])  # both step straight into the cliff
    assert rewards[0, 0] == -2 * (1 + 7)
    np.testing.assert_array_equal(env.cells[0], env.starts)
    assert env.episode_metrics()["cliff_falls"][0] == 2 and not result.terminated[0]


def test_reached_agent_stops_paying_and_time_limit_truncates():
    env = _env(slip_prob=0.0)
    short_east = [UP, RIGHT, RIGHT, RIGHT, RIGHT, DOWN]
    rewards, _ = _run(env, [[move, STAY] for move in short_east])
    assert rewards[:, 0].tolist() == [-2.0] * 6 and env.reached[0].tolist() == [True, False]
    rewards, result = _run(env, [[UP, STAY]] * 24)  # agent 0 is frozen at its goal
    assert rewards[:, 0].tolist() == [-1.0] * 24
    np.testing.assert_array_equal(env.cells[0, 0], [2, 4])
    assert result.truncated[0] and not result.terminated[0]
    assert env.episode_metrics()["steps"][0] == 30


def test_goal_bonus_is_paid_once_on_arrival():
    env = _env(slip_prob=0.0, goal_bonus=5.0)
    short_east = [UP, RIGHT, RIGHT, RIGHT, RIGHT, DOWN, STAY, STAY]
    rewards, _ = _run(env, [[move, STAY] for move in short_east])
    assert rewards[:, 0].tolist() == [-2.0] * 5 + [-2.0 + 5.0, -1.0, -1.0]


def test_slip_frequency_matches_slip_prob():
    copies, slip = 20_000, 0.3
    env = _env(num_envs=copies, slip_prob=slip)
    env.step(np.full((copies, 2), UP))  # a slip at the start hits the wall: the agent stays
    stayed = (env.cells[..., 0] == 2).mean()
    assert abs(stayed - slip) <= 6 * np.sqrt(slip * (1 - slip) / (2 * copies))


def test_seeded_episodes_are_reproducible():
    env = CliffNavigation(num_envs=256)
    first, _ = route_returns(env, PAIRS["short"], seed=5)
    again, _ = route_returns(env, PAIRS["short"], seed=5)
    other, _ = route_returns(env, PAIRS["short"], seed=6)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def _value_iteration(env, *, gamma, sweeps=200):
    """Optimal expected action values Q [H*W, A] of agent 0 alone (agents never interact)."""
    height, width, slip = env.height, env.width, env.slip_prob
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    cells = np.stack([rows, cols], axis=-1).reshape(-1, 1, 1, 2)  # [C, 1, 1, 2]
    actions = np.arange(len(MOVES)).reshape(1, -1)  # [1, A]
    cells = np.broadcast_to(cells, (height * width, len(MOVES), 1, 2))  # [C, A, 1, 2]
    outcomes = []
    for slipped in (False, True):
        flags = np.full(cells.shape[:3], slipped)  # [C, A, 1]
        new, fell = move_agents(
            cells, actions[..., None], flags, starts=env.starts[:1], height=height, width=width
        )  # [C, A, 1, 2], [C, A, 1]
        outcomes.append((new[..., 0, 0] * width + new[..., 0, 1], fell[..., 0]))
    goal = env.goals[0, 0] * width + env.goals[0, 1]
    values = np.zeros(height * width)  # [C]
    for _ in range(sweeps):
        q = sum(
            prob * (-env.step_cost - env.cliff_penalty * fell + gamma * values[nxt])
            for (nxt, fell), prob in zip(outcomes, (1 - slip, slip), strict=True)
        )  # [C, A]
        values = q.max(axis=-1)
        values[goal] = 0.0
    return q


@pytest.mark.parametrize("gamma", [1.0, 0.99])
def test_short_route_is_the_mean_optimal_policy(gamma):
    env = CliffNavigation()
    q = _value_iteration(env, gamma=gamma)  # [H*W, A]
    route = np.array([[2, 0], [1, 0], [1, 1], [1, 2], [1, 3], [1, 4]])  # short route cells
    short = route_actions(route[:, None], goals=env.goals[:1], lane_rows=1)[:, 0]  # [6]
    index = route[:, 0] * env.width + route[:, 1]
    best, runner_up = np.sort(q[index], axis=-1)[:, [-1, -2]].T
    np.testing.assert_array_equal(q[index].argmax(axis=-1), short)
    assert np.all(best - runner_up > 0.3)  # no near-ties on the route


def _exact_table(env):
    table = {}
    for label, routes in PAIRS.items():
        values, probs = team_return_distribution(env, routes)
        table[label] = {
            k: exact_risk(values, probs, *m, n_atoms=100_000) for k, m in MEASURES.items()
        }
    return table


def test_exact_optima_short_for_the_mean_detour_for_cvar_and_wang():
    table = _exact_table(CliffNavigation())
    # documented figures (envs/macn.py docstring, configs/env/macn.yaml)
    expected = {
        "short": (-16.02, -27.63, -21.76),
        "mixed": (-16.69, -25.38, -20.99),
        "detour": (-17.35, -20.45, -19.27),
    }
    for label, figures in expected.items():
        np.testing.assert_allclose([table[label][k] for k in MEASURES], figures, atol=0.006)
    assert max(table, key=lambda label: table[label]["mean"]) == "short"
    assert max(table, key=lambda label: table[label]["cvar"]) == "detour"
    assert max(table, key=lambda label: table[label]["wang"]) == "detour"


def test_monte_carlo_agrees_with_the_exact_distribution():
    env = CliffNavigation(num_envs=20_000)
    exact = _exact_table(env)
    for label, routes in PAIRS.items():
        returns, _ = route_returns(env, routes, seed=0)
        sampled = {k: float(empirical_risk(returns, *m)) for k, m in MEASURES.items()}
        # standard errors at 2*10^4 episodes: mean <= 0.05, CVaR <= 0.12, Wang <= 0.07
        tolerance = {"mean": 0.2, "cvar": 0.5, "wang": 0.3}
        for key in MEASURES:
            assert abs(sampled[key] - exact[label][key]) <= tolerance[key], (label, key)


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError, match="height must be >= 3, got 2"):
        CliffNavigation(height=2)
    with pytest.raises(ValueError, match=r"slip_prob must be in \[0, 1\]"):
        CliffNavigation(slip_prob=1.5)
    with pytest.raises(ValueError, match="routes must name one of"):
        route_returns(CliffNavigation(), ("short", "scenic"))
    env = _env(num_envs=2)
    with pytest.raises(ValueError, match=r"actions must lie in \[0, 4\]"):
        env.step(np.full((2, 2), 5))


def test_config_writes_out_the_constructor_defaults():
    args = yaml.safe_load(CONFIG.read_text())["env"]["args"]
    parameters = inspect.signature(CliffNavigation.__init__).parameters
    defaults = {
        k: p.default for k, p in parameters.items() if k not in {"self", "num_envs", "seed"}
    }
    assert args == defaults
