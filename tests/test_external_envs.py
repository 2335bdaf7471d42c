"""RiskQ and a baseline train on external suites (mpe2 simple_spread, lbforaging) via the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("env", ["simple_spread", "lbforaging"])
@pytest.mark.parametrize("algo", ["riskq", "qmix"])
def test_short_training_run_on_an_external_env(tmp_path, env, algo):
    run_dir = tmp_path / "run"
    args = [
        f"env={env}",
        f"algo={algo}",
        "risk=cvar",
        "t_max=400",
        "num_envs=4",
        "eval_episodes=4",
        "eval_interval=200",
        "log_interval=100",
        "algo.batch_size=4",
        "algo.agent.n_quantiles=8",
        "progress=false",
        f"hydra.run.dir={run_dir}",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "riskq.cli.train", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["t_env"] >= 400 and summary["updates"] > 0
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train/loss"] for r in records if r.get("train/loss") is not None]
    assert losses and all(abs(loss) < 1e6 for loss in losses)
    limit = 25  # both configs: 25-step episodes
    assert 0 < summary["eval/episode_length"] <= limit
