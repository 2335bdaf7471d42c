"""scripts/greedy_trace.py: the printed greedy actions are the argmax of the printed psi."""

import ast
import re

import pytest
import torch
from budgets import TINY
from omegaconf import OmegaConf

from riskq.cli.compose import compose_config
from riskq.run.experiment import EVAL_SEED_OFFSET, build_experiment
from riskq.run.trainer import train
from scripts import greedy_trace


@pytest.mark.parametrize("env", ["matrix", "macn"])
def test_trace_prints_actions_that_maximise_the_printed_psi(tmp_path, capsys, env):
    cfg = compose_config([f"env={env}", *TINY])
    train(cfg, tmp_path, build_experiment(cfg))
    OmegaConf.save(OmegaConf.structured(cfg), tmp_path / "config.yaml")  # as riskq-train does
    greedy_trace.main([str(tmp_path), "--values", "0"])
    out = capsys.readouterr().out
    actions = ast.literal_eval(re.search(r"t=  0 .*actions=(\[[^\]]*\])", out).group(1))
    for agent, action in enumerate(actions):
        psi = ast.literal_eval(re.search(rf"t=0 agent {agent}: psi (\[.*\])", out).group(1))
        assert psi[action] == max(psi)
    rewards = [float(r) for r in re.findall(r"reward=(-?[\d.]+)", out)]
    total = float(re.search(r"return (-?[\d.]+)", out).group(1))
    assert total == pytest.approx(sum(rewards), abs=0.01)


def test_mixing_slopes_of_riskq_are_its_mixing_weights(tmp_path, capsys):
    """RiskQ's joint quantiles are sum_i kappa_i(s) theta_i + c(s): the printed slope of agent i
    is kappa_i at the step's state and the intercept is c(s)."""
    cfg = compose_config(["env=macn", "algo=riskq", *TINY])
    exp = build_experiment(cfg)
    train(cfg, tmp_path, exp)
    OmegaConf.save(OmegaConf.structured(cfg), tmp_path / "config.yaml")
    greedy_trace.main([str(tmp_path), "--mixing"])
    out = capsys.readouterr().out
    printed = re.findall(r"t=\s*(\d+) slope=(\[[^\]]*\]) intercept=(-?[\d.]+) joint=", out)
    assert printed and int(printed[0][0]) == 0
    _, loaded, _ = greedy_trace.load_run(str(tmp_path), episodes=1)
    batch = loaded.eval_runner.collect(epsilon=0.0, seed=cfg.seed + EVAL_SEED_OFFSET).batch
    mixer = loaded.learner.mixer
    state = mixer.state_transform(batch.state[0])  # [T+1, S]
    features = batch.agent_features[0]
    features = mixer.state_transform(features) if features.shape[-1] else None
    with torch.no_grad():
        kappa, bias = mixer.mixing_weights(state, features), mixer.bias(state)[..., 0]  # [T+1, N]
    for t, slope, intercept in printed:
        assert ast.literal_eval(slope) == pytest.approx(kappa[int(t)].tolist(), abs=2e-3)
        assert float(intercept) == pytest.approx(float(bias[int(t)]), abs=2e-3)


def test_mixing_of_an_independent_learner_is_a_one_line_error(tmp_path, capsys):
    cfg = compose_config(["env=matrix", "algo=iqr", *TINY])
    train(cfg, tmp_path, build_experiment(cfg))
    OmegaConf.save(OmegaConf.structured(cfg), tmp_path / "config.yaml")
    with pytest.raises(SystemExit, match="--mixing: algo iqr has no joint mixer"):
        greedy_trace.main([str(tmp_path), "--mixing"])
