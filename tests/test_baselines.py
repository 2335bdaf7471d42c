"""The baselines sweep (scripts/baselines.py) composes; its table is tested in test_tables.py."""

import itertools

import pytest

from riskq.cli.compose import compose_config
from scripts import baselines

LEVELS = {"wang": 0.75, "cvar": 0.2, "neutral": 0.0}  # configs/risk/
SWEEP_KEYS = ("env", "algo", "risk", "seed")


@pytest.mark.parametrize("env", sorted(baselines.SEEDS))
def test_every_baselines_run_composes_into_the_schema(env):
    jobs = baselines.job_overrides(env=env, seeds=1)  # seeds do not change the composition
    assert len(jobs) == 2 * 5 + 2  # 5 distributional x (Wang, CVaR) + VDN, QMIX once
    for overrides in jobs:
        cfg = compose_config(overrides)
        algo, risk = overrides[1].removeprefix("algo="), overrides[2].removeprefix("risk=")
        assert (cfg.env.label, cfg.algo.name, cfg.risk.name) == (env, algo, risk)
        assert cfg.risk.level() == LEVELS[risk]
        if algo in baselines.EXPECTED_VALUE:
            assert risk == "neutral" and cfg.algo.agent.n_quantiles == 1


def test_sweep_command_lines_expand_to_the_jobs(tmp_path):
    lines = baselines.commands(env="macn", seeds=5, sweep_dir=tmp_path, launcher="basic", extra=[])
    expanded = []
    for line in lines:
        assert line[line.index("riskq.cli.train") + 1] == "-m"
        sweep = [item.split("=") for item in line if item.split("=")[0] in SWEEP_KEYS]
        choices = [[f"{key}={value}" for value in values.split(",")] for key, values in sweep]
        expanded += [sorted(job) for job in itertools.product(*choices)]
    expected = [sorted(job) for job in baselines.job_overrides(env="macn", seeds=5)]
    assert sorted(expanded) == sorted(expected) and len(expected) == 60
    assert {line[-1] for line in lines} == {
        f"hydra.sweep.dir={tmp_path / name}" for name in ("distributional", "expected_value")
    }


@pytest.mark.parametrize("risks", [("wang",), ("cvar",), ("cvar", "wang")])
def test_risks_option_keeps_one_block_per_chosen_measure(risks):
    jobs = baselines.job_overrides(env="macf", seeds=3, risks=risks)
    distributional = [
        job for job in jobs if job[1].removeprefix("algo=") in baselines.DISTRIBUTIONAL
    ]
    assert {job[2].removeprefix("risk=") for job in distributional} == set(risks)
    assert len(distributional) == 5 * 3 * len(risks)  # 5 algorithms x 3 seeds per block
    assert len(jobs) - len(distributional) == 2 * 3  # VDN and QMIX, risk-neutral, always
    assert baselines.main(["macf", "--dry-run", "--risks", *risks]) == 0


def test_risks_option_rejects_an_unknown_measure():
    with pytest.raises(ValueError, match="valid choices: wang, cvar"):
        baselines.selected_sweeps(("var",))
