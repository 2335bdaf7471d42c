"""scripts/greedy_trace.py: the printed greedy actions are the argmax of the printed psi."""

import ast
import re

import pytest
from budgets import TINY
from omegaconf import OmegaConf

from riskq.cli.compose import compose_config
from riskq.experiment import build_experiment
from riskq.trainer import train
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
