"""MACN (CONVENTIONS.md section 8.3): rules by hand, and the documented route optima."""

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
    ROUTE_LANES,
    STAY,
    UP,
    CliffNavigation,
    move_agents,
    route_actions,
    route_returns,
)
from riskq.model.risk import empirical_risk
from scripts.macn_optima import exact_risk, team_return_distribution

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "env" / "macn.yaml"
PAIRS = {"short": ("short", "short"), "mixed": ("short", "detour"), "detour": ("detour", "detour")}
MEASURES = {
    "mean": ("neutral", None),
    "cvar": ("cvar", 0.2),
    "wang": ("wang", 0.75),
    "var": ("var", 0.2),
}
PSI = ("mean", "cvar", "wang")  # the measures of the issue (VaR: exact table only)


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
    assert (info.n_agents, info.n_actions, info.obs_dim, info.state_dim) == (2, 5, 26, 26)
    assert (info.agent_feature_dim, info.episode_limit) == (1, 20)
    obs = env.reset()
    assert obs.obs.shape == (4, 2, 26) and obs.state.shape == (4, 26)
    assert obs.agent_features.shape == (4, 2, 1) and obs.avail_actions.all()
    np.testing.assert_array_equal(env.starts, [[2, 0], [2, 0]])
    np.testing.assert_array_equal(env.goals, [[2, 3], [2, 3]])


def test_observation_is_own_slice_then_the_others():
    env = _env()
    env.cells[0] = [[1, 2], [0, 3]]
    env.reached[0] = [False, True]
    obs = env._observe()
    own = np.zeros((2, 13))  # (one-hot over the 3 x 4 cells, reached)
    own[0, 1 * 4 + 2] = 1.0
    own[1, 0 * 4 + 3] = own[1, 12] = 1.0
    np.testing.assert_array_equal(obs.state[0], np.concatenate(own))
    np.testing.assert_array_equal(obs.obs[0], [np.concatenate(own), np.concatenate(own[::-1])])
    np.testing.assert_array_equal(obs.agent_features[0], [[0.0], [1.0]])


def test_moves_walls_slips_and_cliff():
    cells = np.array([[[0, 0], [1, 1], [1, 1], [2, 0], [1, 3]]])  # [E=1, N=5, 2]
    actions = np.array([[UP, LEFT, RIGHT, RIGHT, STAY]])
    slipped = np.array([[False, False, False, False, True]])
    starts = np.array([[9, 9]] * 5)  # a marker: fallen agents land here
    new, fell = move_agents(cells, actions, slipped, starts=starts, height=3, width=5)
    np.testing.assert_array_equal(new[0], [[0, 0], [1, 0], [1, 2], [9, 9], [9, 9]])
    np.testing.assert_array_equal(fell[0], [False, False, False, True, True])
    assert MOVES[DOWN].tolist() == [1, 0]


BARE = {"goal_bonus": 0.0, "shaping": 0.0}  # plain cliff walking


@pytest.mark.parametrize(
    ("routes", "team_return", "detour"),
    [(PAIRS["short"], -10.0, 0.0), (PAIRS["mixed"], -12.0, 0.5), (PAIRS["detour"], -14.0, 1.0)],
)
def test_routes_without_wind(routes, team_return, detour):
    env = CliffNavigation(num_envs=3, slip_prob=0.0, **BARE)
    returns, metrics = route_returns(env, routes, seed=0)
    np.testing.assert_array_equal(returns, team_return)  # W + 1 = 5 or W + 3 = 7 steps each
    np.testing.assert_array_equal(metrics["detour"], detour)
    np.testing.assert_array_equal(metrics["reached"], 2)
    np.testing.assert_array_equal(metrics["cliff_falls"], 0)
    np.testing.assert_array_equal(metrics["steps"], 7 if detour else 5)


def test_falling_costs_the_penalty_and_restarts():
    env = _env(slip_prob=0.0)
    rewards, result = _run(env, [[RIGHT, RIGHT]])  # both step straight into the cliff
    assert rewards[0, 0] == -2 * (1 + 6)  # back at the start: no shaping either way
    np.testing.assert_array_equal(env.cells[0], env.starts)
    assert env.episode_metrics()["cliff_falls"][0] == 2 and not result.terminated[0]


def test_reached_agent_stops_paying_and_time_limit_truncates():
    env = _env(slip_prob=0.0, **BARE)
    short_east = [UP, RIGHT, RIGHT, RIGHT, DOWN]
    rewards, _ = _run(env, [[move, STAY] for move in short_east])
    assert rewards[:, 0].tolist() == [-2.0] * 5 and env.reached[0].tolist() == [True, False]
    rewards, result = _run(env, [[UP, STAY]] * 15)  # agent 0 is frozen at its goal
    assert rewards[:, 0].tolist() == [-1.0] * 15
    np.testing.assert_array_equal(env.cells[0, 0], [2, 3])
    assert result.truncated[0] and not result.terminated[0]
    assert env.episode_metrics()["steps"][0] == 20


def test_goal_bonus_is_paid_once_on_arrival():
    env = _env(slip_prob=0.0, goal_bonus=5.0, shaping=0.0)
    short_east = [UP, RIGHT, RIGHT, RIGHT, DOWN, STAY, STAY]
    rewards, _ = _run(env, [[move, STAY] for move in short_east])
    assert rewards[:, 0].tolist() == [-2.0] * 4 + [-2.0 + 5.0, -1.0, -1.0]


def test_shaping_pays_the_potential_difference():
    env = _env(slip_prob=0.0, goal_bonus=0.0, shaping=2.0)
    # phi = -(column distance + king-move distance): (2,0) -6, (1,0) -6, (0,0) -6, (0,1) -4,
    # (0,2) -3, (0,3) -2, (1,3) -1, goal 0; agent 1 stays at the start (phi -6, cost 1)
    detour_east = [UP, UP, RIGHT, RIGHT, RIGHT, DOWN, DOWN]
    rewards, result = _run(env, [[move, STAY] for move in detour_east])
    shaping = [0, 0, 2, 1, 1, 1, 1]
    np.testing.assert_array_equal(rewards[:, 0], [-2.0 + gain for gain in shaping])
    np.testing.assert_array_equal(env.potential(np.array([[2, 0], [2, 3]])), [-6.0, 0.0])
    assert env.reached[0].tolist() == [True, False] and not result.terminated[0]


@pytest.mark.parametrize("routes", PAIRS.values(), ids=PAIRS.keys())
def test_bonus_and_shaping_add_a_constant_to_every_arriving_return(routes):
    shaped = CliffNavigation(num_envs=4_000)
    bare = CliffNavigation(num_envs=4_000, **BARE)
    shaped_returns, metrics = route_returns(shaped, routes, seed=3)
    bare_returns, _ = route_returns(bare, routes, seed=3)  # same slips: rewards use no rng
    arrived = metrics["reached"] == 2
    assert arrived.mean() > 0.99 and metrics["cliff_falls"].sum() > 100
    constant = 2 * (4.0 + 2.0 * (4 - 1))  # per arriving agent: goal_bonus + shaping (W - 1)
    np.testing.assert_allclose(shaped_returns[arrived] - bare_returns[arrived], constant)


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


def _value_iteration(env, *, gamma, sweeps=300):
    """Optimal expected action values Q [H*W, A] of agent 0 alone (agents never interact)."""
    height, width, slip = env.height, env.width, env.slip_prob
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    cells = np.stack([rows, cols], axis=-1).reshape(-1, 1, 1, 2)  # [C, 1, 1, 2]
    actions = np.arange(len(MOVES)).reshape(1, -1)  # [1, A]
    cells = np.broadcast_to(cells, (height * width, len(MOVES), 1, 2))  # [C, A, 1, 2]
    goal = env.goals[0, 0] * width + env.goals[0, 1]
    outcomes = []
    for slipped in (False, True):
        flags = np.full(cells.shape[:3], slipped)  # [C, A, 1]
        new, fell = move_agents(
            cells, actions[..., None], flags, starts=env.starts[:1], height=height, width=width
        )  # [C, A, 1, 2], [C, A, 1]
        shaping = (env.potential(new) - env.potential(cells))[..., 0]  # [C, A]
        following = new[..., 0, 0] * width + new[..., 0, 1]  # [C, A]
        reward = (-env.step_cost - env.cliff_penalty * fell[..., 0] + shaping) + env.goal_bonus * (
            following == goal
        )  # [C, A]
        outcomes.append((following, reward))
    values = np.zeros(height * width)  # [C]
    for _ in range(sweeps):
        q = sum(
            prob * (reward + gamma * values[following])
            for (following, reward), prob in zip(outcomes, (1 - slip, slip), strict=True)
        )  # [C, A]
        values = q.max(axis=-1)
        values[goal] = 0.0
    return q


@pytest.mark.parametrize("gamma", [1.0, 0.99, 0.95])  # 0.95: configs/env/macn.yaml
def test_short_route_is_the_mean_optimal_policy(gamma):
    env = CliffNavigation()
    q = _value_iteration(env, gamma=gamma)  # [H*W, A]
    route = np.array([[2, 0], [1, 0], [1, 1], [1, 2], [1, 3]])  # short route cells
    short = route_actions(route[:, None], goals=env.goals[:1], lane_rows=1)[:, 0]  # [5]
    index = route[:, 0] * env.width + route[:, 1]
    best, runner_up = np.sort(q[index], axis=-1)[:, [-1, -2]].T
    np.testing.assert_array_equal(q[index].argmax(axis=-1), short)
    assert np.all(best - runner_up > 0.2)  # no near-ties on the route (smallest: 0.23)


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
        "short": (4.70, -7.41, -1.69, 0.0),
        "mixed": (4.08, -5.98, -0.93, -1.0),
        "detour": (3.46, -1.61, 0.53, 2.0),
    }
    for label, figures in expected.items():
        np.testing.assert_allclose([table[label][k] for k in MEASURES], figures, atol=0.006)
    assert max(table, key=lambda label: table[label]["mean"]) == "short"
    assert max(table, key=lambda label: table[label]["cvar"]) == "detour"
    assert max(table, key=lambda label: table[label]["wang"]) == "detour"
    assert max(table, key=lambda label: table[label]["var"]) == "detour"


def _discounted_returns(env, routes, *, gamma, seed):
    """Discounted team returns [E] of one scripted route per agent (route_returns' loop)."""
    lanes = np.array([env.height - 1 - ROUTE_LANES[route] for route in routes])  # [N]
    env.reset(seed=seed)
    returns, discount = np.zeros(env.num_envs), 1.0  # [E]
    while not env.done.all():
        actions = route_actions(env.cells, goals=env.goals, lane_rows=lanes)  # [E, N]
        returns += discount * env.step(actions).reward
        discount *= gamma
    return returns


@pytest.mark.parametrize(
    ("n_agents", "margins"),
    [(1, (0.6, 3.0, 0.8)), (2, (1.3, 3.0, 0.7))],  # measured: (0.91, 4.7, 1.18), (1.9, 4.2, 1.07)
)
def test_training_discount_keeps_the_route_ordering(n_agents, margins):
    # gamma 0.95 of configs/env/macn.yaml; one agent: RiskQ ranks an agent's actions by psi of
    # its own quantiles. Standard errors at 2*10^4 episodes: about 0.03-0.05 (mean, Wang),
    # 0.1 (CVaR).
    env = CliffNavigation(num_envs=20_000, n_agents=n_agents)
    values = {}
    for label in ("short", "detour"):
        routes = PAIRS[label][:n_agents]
        returns = _discounted_returns(env, routes, gamma=0.95, seed=0)  # [E]
        values[label] = {k: float(empirical_risk(returns, *MEASURES[k])) for k in PSI}
    mean_margin, cvar_margin, wang_margin = margins
    assert values["short"]["mean"] > values["detour"]["mean"] + mean_margin
    assert values["detour"]["cvar"] > values["short"]["cvar"] + cvar_margin
    assert values["detour"]["wang"] > values["short"]["wang"] + wang_margin


def test_monte_carlo_agrees_with_the_exact_distribution():
    env = CliffNavigation(num_envs=20_000)
    exact = _exact_table(env)
    for label, routes in PAIRS.items():
        returns, _ = route_returns(env, routes, seed=0)
        sampled = {k: float(empirical_risk(returns, *MEASURES[k])) for k in PSI}
        # standard errors at 2*10^4 episodes: about 0.05 (mean), 0.15 (CVaR), 0.07 (Wang)
        tolerance = {"mean": 0.2, "cvar": 0.5, "wang": 0.3}  # keys: PSI
        for key in tolerance:
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
