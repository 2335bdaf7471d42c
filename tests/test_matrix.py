"""Stochastic matrix games: exact optima per risk measure, payoff forms, validation, stepping."""

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from envs.matrix import MatrixGame, load_game, quantile_atoms
from riskq.model.risk import make_risk_measure

GAMES = Path(__file__).resolve().parents[1] / "configs" / "env"
LADDER = {
    "n_agents": 2,
    "action_names": ["S", "M", "R"],
    "event_probs": [0.25, 0.75],
    "agent_payoffs": [[[0, 0], [-0.5, 1], [-6, 3]]] * 2,
}

# (game file, risk measure, param, optimal joint action, its exact value): the YAML comments.
OPTIMA = [
    ("matrix", "neutral", 0.0, "(R, R)", 1.5),
    ("matrix", "wang", 0.75, "(M, M)", 0.4097),
    ("matrix", "cvar", 0.2, "(S, S)", 0.0),
    ("matrix", "var", 0.2, "(S, S)", 0.0),
    ("climbing", "neutral", 0.0, "(a, a)", 11.2),
    ("climbing", "wang", 0.75, "(b, b)", 5.6825),
    ("climbing", "cvar", 0.2, "(c, c)", 5.0),
    ("climbing", "var", 0.2, "(c, c)", 5.0),
    ("penalty", "neutral", 0.0, "(a, a)", 10.7),
    ("penalty", "wang", 0.75, "(c, c)", 10.0),
    ("penalty", "cvar", 0.2, "(c, c)", 10.0),
    ("penalty", "var", 0.2, "(a, a)", 13.0),
]


@pytest.mark.parametrize(("game", "risk", "param", "label", "value"), OPTIMA)
def test_exact_optimum_of_every_shipped_game(game, risk, param, label, value):
    env = MatrixGame.from_yaml(GAMES / f"{game}.yaml")
    measure = make_risk_measure(risk, param)
    joint, best = env.exact_optimum(measure)
    assert env.action_label(joint) == label
    assert best == pytest.approx(value, abs=1e-4)
    runner_up = np.sort(env.exact_risk_values(measure).ravel())[-2]
    assert best - runner_up >= 0.1  # a unique optimum with a margin a learner can resolve


def test_risk_ladder_has_three_answers_for_three_attitudes():
    env = MatrixGame(**LADDER)
    answers = {
        env.action_label(env.exact_optimum(make_risk_measure(name, param))[0])
        for name, param in [("neutral", 0.0), ("wang", 0.75), ("cvar", 0.2)]
    }
    assert answers == {"(R, R)", "(M, M)", "(S, S)"}


def test_wang_value_of_the_ladder_by_hand():
    # (M, M) pays -1 w.p. 0.25 and 2 w.p. 0.75; Wang puts g(0.25) = Phi(Phi^-1(0.25) + 0.75)
    # on the bad atom.
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    g = normal.cdf(normal.icdf(torch.tensor(0.25, dtype=torch.float64)) + 0.75).item()
    values = MatrixGame(**LADDER).exact_risk_values(make_risk_measure("wang", 0.75))
    assert values[1, 1] == pytest.approx(-1 * g + 2 * (1 - g), abs=1e-9)


def test_agent_payoffs_are_summed_and_match_joint_payoffs():
    ladder = MatrixGame(**LADDER)
    values, probs = ladder.return_distribution()
    assert values.shape == (3, 3, 2)
    np.testing.assert_allclose(values[1, 2], [-6.5, 4.0])
    np.testing.assert_allclose(probs, [0.25, 0.75])
    joint = MatrixGame(**{**LADDER, "agent_payoffs": None, "joint_payoffs": values.tolist()})
    np.testing.assert_array_equal(joint.return_distribution()[0], values)


def test_three_agents_sum_their_contributions():
    env = MatrixGame(
        n_agents=3,
        action_names=["x", "y"],
        event_probs=[1.0],
        agent_payoffs=[[[1], [2]], [[10], [20]], [[100], [200]]],
    )
    values, _ = env.return_distribution()
    assert values.shape == (2, 2, 2, 1)
    assert values[1, 0, 1, 0] == 2 + 10 + 200
    assert env.exact_optimum(make_risk_measure("neutral", 0.0)) == ((1, 1, 1), 222.0)


def test_quantile_atoms_repeat_each_event_by_its_mass():
    atoms = quantile_atoms(np.array([[3.0, -1.0, 0.0]]), np.array([0.5, 1 / 3, 1 / 6]))
    np.testing.assert_array_equal(atoms, [[-1, -1, 0, 3, 3, 3]])
    coprime = np.array([1 / 9973, 1 / 9967, 1 - 1 / 9973 - 1 / 9967])  # K = 9973 * 9967
    with pytest.raises(ValueError, match="multiples of 1/K for a K <= 10000"):
        quantile_atoms(np.zeros((1, 3)), coprime)


def test_unequal_action_counts_are_padded_and_masked():
    env = MatrixGame(
        n_agents=2,
        action_names=[["up", "down"], ["L", "C", "R"]],
        event_probs=[1.0],
        joint_payoffs=[[[0], [1], [2]], [[3], [4], [5]]],
    )
    assert env.info.n_actions == 3
    avail = env.reset().avail_actions
    np.testing.assert_array_equal(avail[0], [[True, True, False], [True, True, True]])
    assert env.step(np.array([[1, 2]])).reward[0] == 5
    assert env.exact_optimum(make_risk_measure("neutral", 0.0))[0] == (1, 2)
    assert env.action_label((1, 2)) == "(down, R)"
    env.reset()
    with pytest.raises(ValueError, match=r"action 2 of agent 0 .* not available"):
        env.step(np.array([[2, 0]]))


def test_step_pays_the_joint_payoff_of_the_drawn_event():
    env = MatrixGame(**LADDER, num_envs=64, seed=3)
    first = env.reset()
    np.testing.assert_array_equal(first.obs, np.ones((64, 2, 1), dtype=np.float32))
    np.testing.assert_array_equal(first.state, np.ones((64, 1), dtype=np.float32))
    assert first.agent_features is None
    actions = np.tile([[2, 1]], (64, 1))  # (R, M): -6.5 bad, 4 good
    result = env.step(actions)
    assert set(result.reward.tolist()) == {-6.5, 4.0}
    assert result.terminated.all() and not result.truncated.any()


def test_step_refuses_bad_calls():
    env = MatrixGame(**LADDER, num_envs=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros((2, 2), dtype=int))
    env.reset()
    with pytest.raises(ValueError, match=r"shape \[2, 2\] and an integer dtype, got \[2, 3\]"):
        env.step(np.zeros((2, 3), dtype=int))
    with pytest.raises(ValueError, match=r"must lie in \[0, 2\], got \[\[0, 0\], \[0, 3\]\]"):
        env.step(np.array([[0, 0], [0, 3]]))
    with pytest.raises(ValueError, match="integer dtype"):
        env.step(np.zeros((2, 2)))


BAD_ARGS = [
    ({"event_probs": [0.5, 0.6]}, "event_probs must sum to 1"),
    ({"event_probs": [-0.25, 1.25]}, "event_probs must be non-negative"),
    ({"joint_payoffs": [[[0, 0]] * 3] * 3}, "exactly one of joint_payoffs and agent_payoffs"),
    ({"agent_payoffs": None}, "exactly one of joint_payoffs and agent_payoffs"),
    ({"agent_payoffs": [[[0, 0]] * 3]}, "list of n_agents=2"),
    ({"agent_payoffs": [[[0, 0]] * 3, [[0, 0]] * 2]}, r"agent_payoffs\[1\] must have shape"),
    ({"agent_payoffs": [[[0, 0, 0]] * 3] * 2}, r"shape \[3, 2\], got \[3, 3\]"),
    ({"agent_payoffs": [[[0, 0], [0], [0, 0]]] * 2}, "rectangular nested list"),
    ({"action_names": [["S", "M"]] * 3}, "3 per-agent lists, expected n_agents=2"),
    ({"action_names": ["S", "S", "R"]}, "unique"),
    ({"n_agents": 0}, "n_agents must be an integer >= 1"),
]


@pytest.mark.parametrize(("change", "message"), BAD_ARGS)
def test_malformed_games_are_refused_with_one_line(change, message):
    with pytest.raises(ValueError, match=message) as error:
        MatrixGame(**{**LADDER, **change})
    assert "\n" not in str(error.value)


def test_wrong_joint_shape_names_expected_and_got():
    with pytest.raises(ValueError, match=r"shape \[3, 3, 2\], got \[3, 2, 2\]"):
        MatrixGame(**{**LADDER, "agent_payoffs": None, "joint_payoffs": [[[0, 0]] * 2] * 3})


def test_load_game_returns_constructor_kwargs_with_the_label():
    args = load_game(GAMES / "climbing.yaml")
    assert args["label"] == "climbing"
    assert MatrixGame(**args).label == "climbing"


def test_accepts_omegaconf_containers():
    # Hydra hands env.args over as DictConfig/ListConfig before OmegaConf.to_object.
    env = MatrixGame(**OmegaConf.create(LADDER))
    np.testing.assert_array_equal(env.payoffs, MatrixGame(**LADDER).payoffs)
