"""The README quickstart proves learning: the default demo (risk ladder under Wang(0.75),
CONVENTIONS.md section 8.1) starts from a greedy joint action that is not the optimum, and
training reaches the optimum."""

import pytest
import torch

from riskq.cli.compose import compose_config
from riskq.run.experiment import EVAL_SEED_OFFSET, build_experiment
from riskq.run.matrix_report import initial_greedy_report
from riskq.run.trainer import train

SEEDS = [0, 1, 2]
SHORT = ["t_max=2000", "eval_interval=2000", "checkpoint_interval=2000", "progress=false"]


@pytest.mark.parametrize("seed", SEEDS)
def test_untrained_demo_team_picks_the_first_actions(seed):
    exp = build_experiment(compose_config([f"seed={seed}"]))
    assert initial_greedy_report(exp.eval_runner, seed=seed + EVAL_SEED_OFFSET) == {
        "initial_greedy_action": "(S, S)"
    }


def test_zero_head_ties_every_action_and_keeps_the_random_stream():
    zero = build_experiment(compose_config(["algo.agent.zero_head=true"]))
    default = build_experiment(compose_config(["algo.agent.zero_head=false"]))
    rollout = zero.eval_runner.collect(epsilon=0.0, seed=0)
    inputs = torch.ones(1, 2, zero.learner.agent.input_dim)  # [B, N, I]
    quantiles, _ = zero.learner.agent.step(inputs, zero.learner.agent.initial_hidden(1))
    assert torch.equal(quantiles, torch.zeros(1, 2, 3, 32))  # [B, N, A, K]
    assert (rollout.batch.actions[:, 0] == 0).all()  # ties go to the first action
    for zeroed, kept in zip(
        zero.learner.mixer.parameters(), default.learner.mixer.parameters(), strict=True
    ):
        assert torch.equal(zeroed, kept)  # the mixer drew the same random numbers


def test_initial_action_is_only_reported_for_matrix_games():
    exp = build_experiment(compose_config(["env=macn", "eval_episodes=2"]))
    assert initial_greedy_report(exp.eval_runner, seed=0) == {}


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_default_demo_learns_the_optimum_from_a_different_start(tmp_path, seed):
    cfg = compose_config([f"seed={seed}", *SHORT])
    summary = train(cfg, tmp_path, build_experiment(cfg))
    assert summary["optimal_action"] == "(M, M)"  # exact Wang(0.75) optimum of the risk ladder
    assert summary["initial_greedy_action"] != summary["optimal_action"]
    assert summary["greedy_action"] == summary["optimal_action"]
    assert summary["greedy_is_optimal"] is True
