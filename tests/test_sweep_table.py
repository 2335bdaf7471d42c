"""scripts/sweep_table.py: groups by the canonical risk label and lists incomplete runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("sweep_table", ROOT / "scripts" / "sweep_table.py")
sweep_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep_table)


def write_run(run_dir: Path, *, risk: dict, summary: dict | None, seed: int = 0) -> Path:
    """config.yaml, tb/ and (unless None) summary.json, as riskq-train writes them."""
    (run_dir / "tb").mkdir(parents=True)
    config = {"env": {"label": "risk_ladder"}, "algo": {"name": "riskq"}, "risk": risk}
    (run_dir / "config.yaml").write_text(yaml.safe_dump({**config, "seed": seed}))
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def test_incomplete_runs_are_listed_and_left_out(tmp_path, capsys, monkeypatch):
    alias = {"name": "cvar", "param": 0.2, "alpha": 0.1, "eta": None}  # trains CVaR(0.1)
    write_run(tmp_path / "0", risk=alias, summary={"status": "complete", "eval/return_mean": 1.0})
    write_run(tmp_path / "1", risk=alias, summary={"eval/return_mean": 3.0}, seed=1)  # older
    killed = write_run(tmp_path / "2", risk=alias, summary=None, seed=2)
    failed = write_run(tmp_path / "3", risk=alias, summary={"status": "failed"}, seed=3)
    monkeypatch.setattr("sys.argv", ["sweep_table.py", str(tmp_path), "--keys", "eval/return_mean"])
    sweep_table.main()
    captured = capsys.readouterr()
    assert "| risk_ladder | riskq | cvar(0.1) | 2 | 2 [1, 3] |" in captured.out
    [warning] = captured.err.splitlines()
    assert warning.startswith("sweep_table: warning: 2 incomplete runs left out of the table")
    assert f"{killed} (no summary.json)" in warning and f"{failed} (failed)" in warning


def test_best_column_is_the_highest_evaluation_of_each_run(tmp_path, capsys, monkeypatch):
    for seed, evaluations in enumerate([[-500.0, -70.0, -400.0], [-90.0, -300.0]]):
        run = write_run(
            tmp_path / str(seed),
            risk={"name": "wang", "param": 0.75},
            summary={"status": "complete", "eval/return_mean": evaluations[-1]},
            seed=seed,
        )
        rows = [{"step": i, "eval/return_mean": value} for i, value in enumerate(evaluations)]
        rows += [
            {"step": 9, "train/loss": 1.0},
            {"step": 9, "eval/return_mean": 5.0, "final": True},
        ]
        (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    argv = ["sweep_table.py", str(tmp_path), "--keys", "eval/return_mean"]
    monkeypatch.setattr("sys.argv", [*argv, "--best", "eval/return_mean"])
    sweep_table.main()
    header, _, row = capsys.readouterr().out.splitlines()
    assert header.endswith("| eval/return_mean | best eval/return_mean |")
    assert row == "| risk_ladder | riskq | wang(0.75) | 2 | -350 [-400, -300] | -80 [-90, -70] |"


def test_late_column_is_the_mean_of_each_runs_evaluations_from_a_step_on(
    tmp_path, capsys, monkeypatch
):
    for seed, evaluations in enumerate([[-500.0, -70.0, -400.0], [-90.0, -300.0, -100.0]]):
        run = write_run(
            tmp_path / str(seed),
            risk={"name": "cvar", "param": 0.2},
            summary={"status": "complete", "eval/return_mean": evaluations[-1]},
            seed=seed,
        )
        rows = [{"step": 10 * i, "eval/return_mean": value} for i, value in enumerate(evaluations)]
        rows.append({"step": 20, "eval/return_mean": 99.0, "final": True})  # repeats the last
        (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    argv = ["sweep_table.py", str(tmp_path), "--keys", "eval/return_mean", "--late-from", "10"]
    monkeypatch.setattr("sys.argv", [*argv, "--late", "eval/return_mean"])
    sweep_table.main()
    header, _, row = capsys.readouterr().out.splitlines()
    assert header.endswith("| eval/return_mean | late eval/return_mean |")
    # seed 0: mean(-70, -400) = -235; seed 1: mean(-300, -100) = -200
    assert row == "| risk_ladder | riskq | cvar(0.2) | 2 | -250 [-400, -100] | -218 [-235, -200] |"
    monkeypatch.setattr("sys.argv", [*argv, "--late", "eval/return_mean", "--late-from", "30"])
    with pytest.raises(SystemExit, match="no evaluation of eval/return_mean at env step >= 30"):
        sweep_table.main()
