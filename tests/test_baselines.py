"""The baselines sweep (scripts/baselines.py) composes, and its table script gives known numbers."""

import itertools
import json
from pathlib import Path

import pytest
import yaml

from riskq.cli.compose import compose_config
from scripts import baselines, baselines_table

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


def write_run(
    root: Path,
    name: str,
    *,
    algo: str,
    risk: str,
    summary: dict,
    env: tuple = ("macn", "macn"),
    seed: int = 0,
) -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    config = {
        "algo": {"name": algo},
        "env": {"name": env[0], "label": env[1]},
        "risk": {"name": risk, "param": LEVELS[risk], "alpha": None, "eta": None},
        "seed": seed,
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / "tb").mkdir()
    (run_dir / ".hydra").mkdir()  # Hydra's copy of the config is not a run
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    return run_dir


def summary(ret: float, cvar: float, falls: float) -> dict:
    return {"eval/return_mean": ret, "eval/return_cvar_0.2": cvar, "eval/cliff_falls": falls}


@pytest.fixture
def fake_sweep(tmp_path) -> Path:
    """MACN: RiskQ under Wang returns 1-4, DMIX 0, VDN 1-4; an unfinished DMIX run."""
    root = tmp_path / "sweep"
    for seed, ret in enumerate([4.0, 1.0, 3.0, 2.0]):
        write_run(root / "distributional", f"riskq_w{seed}", algo="riskq", risk="wang",
                  summary=summary(ret, -1.0, 0.1), seed=seed)  # fmt: skip
        write_run(root / "distributional", f"dmix_w{seed}", algo="dmix", risk="wang",
                  summary=summary(0.0, -5.0 + seed, 0.5), seed=seed)  # fmt: skip
        write_run(root / "expected_value", f"vdn_{seed}", algo="vdn", risk="neutral",
                  summary=summary(ret, -8.0, 0.4 + 0.1 * seed), seed=seed)  # fmt: skip
    write_run(root / "distributional", "dmix_w9", algo="dmix", risk="wang",
              summary={**summary(99.0, 99.0, 0.0), "status": "running"})  # fmt: skip
    return root


def rows_of(text: str) -> dict[tuple[str, str], dict[str, str]]:
    lines = [line.strip("|").split(" | ") for line in text.strip().splitlines()]
    header = [cell.strip() for cell in lines[0]]
    rows = [dict(zip(header, (cell.strip() for cell in line), strict=True)) for line in lines[2:]]
    return {(row["algo"], row["risk"]): row for row in rows}


def test_table_of_a_fake_sweep(fake_sweep, tmp_path, capsys):
    out = tmp_path / "out"
    assert baselines_table.main([str(fake_sweep), "--out", str(out), "--reps", "200"]) == 0
    assert "1 incomplete run left out" in capsys.readouterr().err  # dmix_w9; .hydra is no run
    rows = rows_of((out / "baselines_macn.md").read_text())
    assert set(rows) == {("riskq", "wang(0.75)"), ("dmix", "wang(0.75)"), ("vdn", "neutral")}
    riskq, dmix, vdn = (
        rows[("riskq", "wang(0.75)")],
        rows[("dmix", "wang(0.75)")],
        rows[("vdn", "neutral")],
    )
    assert riskq["seeds"] == dmix["seeds"] == vdn["seeds"] == "4"  # the running run is left out
    assert riskq["return: IQM [95% CI]"].startswith("2.5 [")  # middle two of 1, 2, 3, 4
    assert riskq["CVaR(0.2): IQM [95% CI]"] == "-1 [-1, -1]"
    assert riskq["falls: IQM [95% CI]"] == "0.1 [0.1, 0.1]"
    assert dmix["CVaR(0.2): IQM [95% CI]"].startswith("-3.5 [")  # middle two of -5 .. -2
    assert vdn["falls: IQM [95% CI]"].startswith("0.55 [")
    assert riskq["P(RiskQ > algo): return"] == "-"
    assert dmix["P(RiskQ > algo): return"] == "1 [1, 1]"  # every RiskQ run beats every DMIX run
    assert dmix["P(RiskQ > algo): CVaR(0.2)"] == "1 [1, 1]"
    assert vdn["P(RiskQ > algo): return"].startswith("0.5 [")  # the same returns
    assert vdn["P(RiskQ > algo): CVaR(0.2)"] == "1 [1, 1]"
    assert (out / "baselines_macn_iqm.png").stat().st_size > 10_000
    assert (out / "baselines_macn_iqm.svg").is_file()


def test_smax_table_scores_win_rate_and_allies_lost_in_a_block_per_risk(tmp_path, capsys):
    """SMAX 3m: RiskQ under Wang wins 3 of 4 seeds' battles at rates 1, 1, 0.5, 0.5 and
    risk-neutral RiskQ and QMIX at 0.5 on every seed. Two blocks: Wang, then neutral."""
    root, smax = tmp_path / "sweep", ("smax", "smax_3m")
    for seed, win in enumerate([1.0, 1.0, 0.5, 0.5]):
        for algo, risk, rate in (("riskq", "wang", win), ("riskq", "neutral", 0.5),
                                 ("qmix", "neutral", 0.5)):  # fmt: skip
            run = {"eval/return_mean": 1.0 + rate, "eval/return_cvar_0.2": rate,
                   "eval/win_rate": rate, "eval/allies_dead": 3.0 - 2 * rate}  # fmt: skip
            write_run(root, f"{algo}_{risk}_{seed}", algo=algo, risk=risk, summary=run, env=smax)
    out = tmp_path / "out"
    assert baselines_table.main([str(root), "--out", str(out), "--reps", "200"]) == 0
    lines = [line.strip("|").split(" | ") for line in
             (out / "baselines_smax_3m.md").read_text().strip().splitlines()]  # fmt: skip
    header = [cell.strip() for cell in lines[0]]
    assert header[4:7] == ["win rate: IQM [95% CI]", "return: IQM [95% CI]",
                           "CVaR(0.2): IQM [95% CI]"]  # fmt: skip
    assert header[7] == "allies lost: IQM [95% CI]"
    assert header[8:] == [f"P(RiskQ > algo): {name}" for name in ("win rate", "return",
                                                                   "CVaR(0.2)")]  # fmt: skip
    rows = [dict(zip(header, (cell.strip() for cell in line), strict=True)) for line in lines[2:]]
    blocks = [(row["block"], row["algo"], row["risk"]) for row in rows]
    assert blocks == [("wang(0.75)", "riskq", "wang(0.75)"), ("wang(0.75)", "qmix", "neutral"),
                      ("neutral", "riskq", "neutral"), ("neutral", "qmix", "neutral")]  # fmt: skip
    riskq_wang, qmix_wang, _, qmix_neutral = rows
    assert riskq_wang["win rate: IQM [95% CI]"].startswith("0.75 [")  # middle two: 1, 0.5
    assert riskq_wang["allies lost: IQM [95% CI]"].startswith("1.5 [")
    # RiskQ-Wang wins more on 2 of 4 seeds and ties on 2: P = (2 + 0.5 * 2) / 4
    assert qmix_wang["P(RiskQ > algo): win rate"].startswith("0.75 [")
    assert qmix_neutral["P(RiskQ > algo): win rate"] == "0.5 [0.5, 0.5]"  # the same rates
    assert (out / "baselines_smax_3m_iqm.png").is_file()


def test_eval_scores_come_from_each_runs_riskq_eval_file(tmp_path, capsys):
    """--scores eval reads eval_<own measure>.json (here other numbers than summary.json, and
    a file under another measure that must be ignored); a run without one stops the table."""
    root = tmp_path / "sweep"
    for seed, ret in enumerate([4.0, 1.0, 3.0, 2.0]):
        for algo, risk in (("riskq", "wang"), ("vdn", "neutral")):
            write_run(root, f"{algo}_{seed}", algo=algo, risk=risk, summary=summary(-9, -9, 9))
            own = "wang_0.75" if risk == "wang" else "neutral"
            scores = summary(ret if algo == "riskq" else 0.0, -1.0, 0.5)
            (root / f"{algo}_{seed}" / f"eval_{own}.json").write_text(json.dumps(scores))
            other = root / f"{algo}_{seed}" / "eval_cvar_0.1.json"
            other.write_text(json.dumps(summary(7, 7, 7)))
    out = tmp_path / "out"
    args = [str(root), "--out", str(out), "--reps", "200", "--scores", "eval"]
    assert baselines_table.main(args) == 0
    assert not (out / "baselines_macn.md").exists()  # the final-evaluation table is not touched
    rows = rows_of((out / "baselines_macn_eval.md").read_text())
    assert rows[("riskq", "wang(0.75)")]["return: IQM [95% CI]"].startswith("2.5 [")
    assert rows[("riskq", "wang(0.75)")]["falls: IQM [95% CI]"] == "0.5 [0.5, 0.5]"
    assert rows[("vdn", "neutral")]["P(RiskQ > algo): return"] == "1 [1, 1]"
    assert (out / "baselines_macn_eval_iqm.png").is_file()
    (root / "vdn_2" / "eval_neutral.json").unlink()
    capsys.readouterr()
    assert baselines_table.main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "vdn_2/eval_neutral.json not found" in err
    assert "riskq-eval" in err


def test_run_records_rebuild_the_table_and_take_new_seeds(fake_sweep, tmp_path, capsys):
    """The table's run records (baselines_<env>_runs.json) alone give the same table; a later
    sweep adds its seeds to them, and its run replaces a record of the same seed."""
    out = tmp_path / "out"
    assert baselines_table.main([str(fake_sweep), "--out", str(out), "--reps", "200"]) == 0
    runs = out / "baselines_macn_runs.json"
    records = json.loads(runs.read_text())
    assert len(records) == 12  # 4 seeds x (riskq, dmix, vdn); the running run is left out
    riskq = [r for r in records if r["algo"] == "riskq"]
    assert [r["risk"] for r in riskq] == ["wang(0.75)"] * 4
    assert sorted(r["scores"]["eval/return_mean"] for r in riskq) == [1.0, 2.0, 3.0, 4.0]
    table = (out / "baselines_macn.md").read_text()

    again = tmp_path / "again"
    assert baselines_table.main(["--runs", str(runs), "--out", str(again), "--reps", "200"]) == 0
    assert (again / "baselines_macn.md").read_text() == table

    later = tmp_path / "later"  # seed 4 is new; seed 0 is re-run with another return
    for seed, ret in ((4, 5.0), (0, 9.0)):
        write_run(later, f"riskq_w{seed}", algo="riskq", risk="wang",
                  summary=summary(ret, -1.0, 0.1), seed=seed)  # fmt: skip
    merged = tmp_path / "merged"
    capsys.readouterr()
    args = [str(later), "--runs", str(runs), "--out", str(merged), "--reps", "200"]
    assert baselines_table.main(args) == 0
    assert "replace --runs records: " in capsys.readouterr().err
    rows = rows_of((merged / "baselines_macn.md").read_text())
    assert rows[("riskq", "wang(0.75)")]["seeds"] == "5"
    # returns 9 (seed 0 re-run; its record said 4), 1, 3, 2, 5: the IQM keeps 2, 3, 5
    assert rows[("riskq", "wang(0.75)")]["return: IQM [95% CI]"].startswith("3.33 [")
    assert rows[("dmix", "wang(0.75)")]["seeds"] == "4"


@pytest.mark.parametrize("content", ["{}", '[{"env": "macn"}]', "not json"])
def test_a_bad_runs_file_is_one_line_and_exit_1(tmp_path, capsys, content):
    bad = tmp_path / "runs.json"
    bad.write_text(content)
    assert baselines_table.main(["--runs", str(bad), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--runs {bad}: not a run-records file" in err


def test_no_sweep_and_no_runs_is_an_error(capsys):
    assert baselines_table.main([]) == 2
    assert "give a sweep dir or --runs FILE" in capsys.readouterr().err


LATE_METRICS = [  # t_max 100: evaluations at 50, 80, 100 count; 20 and the final repeat do not
    {"step": 20, "eval/return_mean": -10.0},
    {"step": 40, "train/return_mean": 99.0},
    {"step": 50, "eval/return_mean": 2.0, "eval/crashes": 1.0},
    {"step": 80, "eval/return_mean": 4.0, "eval/crashes": 0.0},
    {"step": 100, "eval/return_mean": 6.0, "eval/crashes": 0.5},
    {"step": 100, "eval/return_mean": 6.0, "eval/crashes": 0.5, "final": True},
]


def test_late_scores_average_the_evaluations_of_the_second_half(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(map(json.dumps, LATE_METRICS)) + "\n")
    scores = baselines_table.late_scores(path, {"t_max": 100})
    assert scores == {"eval/return_mean": 4.0, "eval/crashes": 0.5}


def test_table_of_late_scores(tmp_path):
    root = tmp_path / "sweep"
    for seed, shift in enumerate([0.0, 3.0]):
        for algo, risk in (("riskq", "wang"), ("vdn", "neutral")):
            run = write_run(root, f"{algo}_{seed}", algo=algo, risk=risk,
                            summary=summary(-9, -9, 9), seed=seed)  # fmt: skip
            config = yaml.safe_load((run / "config.yaml").read_text())
            (run / "config.yaml").write_text(yaml.safe_dump({**config, "t_max": 100}))
            offset = shift - (10.0 if algo == "vdn" else 0.0)  # riskq: 4 and 7; vdn: -6 and -3
            text = "\n".join(
                json.dumps({**r, "eval/return_mean": r["eval/return_mean"] + offset})
                if "eval/return_mean" in r
                else json.dumps(r)
                for r in LATE_METRICS
            )
            (run / "metrics.jsonl").write_text(text + "\n")
    out = tmp_path / "out"
    args = [str(root), "--out", str(out), "--reps", "200", "--scores", "late"]
    assert baselines_table.main(args) == 0
    rows = rows_of((out / "baselines_macn_late.md").read_text())
    assert rows[("riskq", "wang(0.75)")]["return: IQM [95% CI]"].startswith("5.5 [")  # 4, 7
    assert rows[("vdn", "neutral")]["return: IQM [95% CI]"].startswith("-4.5 [")  # -6, -3
    assert rows[("vdn", "neutral")]["P(RiskQ > algo): return"] == "1 [1, 1]"
    records = json.loads((out / "baselines_macn_late_runs.json").read_text())
    assert {r["scores"]["eval/return_mean"] for r in records if r["algo"] == "riskq"} == {4.0, 7.0}
