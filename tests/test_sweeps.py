"""Sweeps through Hydra's joblib and submitit launchers, and plots of their real logs."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from budgets import SWEEP

ROOT = Path(__file__).resolve().parents[1]


def riskq(module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def sweep_runs(sweep_dir: Path) -> list[Path]:
    return sorted(path.parent for path in sweep_dir.glob("*/summary.json"))


@pytest.mark.parametrize("launcher", ["parallel", "submitit_local_riskq"])
def test_sweep_runs_every_job_in_its_own_directory(tmp_path, launcher):
    sweep_dir = tmp_path / "sweep"
    result = riskq(
        "riskq.cli.train",
        "-m",
        f"hydra/launcher={launcher}",
        "seed=0,1",
        *SWEEP,
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    runs = sweep_runs(sweep_dir)
    assert len(runs) == 2
    for seed, run in enumerate(runs):
        assert run.name.startswith(f"{seed}_") and f"seed-{seed}" in run.name.split("_")
        assert (run / "config.yaml").read_text().count(f"seed: {seed}") == 1
        assert json.loads((run / "summary.json").read_text())["t_env"] >= 48
        assert list((run / "tb").glob("events.out.tfevents.*"))


def test_plot_aggregates_a_real_sweep(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = riskq(
        "riskq.cli.train",
        "-m",
        "seed=0,1",
        "risk=neutral,cvar",
        *SWEEP,
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(sweep_runs(sweep_dir)) == 4
    out = tmp_path / "plots"
    plotted = riskq("riskq.cli.plot", str(sweep_dir), "--out", str(out))
    assert plotted.returncode == 0, plotted.stderr
    assert (out / "risk_ladder.png").stat().st_size > 10_000
    assert (out / "risk_ladder.svg").stat().st_size > 10_000
    with (out / "final_performance.csv").open() as handle:
        rows = {row["risk"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"neutral", "cvar(0.2)"}
    summaries = [json.loads((run / "summary.json").read_text()) for run in sweep_runs(sweep_dir)]
    neutral = [s["eval/return_mean"] for s in summaries if s["optimal_action"] == "(R, R)"]
    assert int(rows["neutral"]["n_seeds"]) == len(neutral) == 2
    assert float(rows["neutral"]["eval/return_mean_mean"]) == pytest.approx(sum(neutral) / 2)


def test_a_sweep_waits_for_every_run_and_names_each_failed_one_on_one_line(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = riskq(
        "riskq.cli.train",
        "-m",
        "hydra/launcher=submitit_local_riskq",
        "seed=0,1",
        "algo.lr=0.001,1e30",  # 1e30 diverges: a failed run after its first updates
        *SWEEP,
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert result.returncode == 1, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if not line.startswith("[")]
    assert [line.split(":")[0] for line in lines] == [
        "run 1 (seed=0 algo.lr=1e+30) failed",
        "run 3 (seed=1 algo.lr=1e+30) failed",
        "riskq-train",
    ]
    assert all("non-finite loss" in line for line in lines[:2])
    assert lines[2].startswith("riskq-train: error: 2 of 4 runs failed")
    statuses = sorted(
        json.loads((run / "summary.json").read_text())["status"] for run in sweep_runs(sweep_dir)
    )
    assert statuses == ["complete", "complete", "failed", "failed"]


def test_a_sweep_reissued_with_resume_auto_continues_every_run(tmp_path):
    """The same sweep command with resume=auto: an interrupted run continues from its checkpoint
    (keeping its log), a missing one starts, and at the same t_max nothing changes."""
    sweep_dir = tmp_path / "sweep"
    budget = [override for override in SWEEP if not override.startswith("t_max=")]

    def sweep(t_max: int) -> subprocess.CompletedProcess:
        return riskq(
            "riskq.cli.train", "-m", "seed=0,1", *budget, f"t_max={t_max}", "resume=auto",
            f"hydra.sweep.dir={sweep_dir}",
        )  # fmt: skip

    first = sweep(48)
    assert first.returncode == 0, first.stderr
    kept, removed = sweep_runs(sweep_dir)
    assert [p.name[:2] for p in (kept, removed)] == ["0_", "1_"]
    assert not any("t_max" in p.name or "resume" in p.name for p in (kept, removed))
    first_log = (kept / "metrics.jsonl").read_text().splitlines()
    shutil.rmtree(removed)
    longer = sweep(96)
    assert longer.returncode == 0, longer.stderr
    assert sweep_runs(sweep_dir) == [kept, removed]
    for run in (kept, removed):
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "complete" and summary["t_env"] >= 96, summary
    log = (kept / "metrics.jsonl").read_text().splitlines()
    assert log[: len(first_log) - 1] == first_log[:-1]  # its history up to the final evaluation
    assert len(log) > len(first_log)
    before = {run: (run / "metrics.jsonl").read_bytes() for run in (kept, removed)}
    again = sweep(96)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("is already complete") == 2
    assert before == {run: (run / "metrics.jsonl").read_bytes() for run in (kept, removed)}
