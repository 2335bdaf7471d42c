"""End-to-end training: the real CLI on tiny budgets, with outcomes asserted."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from budgets import TINY

from envs import ENVS
from riskq.cli.compose import compose_config
from riskq.config import AlgoConfig, TrainConfig
from riskq.model.mixers import MIXERS
from riskq.model.risk import make_risk_measure
from riskq.run import experiment
from riskq.run.experiment import build_experiment
from riskq.run.run_dir import incomplete_note, run_status
from riskq.run.trainer import learning_rate, train

ROOT = Path(__file__).resolve().parents[1]
ALGOS = sorted(p.stem for p in (ROOT / "configs" / "algo").glob("*.yaml"))
TOY_ENVS = ["matrix", "macf", "macn"]


def run_cli(module: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def train_in_process(tmp_path: Path, overrides: list[str]) -> dict:
    cfg = compose_config(overrides)
    return train(cfg, tmp_path, build_experiment(cfg))


def test_every_algo_config_names_a_registered_mixer():
    for algo in ALGOS:
        assert compose_config([f"algo={algo}"]).algo.mixer in MIXERS


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("env", TOY_ENVS)
def test_every_algo_trains_on_every_toy_env(tmp_path, algo, env):
    overrides = [f"algo={algo}", f"env={env}", *TINY]
    if env == "macf":
        overrides += ["t_max=400", "algo.agent.n_quantiles=8"]
    summary = train_in_process(tmp_path, overrides)
    assert summary["t_env"] >= 300
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [m["train/loss"] for m in metrics if "train/loss" in m]
    assert losses and all(np.isfinite(losses))
    assert np.isfinite(summary["eval/return_mean"])


def test_cli_writes_a_complete_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("riskq.cli.train", *TINY, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    for name in ["config.yaml", "metrics.jsonl", "summary.json", "checkpoints/latest.pt"]:
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["optimal_action"] == "(M, M)"  # default: risk ladder under Wang 0.75
    assert {"greedy_action", "greedy_is_optimal", "eval/return_cvar_0.2"} <= set(summary)
    scalars = set().union(*(json.loads(line) for line in (run_dir / "metrics.jsonl").open()))
    assert {
        "train/loss",
        "train/epsilon",
        "train/psi_chosen",
        "train/env_steps_per_s",
        "eval/return_mean",
        "eval/return_var_0.1",
    } <= scalars

    evaluated = run_cli(
        "riskq.cli.evaluate",
        str(run_dir),
        "--episodes",
        "8",
        "--risk",
        "cvar",
        "--risk-param",
        "0.2",
    )
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads((run_dir / "eval_cvar_0.2.json").read_text())
    assert result["optimal_action"] == "(S, S)" and result["episodes"] == 8

    rigm_json = tmp_path / "rigm.json"
    checked = run_cli("riskq.cli.rigm", f"run={run_dir}", "episodes=4", f"output={rigm_json}")
    assert checked.returncode == 0, checked.stderr
    rows = json.loads(rigm_json.read_text())["rows"]
    assert rows[0]["label"] == "Wang(0.75)" and rows[0]["trials"] == 4
    assert all(row["mixer"] == "riskq" and row["violations"] == 0 for row in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["algo=nope"], "algo"),
        (["risk=cvar", "risk.param=1.5"], "cvar"),
        (["risk.name=bogus"], "valid choices"),
        (["t_max=0"], "t_max"),
        (["algo.reward_scale=0"], "algo.reward_scale must be finite and > 0"),
        (["algo.lr_finish=0.01"], "algo.lr_finish must lie in [0, algo.lr]"),
        (["algo.optimiser=sgd"], "algo.optimiser: unknown 'sgd'; valid choices: rmsprop, adam"),
        (["algo.optimiser=adam", "algo.optim_betas=[0.9,1.0]"], "algo.optim_betas must be two"),
        (["env.args.bogus=1", "env=macf"], "bogus"),
        (["resume=/nonexistent/run"], "checkpoint not found"),
        (["rule=smax"], "rule: only the SMAX envs (env=smax_*) take a learning rule"),
    ],
)
def test_bad_input_is_a_one_line_error_and_leaves_no_run_dir(tmp_path, args, message):
    run_dir = tmp_path / "run"
    result = run_cli("riskq.cli.train", *args, f"hydra.run.dir={run_dir}")
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not run_dir.exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("algo.lr=-0.001", "algo.lr must be finite and > 0, got -0.001"),
        ("algo.grad_clip=-1", "algo.grad_clip must be finite and > 0"),
        ("algo.huber_kappa=0", "algo.huber_kappa must be finite and > 0"),
        ("algo.updates_per_episode=-1", "algo.updates_per_episode must be finite and > 0"),
        ("algo.batch_size=10000", "algo.batch_size (10000) must be <= algo.buffer_size (5000)"),
        ("algo.optim_betas=[0.9]", "algo.optim_betas must be two values that lie in [0, 1)"),
        ("algo.mixer_args.n_heads=0", "algo.mixer_args.n_heads must be >= 1, got 0"),
        ("algo.agent.hidden_dim=0", "algo.agent.hidden_dim must be >= 1, got 0"),
        ("eval_interval=0", "eval_interval must be >= 1, got 0"),
        ("algo.epsilon_start=2", "algo.epsilon_start must lie in [0, 1], got 2.0"),
        ("algo.mixer=qmx", "algo.mixer: unknown 'qmx'; valid choices: "),
        pytest.param(
            "device=cuda:0",
            "device: 'cuda:0' is not usable here",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here"),
        ),
    ],
)
def test_values_the_schema_cannot_check_are_refused_before_anything_is_built(override, message):
    """Wrong-sign rates, empty layers, a batch larger than the buffer: each would train
    quietly into nonsense (a negative clip turns the gradient around) or fail deep inside."""
    with pytest.raises(ValueError) as refused:
        build_experiment(compose_config([override]))
    assert message in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("key", "bad"),
    [(key, 0) for key in experiment.COUNTS]
    + [(key, bad) for key in experiment.POSITIVE_REALS for bad in (0.0, float("inf"))]
    + [(key, bad) for key in experiment.PROBABILITIES for bad in (-0.1, 1.5)],
)
def test_every_checked_key_refuses_a_value_out_of_its_range(key, bad):
    cfg = TrainConfig()
    parent, _, name = key.rpartition(".")
    holder = experiment.config_value(cfg, parent) if parent else cfg
    experiment.validate_numbers(cfg)  # the defaults pass
    setattr(holder, name, bad)
    with pytest.raises(ValueError, match=rf"^{re.escape(key)} must "):
        experiment.validate_numbers(cfg)


def start_long_run(run_dir: Path, checkpoint_interval: int) -> subprocess.Popen:
    """riskq-train on MACN with a budget it will not reach, in the background."""
    args = ["env=macn", "t_max=10000000", f"checkpoint_interval={checkpoint_interval}"]
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "riskq.cli.train",
            *args,
            "progress=false",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_marks_the_run_interrupted_and_keeps_its_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    process = start_long_run(run_dir, checkpoint_interval=200)
    checkpoint = run_dir / "checkpoints" / "latest.pt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
    assert checkpoint.exists(), process.stderr.read() if process.poll() is not None else "slow"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert err.strip() == "riskq-train: interrupted"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert checkpoint.exists() and not (run_dir / ".riskq.lock").exists()
    saved = torch.load(checkpoint, weights_only=True)["counters"]["t_env"]
    assert summary["checkpoint_t_env"] == saved and summary["t_env"] >= saved


def test_a_killed_run_says_where_its_checkpoint_is(tmp_path):
    """SIGKILL leaves no chance to write a status: summary.json, rewritten after every
    checkpoint, still says how far resume= will continue, and the tables' note shows it."""
    run_dir = tmp_path / "run"
    process = start_long_run(run_dir, checkpoint_interval=3000)
    summary_path = run_dir / "summary.json"

    def recorded_checkpoint():
        try:
            return json.loads(summary_path.read_text()).get("checkpoint_t_env")
        except (OSError, ValueError):
            return None

    deadline = time.monotonic() + 240
    while recorded_checkpoint() is None and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.kill()
    process.communicate(timeout=60)
    summary = json.loads(summary_path.read_text())
    saved = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)["counters"]
    assert summary["status"] == "running"
    assert summary["checkpoint_t_env"] == saved["t_env"] > 0
    note = incomplete_note([(run_dir, run_status(run_dir))], where="the table")
    expected = f"running or killed; checkpoint at {saved['t_env']} of 10000000 env steps"
    assert note == f"1 incomplete run left out of the table: {run_dir} ({expected})"


def test_missing_checkpoint_in_eval_is_a_one_line_error(tmp_path):
    result = run_cli("riskq.cli.evaluate", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "checkpoint not found" in result.stderr


@pytest.mark.parametrize(
    "schedule",
    [[], ["algo.lr_finish=0.0002", "algo.lr_anneal_steps=500"], ["algo.optimiser=adam"]],
    ids=["constant", "annealed", "adam"],
)
def test_resume_continues_exactly(tmp_path, schedule):
    base = [
        *schedule,
        "env=macn",
        "t_max=600",
        "num_envs=4",
        "eval_episodes=4",
        "eval_interval=200",
        "log_interval=100",
        "checkpoint_interval=100000",
        "algo.batch_size=4",
        "algo.target_update_interval=8",
        "progress=false",
        "seed=5",
    ]
    full = train_in_process(tmp_path / "full", base)
    half_cfg = compose_config([*base, "t_max=300"])
    train(half_cfg, tmp_path / "half", build_experiment(half_cfg))
    resumed_cfg = compose_config([*base, f"resume={tmp_path / 'half'}"])
    resumed = train(resumed_cfg, tmp_path / "half", build_experiment(resumed_cfg))
    assert resumed == full
    params_full = torch.load(tmp_path / "full/checkpoints/latest.pt", weights_only=True)
    params_resumed = torch.load(tmp_path / "half/checkpoints/latest.pt", weights_only=True)
    for name, value in params_full["learner"]["agent"].items():
        assert torch.equal(value, params_resumed["learner"]["agent"][name]), name
    lines_full = (tmp_path / "full/metrics.jsonl").read_text().splitlines()
    lines_resumed = (tmp_path / "half/metrics.jsonl").read_text().splitlines()
    strip = [json.loads(line) for line in lines_full]
    again = [json.loads(line) for line in lines_resumed]
    for record in strip + again:
        record.pop("train/env_steps_per_s", None)  # wall-clock speed differs, the rest must not
    assert again == strip


def test_learning_rate_anneals_linearly_to_lr_finish_then_holds():
    constant = AlgoConfig(lr=1e-3)
    annealed = AlgoConfig(lr=1e-3, lr_finish=1e-4)
    assert learning_rate(constant, 900, t_max=1000) == 1e-3
    assert learning_rate(annealed, 0, t_max=1000) == pytest.approx(1e-3)
    assert learning_rate(annealed, 500, t_max=1000) == pytest.approx(5.5e-4)
    assert learning_rate(annealed, 4000, t_max=1000) == pytest.approx(1e-4)
    short = AlgoConfig(lr=1e-3, lr_finish=0.0, lr_anneal_steps=100)
    assert learning_rate(short, 50, t_max=1000) == pytest.approx(5e-4)
    assert learning_rate(short, 100, t_max=1000) == 0.0


def test_annealed_run_logs_its_learning_rate_and_ends_near_lr_finish(tmp_path):
    cfg = compose_config([*TINY, "env=macn", "t_max=600", "algo.lr_finish=0.0001"])
    exp = build_experiment(cfg)
    train(cfg, tmp_path, exp)
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = [(m["step"], m["train/lr"]) for m in metrics if "train/lr" in m]
    assert len(logged) >= 3
    for step, lr in logged:  # the rate of the env step the updates ran at
        assert lr == pytest.approx(learning_rate(cfg.algo, step, t_max=600))
    assert [lr for _, lr in logged] == sorted((lr for _, lr in logged), reverse=True)
    assert 1e-4 <= exp.learner.optimiser.lr < 2.5e-4  # the last updates ran near t_max


@pytest.mark.slow
@pytest.mark.parametrize(
    ("risk", "expected"),
    [(["risk=neutral"], "(R, R)"), (["risk=wang"], "(M, M)"), (["risk=cvar"], "(S, S)")],
)
def test_riskq_learns_the_risk_optimal_joint_action_on_the_risk_ladder(tmp_path, risk, expected):
    summary = train_in_process(tmp_path, [*risk, "progress=false", "seed=1"])
    assert summary["optimal_action"] == expected
    assert summary["greedy_action"] == expected


@pytest.mark.parametrize("env", sorted(p.stem for p in (ROOT / "configs" / "env").glob("*.yaml")))
def test_every_env_config_composes_into_the_schema(env):
    cfg = compose_config([f"env={env}"])
    assert cfg.env.label and cfg.env.name in ENVS


@pytest.mark.parametrize("risk", sorted(p.stem for p in (ROOT / "configs" / "risk").glob("*.yaml")))
def test_every_risk_config_composes_and_builds_its_measure(risk):
    cfg = compose_config([f"risk={risk}"])
    assert make_risk_measure(cfg.risk.name, cfg.risk.level()).name == risk


def test_risk_alpha_alias_sets_the_level():
    cfg = compose_config(["risk=cvar", "risk.alpha=0.3"])
    assert cfg.risk.level() == 0.3


@pytest.mark.parametrize(
    ("launcher", "threads", "expected"),
    [
        ({}, 2, 2),  # basic launcher: one job at a time keeps the run's threads
        ({"n_jobs": 2}, 2, 1),  # joblib, 2 jobs on 2 cores: one core each
        ({"n_jobs": 1}, 2, 2),
        ({"n_jobs": 2}, 1, 1),
        ({"cpus_per_task": 1}, 4, 1),  # submitit: the cores a task gets
    ],
)
def test_sweep_jobs_get_at_most_their_share_of_the_cores(launcher, threads, expected, monkeypatch):
    from omegaconf import OmegaConf

    from riskq.cli.train import sweep_threads

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert sweep_threads(threads, OmegaConf.create(launcher)) == expected
