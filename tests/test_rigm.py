"""RIGM checker (CONVENTIONS.md section 1): library core, random inputs and the riskq-rigm CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from riskq.analysis.rigm import (
    RigmConfig,
    check_rigm,
    joint_action_index,
    joint_actions,
    merge_results,
    random_inputs,
    run_rigm,
)
from riskq.cli.compose import register_configs
from riskq.config import MixerConfig, RiskConfig
from riskq.model.mixers import make_mixer
from riskq.model.risk import RISK_MEASURES, make_risk_measure

ROOT = Path(__file__).resolve().parents[1]
CVAR = make_risk_measure("cvar", 0.25)
NEUTRAL = make_risk_measure("neutral")


def build(
    name,
    *,
    n_agents=2,
    n_quantiles=4,
    state_dim=3,
    feature_dim=0,
    risk_fn=CVAR,
    seed=0,
    state_transform="none",
):
    torch.manual_seed(seed)
    return make_mixer(
        name,
        n_agents=n_agents,
        state_dim=state_dim,
        n_quantiles=n_quantiles,
        agent_feature_dim=feature_dim,
        risk_fn=risk_fn,
        cfg=MixerConfig(state_transform=state_transform),
    )


def ladder():
    """Agent 0: safe [0,0,0,0] or risky [-4,2,2,2] (mean 0.5, CVaR_0.25 -4); agent 1: 0 or -1."""
    agent0 = torch.tensor([[0.0, 0.0, 0.0, 0.0], [-4.0, 2.0, 2.0, 2.0]])  # [A, K]
    agent1 = torch.tensor([[0.0, 0.0, 0.0, 0.0], [-1.0, -1.0, -1.0, -1.0]])  # [A, K]
    return torch.stack([agent0, agent1]).unsqueeze(0), torch.zeros(1, 3)  # [1, N, A, K], [1, S]


def test_joint_actions_enumerate_and_index_back():
    actions = joint_actions(n_agents=3, n_actions=2, device=torch.device("cpu"))
    assert actions.shape == (8, 3)
    assert actions[5].tolist() == [1, 0, 1]  # lexicographic, agent 0 slowest
    torch.testing.assert_close(joint_action_index(actions, n_actions=2), torch.arange(8))


def test_known_answer_vdn_picks_risky_joint_action_under_cvar():
    quantiles, state = ladder()
    result = check_rigm(mixer=build("vdn"), risk_fn=CVAR, agent_quantiles=quantiles, state=state)
    assert (result.trials, result.violations, result.distributional) == (1, 1, False)
    assert result.max_regret == pytest.approx(0.5)  # Q(risky, 0) - Q(safe, 0)
    assert result.central_actions.tolist() == [[1, 0]]
    assert result.decentral_actions.tolist() == [[0, 0]]
    neutral = check_rigm(
        mixer=build("vdn"), risk_fn=NEUTRAL, agent_quantiles=quantiles, state=state
    )
    assert neutral.violations == 0 and neutral.decentral_actions.tolist() == [[1, 0]]


@pytest.mark.parametrize("name", ["riskq", "ddn"])
def test_known_answer_rigm_mixers_agree_with_decentralised_cvar(name):
    quantiles, state = ladder()
    result = check_rigm(mixer=build(name), risk_fn=CVAR, agent_quantiles=quantiles, state=state)
    assert result.violations == 0 and result.max_regret == 0.0
    assert result.central_actions.tolist() == [[0, 0]]


@pytest.mark.parametrize("name", ["riskq", "ddn"])
def test_symlog_state_keeps_rigm_on_large_states(name):
    """The state transform acts on the state only, so RIGM mixers keep it for any state."""
    quantiles, _ = ladder()
    states = 100 * torch.randn(16, 3, generator=torch.Generator().manual_seed(0))  # [16, S]
    mixer = build(name, state_transform="symlog")
    for state in states:
        result = check_rigm(
            mixer=mixer, risk_fn=CVAR, agent_quantiles=quantiles, state=state.unsqueeze(0)
        )
        assert result.violations == 0 and result.central_actions.tolist() == [[0, 0]]


def _risk_params(name):
    magnitude = {
        "neutral": st.none(),
        "var": st.floats(0.05, 1.0),
        "cvar": st.floats(0.05, 1.0),
        "wang": st.floats(0.0, 2.0),
        "cpw": st.floats(0.3, 1.0),
        "pow": st.floats(0.0, 2.0),
    }[name]
    sign = st.sampled_from([1.0, -1.0])
    return st.tuples(magnitude, sign).map(lambda p: None if p[0] is None else p[0] * p[1])


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    data=st.data(),
    mixer_name=st.sampled_from(["riskq", "ddn"]),
    risk_name=st.sampled_from(sorted(RISK_MEASURES)),
    n_agents=st.integers(1, 3),
    n_actions=st.integers(2, 4),
    n_quantiles=st.integers(1, 12),
    feature_dim=st.sampled_from([0, 3]),
    seed=st.integers(0, 2**16),
)
def test_property_riskq_and_ddn_never_violate_rigm(
    data, mixer_name, risk_name, n_agents, n_actions, n_quantiles, feature_dim, seed
):
    risk_fn = make_risk_measure(risk_name, data.draw(_risk_params(risk_name)))
    quantiles, state, features = random_inputs(
        torch.Generator().manual_seed(seed),
        trials=16,
        n_agents=n_agents,
        n_actions=n_actions,
        n_quantiles=n_quantiles,
        state_dim=3,
        feature_dim=feature_dim,
    )
    mixer = build(
        mixer_name, n_agents=n_agents, n_quantiles=n_quantiles, feature_dim=feature_dim, seed=seed
    )
    result = check_rigm(
        mixer=mixer,
        risk_fn=risk_fn,
        agent_quantiles=quantiles,
        state=state,
        agent_features=features,
    )
    assert result.violations == 0, (risk_fn.label, result.max_regret)


def rows_by_pair(rows):
    return {(row["mixer"], row["label"]): row for row in rows}


def test_counter_examples_violate_rigm_and_dmix_keeps_digm():
    cfg = RigmConfig(
        mixers=["riskq", "ddn", "dmix", "risk-mix", "quantile-mix"],
        risks=[RiskConfig(name="neutral"), RiskConfig(name="var", param=0.2),
               RiskConfig(name="cvar", param=0.2), RiskConfig(name="wang", param=0.75)],
        trials=400,
        trials_per_init=100,
    )  # fmt: skip
    rows = rows_by_pair(run_rigm(cfg))
    assert len(rows) == 20 and all(row["trials"] == 400 for row in rows.values())
    for label in ("Neutral", "VaR(0.2)", "CVaR(0.2)", "Wang(0.75)"):
        assert rows["riskq", label]["violations"] == 0
        assert rows["ddn", label]["violations"] == 0
    for mixer in ("dmix", "risk-mix"):
        assert rows[mixer, "Neutral"]["violations"] == 0  # DIGM holds
        for label in ("VaR(0.2)", "CVaR(0.2)", "Wang(0.75)"):
            assert rows[mixer, label]["violation_rate"] > 0.05, (mixer, label)
    assert rows["quantile-mix", "Wang(0.75)"]["violations"] > 0
    assert rows["quantile-mix", "Neutral"]["violations"] > 0
    assert rows["quantile-mix", "VaR(0.2)"]["violations"] == 0  # monotone per quantile


def test_random_inputs_are_sorted_varied_and_reproducible():
    def draw(seed):
        return random_inputs(
            torch.Generator().manual_seed(seed),
            trials=500, n_agents=2, n_actions=3, n_quantiles=8, state_dim=4, feature_dim=2,
        )  # fmt: skip

    quantiles, state, features = draw(0)
    assert quantiles.shape == (500, 2, 3, 8) and state.shape == (500, 4)
    assert features.shape == (500, 2, 2)
    assert (quantiles.diff(dim=-1) >= 0).all()
    assert torch.equal(draw(0)[0], quantiles) and not torch.equal(draw(1)[0], quantiles)
    neutral_greedy = NEUTRAL(quantiles).argmax(-1)  # [M, N]
    averse_greedy = make_risk_measure("cvar", 0.2)(quantiles).argmax(-1)  # [M, N]
    assert (neutral_greedy != averse_greedy).float().mean() > 0.2
    assert random_inputs(torch.Generator(), trials=2, n_agents=2, n_actions=2, n_quantiles=3,
                         state_dim=1, feature_dim=0)[2] is None  # fmt: skip


def test_merge_results_concatenates_trials():
    quantiles, state = ladder()
    mixer = build("vdn")
    violated = check_rigm(mixer=mixer, risk_fn=CVAR, agent_quantiles=quantiles, state=state)
    clean = check_rigm(mixer=mixer, risk_fn=NEUTRAL, agent_quantiles=quantiles, state=state)
    merged = merge_results([violated, clean, clean])
    assert (merged.trials, merged.violations) == (3, 1)
    assert merged.violation_rate == pytest.approx(1 / 3) and merged.max_regret == pytest.approx(0.5)
    assert merged.regret.shape == (3,) and merged.central_actions.shape == (3, 2)


def test_check_rigm_refuses_independent_learners_and_bad_shapes():
    quantiles, state = ladder()
    with pytest.raises(ValueError, match="no joint return distribution"):
        check_rigm(mixer=build("none"), risk_fn=CVAR, agent_quantiles=quantiles, state=state)
    with pytest.raises(ValueError, match=r"state \(2, 3\) must be \[M=1, S\]"):
        check_rigm(mixer=build("ddn"), risk_fn=CVAR, agent_quantiles=quantiles,
                   state=torch.zeros(2, 3))  # fmt: skip


def run_cli(*args, cwd):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "riskq.cli.rigm", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_cli_writes_json_rows_and_leaves_no_hydra_outputs(tmp_path):
    output = tmp_path / "rigm.json"
    work = tmp_path / "work"
    work.mkdir()
    process = run_cli(
        "trials=60", "trials_per_init=30", "mixers=[riskq,dmix]",
        "risks=[{name: neutral},{name: cvar, param: 0.2}]", f"output={output}", cwd=work,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr
    assert "max regret" in process.stdout and "CVaR(0.2)" in process.stdout
    rows = json.loads(output.read_text())["rows"]
    assert [(row["mixer"], row["risk"], row["param"]) for row in rows] == [
        ("riskq", "neutral", None), ("riskq", "cvar", 0.2),
        ("dmix", "neutral", None), ("dmix", "cvar", 0.2),
    ]  # fmt: skip
    assert all(row["trials"] == 60 for row in rows)
    assert [row["violations"] == 0 for row in rows] == [True, True, True, False]
    assert rows[3]["max_regret"] > 0
    assert list(work.iterdir()) == []  # no outputs/, no .hydra/, no log file


def test_cli_bad_mixer_gives_one_line_error():
    process = run_cli("mixers=[riskq,qmx]", "trials=4", cwd=ROOT)
    assert process.returncode == 2
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1, process.stderr
    assert lines[0].startswith("riskq-rigm: error: mixers: 'qmx'")
    assert "valid choices: ['riskq', 'vdn', 'qmix', 'ddn'" in lines[0]
    assert "Traceback" not in process.stderr and process.stdout == ""


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"mixers": ["none"]}, r"mixers: 'none' is not a joint mixer; valid choices"),
        ({"risks": [RiskConfig(name="cvar", param=1.5)]}, r"risks\[0\]: .*0 < \|alpha\| <= 1"),
        ({"risks": [RiskConfig(name="bogus")]}, r"risks\[0\]: .*valid choices: \['cpw'"),
        ({"trials_per_init": 0}, "trials_per_init must be >= 1"),
        ({"n_agents": 9}, "n_actions\\^n_agents must be <= 4096"),
        ({"device": "nonsense"}, "device: 'nonsense' is not usable"),
        ({"tol": float("nan")}, "tol must be finite and >= 0, got nan"),  # nan: never a violation
        ({"tol": -1.0}, "tol must be finite and >= 0, got -1.0"),  # every trial a violation
        ({"feature_dim": -1}, "feature_dim must be >= 0"),
        ({"mixers": []}, "mixers and risks must each name at least one entry"),
    ],
)
def test_bad_values_name_the_key(changes, expected):
    with pytest.raises(ValueError, match=expected):
        run_rigm(RigmConfig(**changes))


def test_yaml_composes_into_schema_with_the_same_defaults():
    register_configs()  # riskq-rigm stores the schema that configs/rigm.yaml names
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = OmegaConf.to_object(compose(config_name="rigm"))
        assert isinstance(cfg, RigmConfig) and cfg == RigmConfig()
        assert all(isinstance(risk, RiskConfig) for risk in cfg.risks)
        labels = [make_risk_measure(r.name, r.level()).label for r in cfg.risks]
        assert "CVaR(0.2)" in labels and "CVaR(-0.2)" in labels  # averse and seeking
        small = OmegaConf.to_object(compose(config_name="rigm", overrides=["trials=7"]))
        assert small.trials == 7
        with pytest.raises(ConfigCompositionException):
            compose(config_name="rigm", overrides=["trails=7"])
