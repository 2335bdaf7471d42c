"""``riskq-table`` (riskq.cli.table, riskq.analysis) on run directories with known values:
hand-written config.yaml / summary.json / metrics.jsonl files as riskq-train writes them, and
one tiny real sweep."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from riskq.analysis.effects import Effect, parse_effect
from riskq.analysis.runs import late_scores
from riskq.cli.table import main as riskq_table
from riskq.run.run_files import read_metrics

ROOT = Path(__file__).resolve().parents[1]
LEVELS = {"wang": 0.75, "cvar": 0.2, "neutral": 0.0}  # configs/risk/


def write_run(
    root: Path,
    name: str,
    *,
    algo: str = "riskq",
    risk: str | dict = "wang",
    summary: dict | None,
    env: tuple = ("macn", "macn"),
    seed: int = 0,
    metrics: list[dict] | None = None,
) -> Path:
    """A run directory as riskq-train leaves it: config.yaml, tb/, Hydra's copy of the config
    (no run), summary.json (unless None: a run killed before it wrote one) and, if given,
    metrics.jsonl. ``risk``: a configs/risk name, or the risk mapping itself."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    if isinstance(risk, str):
        risk = {"name": risk, "param": LEVELS[risk], "alpha": None, "eta": None}
    config = {
        "algo": {"name": algo},
        "env": {"name": env[0], "label": env[1]},
        "risk": risk,
        "seed": seed,
        "t_max": 100,
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))
    if metrics is not None:
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
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
    assert riskq_table(["baselines", str(fake_sweep), "--out", str(out), "--reps", "200"]) == 0
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
    # falls: RiskQ 0.1 per episode on every seed, DMIX 0.5, VDN 0.4-0.7: fewer in every pair
    assert dmix["P(RiskQ fewer): falls"] == vdn["P(RiskQ fewer): falls"] == "1 [1, 1]"
    assert riskq["P(RiskQ fewer): falls"] == "-"
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
    assert riskq_table(["baselines", str(root), "--out", str(out), "--reps", "200"]) == 0
    lines = [line.strip("|").split(" | ") for line in
             (out / "baselines_smax_3m.md").read_text().strip().splitlines()]  # fmt: skip
    header = [cell.strip() for cell in lines[0]]
    assert header[4:7] == ["win rate: IQM [95% CI]", "return: IQM [95% CI]",
                           "CVaR(0.2): IQM [95% CI]"]  # fmt: skip
    assert header[7] == "allies lost: IQM [95% CI]"
    assert header[8:] == [*(f"P(RiskQ > algo): {name}" for name in ("win rate", "return",
                                                                     "CVaR(0.2)")),
                          "P(RiskQ fewer): allies lost"]  # fmt: skip
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
    # allies lost 1, 1, 2, 2 against QMIX's 2 on every seed: fewer on 2 of 4, ties on 2
    assert qmix_wang["P(RiskQ fewer): allies lost"].startswith("0.75 [")
    assert qmix_neutral["P(RiskQ fewer): allies lost"] == "0.5 [0.5, 0.5]"
    assert (out / "baselines_smax_3m_iqm.png").is_file()
    # Wang against risk-neutral RiskQ: more wins and fewer allies lost on 2 seeds of 4, ties on 2
    lines = (out / "baselines_smax_3m_risk.md").read_text().strip().splitlines()
    assert lines[0] == ("| risk | seeds (risk, neutral) | P(risk > neutral): win rate | "
                        "P(risk > neutral): return | P(risk > neutral): CVaR(0.2) | "
                        "P(fewer than neutral): allies lost |")  # fmt: skip
    assert len(lines) == 3 and lines[2].startswith("| wang(0.75) | 4, 4 | 0.75 [")
    assert lines[2].count("| 0.75 [") == 4
    assert "RiskQ under each risk measure against risk-neutral RiskQ" in capsys.readouterr().out


def test_risk_comparison_counts_fewer_risk_events_as_better(tmp_path):
    """MACN: RiskQ under CVaR falls 0 times per episode on every seed, risk-neutral RiskQ once;
    CVaR's returns are lower. Without risk-neutral RiskQ runs there is no comparison file."""
    root = tmp_path / "sweep"
    for seed in range(3):
        write_run(root, f"cvar_{seed}", risk="cvar", summary=summary(1.0, -1.0, 0.0), seed=seed)
        write_run(root, f"vdn_{seed}", algo="vdn", risk="neutral", summary=summary(2, -1, 1))
    out = tmp_path / "out"
    assert riskq_table(["baselines", str(root), "--out", str(out), "--reps", "200"]) == 0
    assert not (out / "baselines_macn_risk.md").exists()  # VDN is no risk-neutral RiskQ
    for seed in range(3):
        write_run(root, f"neutral_{seed}", risk="neutral", summary=summary(2.0, -1.0, 1.0))
    assert riskq_table(["baselines", str(root), "--out", str(out), "--reps", "200"]) == 0
    row = (out / "baselines_macn_risk.md").read_text().strip().splitlines()[2]
    assert row == "| cvar(0.2) | 3, 3 | 0 [0, 0] | 0.5 [0.5, 0.5] | 1 [1, 1] |"


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
    assert riskq_table(["baselines", *args]) == 0
    assert not (out / "baselines_macn.md").exists()  # the final-evaluation table is not touched
    rows = rows_of((out / "baselines_macn_eval.md").read_text())
    assert rows[("riskq", "wang(0.75)")]["return: IQM [95% CI]"].startswith("2.5 [")
    assert rows[("riskq", "wang(0.75)")]["falls: IQM [95% CI]"] == "0.5 [0.5, 0.5]"
    assert rows[("vdn", "neutral")]["P(RiskQ > algo): return"] == "1 [1, 1]"
    assert (out / "baselines_macn_eval_iqm.png").is_file()
    (root / "vdn_2" / "eval_neutral.json").unlink()
    capsys.readouterr()
    assert riskq_table(["baselines", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "vdn_2/eval_neutral.json not found" in err
    assert "riskq-eval" in err


def test_run_records_rebuild_the_table_and_take_new_seeds(fake_sweep, tmp_path, capsys):
    """The table's run records (baselines_<env>_runs.json) alone give the same table; a later
    sweep adds its seeds to them, and its run replaces a record of the same seed."""
    out = tmp_path / "out"
    assert riskq_table(["baselines", str(fake_sweep), "--out", str(out), "--reps", "200"]) == 0
    runs = out / "baselines_macn_runs.json"
    records = json.loads(runs.read_text())
    assert len(records) == 12  # 4 seeds x (riskq, dmix, vdn); the running run is left out
    riskq = [r for r in records if r["algo"] == "riskq"]
    assert [r["risk"] for r in riskq] == ["wang(0.75)"] * 4
    assert sorted(r["scores"]["eval/return_mean"] for r in riskq) == [1.0, 2.0, 3.0, 4.0]
    table = (out / "baselines_macn.md").read_text()

    again = tmp_path / "again"
    assert (
        riskq_table(["baselines", "--runs", str(runs), "--out", str(again), "--reps", "200"]) == 0
    )
    assert (again / "baselines_macn.md").read_text() == table

    later = tmp_path / "later"  # seed 4 is new; seed 0 is re-run with another return
    for seed, ret in ((4, 5.0), (0, 9.0)):
        write_run(later, f"riskq_w{seed}", algo="riskq", risk="wang",
                  summary=summary(ret, -1.0, 0.1), seed=seed)  # fmt: skip
    merged = tmp_path / "merged"
    capsys.readouterr()
    args = [str(later), "--runs", str(runs), "--out", str(merged), "--reps", "200"]
    assert riskq_table(["baselines", *args]) == 0
    assert "replace --runs records: " in capsys.readouterr().err
    rows = rows_of((merged / "baselines_macn.md").read_text())
    assert rows[("riskq", "wang(0.75)")]["seeds"] == "5"
    # returns 9 (seed 0 re-run; its record said 4), 1, 3, 2, 5: the IQM keeps 2, 3, 5
    assert rows[("riskq", "wang(0.75)")]["return: IQM [95% CI]"].startswith("3.33 [")
    assert rows[("dmix", "wang(0.75)")]["seeds"] == "4"


@pytest.mark.parametrize("content", ["{}", '[{"env": "macn"}]', "not json"])
def test_a_bad_runs_file_is_one_line_and_exit_2(tmp_path, capsys, content):
    bad = tmp_path / "runs.json"
    bad.write_text(content)
    assert riskq_table(["baselines", "--runs", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--runs {bad}: not a run-records file" in err


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (("metrics.jsonl", "[1, 2]\n"), "metrics.jsonl, line 2: not a record of scalars"),
        (("metrics.jsonl", '{"step": "abc"}\n'), "metrics.jsonl, line 2: not a record of scalars"),
        (("config.yaml", ""), "config.yaml lacks env.label (is it a riskq-train config?)"),
        (("config.yaml", "t_max: abc\n"), "config.yaml: t_max must be a int, got 'abc'"),
        (("summary.json", "[]"), "summary.json"),
    ],
)
def test_damaged_run_files_that_still_parse_are_one_line_errors(tmp_path, capsys, damage, message):
    """Files that are valid JSON or YAML but not what riskq-train writes: the table stops
    with one line naming the file, or (summary.json) leaves the run out as unreadable."""
    run = write_run(tmp_path, "0", summary={"eval/return_mean": 1.0}, env=LADDER,
                    metrics=[{"step": 0, "eval/return_mean": 1.0}])  # fmt: skip
    name, text = damage
    config = yaml.safe_load((run / "config.yaml").read_text())
    if name == "metrics.jsonl":
        (run / name).write_text((run / name).read_text() + text)
    elif name == "config.yaml":
        fields = {} if not text else {**config, **yaml.safe_load(text)}
        (run / name).write_text(yaml.safe_dump(fields) if fields else text)
    else:
        (run / name).write_text(text)
    args = ["sweep", str(tmp_path), "--keys", "eval/return_mean", "--best", "eval/return_mean"]
    code = riskq_table(args)
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and message in err
    if name == "summary.json":  # left out, as a run whose summary cannot be read
        assert code == 2 and "unreadable summary.json" in err
    else:
        assert code == 2 and err.count("\n") == 0 and err.startswith("riskq-table sweep: error:")


def test_no_sweep_and_no_runs_is_an_error(capsys):
    assert riskq_table(["baselines"]) == 2
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
    scores = late_scores(path, {"t_max": 100})
    assert scores == {"eval/return_mean": 4.0, "eval/crashes": 0.5}


def test_a_torn_last_metrics_line_is_left_out_with_a_warning(tmp_path, capsys):
    """A run killed while appending leaves a partial last line: it is dropped (one warning
    line); a broken line before the end is an error naming the file and line."""
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps(record) for record in LATE_METRICS[:4]]
    path.write_text("\n".join(lines) + "\n" + '{"step": 100, "eval/ret')
    assert read_metrics(path) == LATE_METRICS[:4]
    [warning] = capsys.readouterr().err.splitlines()
    assert warning == f"warning: {path}: partial last line 5 left out"
    assert late_scores(path, {"t_max": 100}) == {"eval/return_mean": 3.0, "eval/crashes": 0.5}
    path.write_text(lines[0] + "\n{oops\n" + lines[1] + "\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl, line 2: not a JSON record"):
        read_metrics(path)


def test_table_of_late_scores(tmp_path):
    root = tmp_path / "sweep"
    for seed, shift in enumerate([0.0, 3.0]):
        for algo, risk in (("riskq", "wang"), ("vdn", "neutral")):
            offset = shift - (10.0 if algo == "vdn" else 0.0)  # riskq: 4 and 7; vdn: -6 and -3
            metrics = [
                {**r, "eval/return_mean": r["eval/return_mean"] + offset}
                if "eval/return_mean" in r
                else r
                for r in LATE_METRICS
            ]
            write_run(root, f"{algo}_{seed}", algo=algo, risk=risk, summary=summary(-9, -9, 9),
                      seed=seed, metrics=metrics)  # fmt: skip
    out = tmp_path / "out"
    args = [str(root), "--out", str(out), "--reps", "200", "--scores", "late"]
    assert riskq_table(["baselines", *args]) == 0
    rows = rows_of((out / "baselines_macn_late.md").read_text())
    assert rows[("riskq", "wang(0.75)")]["return: IQM [95% CI]"].startswith("5.5 [")  # 4, 7
    assert rows[("vdn", "neutral")]["return: IQM [95% CI]"].startswith("-4.5 [")  # -6, -3
    assert rows[("vdn", "neutral")]["P(RiskQ > algo): return"] == "1 [1, 1]"
    records = json.loads((out / "baselines_macn_late_runs.json").read_text())
    assert {r["scores"]["eval/return_mean"] for r in records if r["algo"] == "riskq"} == {4.0, 7.0}


# riskq-table sweep (formerly scripts/sweep_table.py) ----------------------------------------

LADDER = ("matrix", "risk_ladder")


def evaluations_at(values: list[float], *, every: int = 1) -> list[dict]:
    """metrics.jsonl rows: one evaluation per value at steps 0, every, 2 every, ..., a
    training row, and the final row that repeats the last evaluation (with another value,
    so a table that counted it would show it)."""
    rows = [{"step": every * i, "eval/return_mean": v} for i, v in enumerate(values)]
    return [*rows, {"step": 9, "train/loss": 1.0}, {"step": 20, "eval/return_mean": 99.0,
                                                      "final": True}]  # fmt: skip


def test_sweep_groups_by_risk_label_and_lists_incomplete_runs(tmp_path, capsys):
    alias = {"name": "cvar", "param": 0.2, "alpha": 0.1, "eta": None}  # trains CVaR(0.1)
    complete = {"status": "complete", "eval/return_mean": 1.0}
    write_run(tmp_path, "0", risk=alias, summary=complete, env=LADDER)
    write_run(tmp_path, "1", risk=alias, summary={"eval/return_mean": 3.0}, env=LADDER, seed=1)
    killed = write_run(tmp_path, "2", risk=alias, summary=None, env=LADDER, seed=2)
    failed = write_run(tmp_path, "3", risk=alias, summary={"status": "failed"}, env=LADDER)
    assert riskq_table(["sweep", str(tmp_path), "--keys", "eval/return_mean"]) == 0
    captured = capsys.readouterr()
    assert "| risk_ladder | riskq | cvar(0.1) | 2 | 2 [1, 3] |" in captured.out  # older summary
    [warning] = captured.err.splitlines()
    assert warning.startswith("riskq-table sweep: warning: 2 incomplete runs left out of the table")
    assert f"{killed} (no summary.json)" in warning and f"{failed} (failed)" in warning


def test_sweep_best_column_is_the_highest_evaluation_of_each_run(tmp_path, capsys):
    for seed, evaluations in enumerate([[-500.0, -70.0, -400.0], [-90.0, -300.0]]):
        write_run(tmp_path, str(seed), summary={"eval/return_mean": evaluations[-1]}, env=LADDER,
                  seed=seed, metrics=evaluations_at(evaluations))  # fmt: skip
    args = ["sweep", str(tmp_path), "--keys", "eval/return_mean", "--best", "eval/return_mean"]
    assert riskq_table(args) == 0
    header, _, row = capsys.readouterr().out.splitlines()
    assert header.endswith("| eval/return_mean | best eval/return_mean |")
    assert row == "| risk_ladder | riskq | wang(0.75) | 2 | -350 [-400, -300] | -80 [-90, -70] |"


def test_sweep_late_column_is_the_mean_of_each_runs_evaluations_from_a_step_on(tmp_path, capsys):
    for seed, evaluations in enumerate([[-500.0, -70.0, -400.0], [-90.0, -300.0, -100.0]]):
        write_run(tmp_path, str(seed), risk="cvar", summary={"eval/return_mean": evaluations[-1]},
                  env=LADDER, seed=seed, metrics=evaluations_at(evaluations, every=10))  # fmt: skip
    args = ["sweep", str(tmp_path), "--keys", "eval/return_mean", "--late", "eval/return_mean"]
    assert riskq_table([*args, "--late-from", "10"]) == 0
    header, _, row = capsys.readouterr().out.splitlines()
    assert header.endswith("| eval/return_mean | late eval/return_mean |")
    # seed 0: mean(-70, -400) = -235; seed 1: mean(-300, -100) = -200
    assert row == "| risk_ladder | riskq | cvar(0.2) | 2 | -250 [-400, -100] | -218 [-235, -200] |"
    assert riskq_table([*args, "--late-from", "30"]) == 2
    [error] = capsys.readouterr().err.splitlines()
    assert error == "riskq-table sweep: error: no evaluation of eval/return_mean at env step >= 30"


def test_sweep_curve_columns_are_window_means_and_by_seed_rows_are_runs(tmp_path, capsys):
    """Budget 40 (``write_run``'s t_max is 100: set here), evaluations every 10 steps; two
    windows: [0, 20) and [20, 40], the last one also taking the evaluation at step 40."""
    for seed, evaluations in enumerate([[1.0, 3.0, 5.0, 7.0, 9.0], [0.0, 0.0, 2.0, 2.0, 8.0]]):
        metrics = evaluations_at(evaluations, every=10)
        run = write_run(tmp_path, str(seed), summary={"eval/return_mean": evaluations[-1]},
                        env=LADDER, seed=seed, metrics=metrics)  # fmt: skip
        config = yaml.safe_load((run / "config.yaml").read_text())
        (run / "config.yaml").write_text(yaml.safe_dump({**config, "t_max": 40}))
    args = ["sweep", str(tmp_path), "--keys", "eval/return_mean", "--curve", "eval/return_mean"]
    assert riskq_table([*args, "--windows", "2", "--by-seed"]) == 0
    header, _, *rows = capsys.readouterr().out.splitlines()
    assert header == ("| env | algo | risk | seed | eval/return_mean | eval/return_mean 0-20 "
                      "| eval/return_mean 20-40 |")  # fmt: skip
    assert rows == ["| risk_ladder | riskq | wang(0.75) | 0 | 9 | 2 | 7 |",  # (1+3)/2, (5+7+9)/3
                    "| risk_ladder | riskq | wang(0.75) | 1 | 8 | 0 | 4 |"]  # fmt: skip
    assert riskq_table([*args, "--windows", "2"]) == 0  # over seeds: mean [min, max]
    assert (
        capsys.readouterr().out.splitlines()[2].endswith("| 8.5 [8, 9] | 1 [0, 2] | 5.5 [4, 7] |")
    )
    assert riskq_table([*args, "--windows", "8"]) == 2  # [5, 10) holds no evaluation
    [error] = capsys.readouterr().err.splitlines()
    assert error == ("riskq-table sweep: error: --curve eval/return_mean: no evaluation of "
                     "eval/return_mean in 5-10")  # fmt: skip
    assert riskq_table([*args, "--windows", "0"]) == 2
    assert "--windows must be a whole number >= 1, got 0" in capsys.readouterr().err
    assert riskq_table(["sweep", str(tmp_path), "--windows", "2"]) == 2  # without --curve
    assert "give --curve KEY too" in capsys.readouterr().err
    assert riskq_table(["sweep", str(tmp_path), "--keys", "eval/return_mena"]) == 2  # a typo
    [error] = capsys.readouterr().err.splitlines()
    assert error.endswith("--keys eval/return_mena: no run's summary holds it (they hold: "
                          "eval/return_mean)")  # fmt: skip


@pytest.mark.parametrize(
    ("steps", "text"),
    [(0, "0"), (999, "999"), (1500, "1.5k"), (25_000, "25k"), (500_000, "0.5M"), (2e6, "2M")],
)
def test_window_names_write_steps_short(steps, text):
    from riskq.analysis.sweep import steps_text

    assert steps_text(steps) == text


def test_old_script_paths_run_the_command(tmp_path):
    """scripts/sweep_table.py and scripts/baselines_table.py are thin deprecated wrappers."""
    for seed in range(2):
        write_run(tmp_path / "sweep", str(seed), summary=summary(1.0 + seed, -1.0, 0.1), seed=seed)
    sweep = subprocess.run(
        [sys.executable, "scripts/sweep_table.py", str(tmp_path / "sweep"), "--keys",
         "eval/cliff_falls"], cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr
    assert "| macn | riskq | wang(0.75) | 2 | 0.1 [0.1, 0.1] |" in sweep.stdout
    assert sweep.stderr == "note: scripts/sweep_table.py is deprecated; run riskq-table sweep\n"
    out = tmp_path / "out"
    baselines = subprocess.run(
        [sys.executable, "scripts/baselines_table.py", str(tmp_path / "sweep"), "--out", str(out),
         "--reps", "50"], cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert baselines.returncode == 0, baselines.stderr
    assert rows_of((out / "baselines_macn.md").read_text())[("riskq", "wang(0.75)")]["seeds"] == "2"


# riskq-table seeds ----------------------------------------------------------------------------

DETOUR = "detour: eval/detour>=0.8"
FEW_FALLS = "eval/cliff_falls<=neutral/3"


def macn(detour: float, falls: float, ret: float) -> dict:
    return {"eval/detour": detour, "eval/cliff_falls": falls, "eval/return_mean": ret}


@pytest.fixture
def seed_dir(tmp_path) -> Path:
    """MACN, neutral on seeds 0-3, Wang(0.75) on seeds 0-2 and a run of seed 3 still running.
    Wang takes the detour (>= 0.8) on seeds 0 and 1, neutral on seed 2; Wang's falls are at
    most a third of neutral's of the same seed on seeds 0 and 2 (0.15 <= 0.6 / 3, 0.1 <= 0.45
    / 3) but not on seed 1 (0.12 > 0.3 / 3), although all three are under a third of
    neutral's mean (0.45 / 3 = 0.15)."""
    root = tmp_path / "macn_sweep"
    neutral = [macn(0.0, 0.6, 4.0), macn(0.0, 0.3, 4.5), macn(1.0, 0.45, 3.0), macn(0, 0.5, 4.2)]
    wang = [macn(1.0, 0.15, 3.9), macn(0.9, 0.12, 3.8), macn(0.5, 0.1, 3.5)]
    for seed, scores in enumerate(neutral):
        write_run(root, f"n{seed}", risk="neutral", summary=scores, seed=seed)
    for seed, scores in enumerate(wang):
        write_run(root, f"w{seed}", risk="wang", summary=scores, seed=seed)
    running = {"status": "running", "t_env": 20, "t_max": 100, "checkpoint_t_env": 20}
    write_run(root, "w3", risk="wang", summary=running, seed=3)
    return root


def table_rows(page: str, title: str) -> list[str]:
    """The lines of the Markdown table under the section ``## title``."""
    section = page.split(f"## {title}\n\n", 1)[1].split("\n\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_seed_page_counts_effects_per_seed_and_reports_iqm(seed_dir, tmp_path, capsys):
    out = tmp_path / "pages" / "macn.md"
    args = ["seeds", str(seed_dir), "--keys", "eval/detour", "eval/cliff_falls"]
    args += ["--effect", DETOUR, "--effect", FEW_FALLS, "--out", str(out), "--reps", "200"]
    assert riskq_table(args) == 0
    captured = capsys.readouterr()
    [warning] = captured.err.splitlines()
    assert warning.startswith("riskq-table seeds: warning: 1 incomplete run left out of the")
    page = out.read_text()
    assert captured.out.endswith(page)
    assert table_rows(page, "Effects: share of seeds") == [
        "| effect | neutral | wang(0.75) |",
        "|---|---|---|",
        "| detour (eval/detour >= 0.8) | 1/4 | 2/3 (1 undecided) |",
        "| eval/cliff_falls <= neutral / 3 | (reference) | 2/3 (1 undecided) |",
    ]
    header, _, neutral, wang = table_rows(page, "Aggregates over seeds")
    assert (
        header == "| group | seeds | eval/detour: IQM [95% CI] | eval/cliff_falls: IQM [95% CI] |"
    )
    # neutral falls 0.3, 0.45, 0.5, 0.6: the middle two; Wang's detour: 3 runs, none trimmed
    assert neutral.startswith("| neutral | 4 | 0 [0, ") and "| 0.475 [0.3" in neutral
    assert wang.startswith("| wang(0.75) | 3 | 0.8 [0.5, ") and "| 0.123 [0.1, " in wang
    assert table_rows(page, "Per seed") == [
        "| seed | eval/detour: neutral | eval/detour: wang(0.75) | eval/cliff_falls: neutral"
        " | eval/cliff_falls: wang(0.75) |",
        "|---|---|---|---|---|",
        "| 0 | 0 | 1 | 0.6 | 0.15 |",
        "| 1 | 0 | 0.9 | 0.3 | 0.12 |",
        "| 2 | 1 | 0.5 | 0.45 | 0.1 |",
        "| 3 | 0 | (running) | 0.5 | (running) |",
    ]
    assert table_rows(page, "Effects per seed")[2:] == [
        "| 0 | no | yes | yes |",
        "| 1 | no | yes | no |",
        "| 2 | yes | no | yes |",
        "| 3 | no | - | - |",
    ]
    assert page.endswith(
        f"## Incomplete runs\n\n- `{seed_dir / 'w3'}`: running or killed; checkpoint at 20 of "
        "100 env steps\n"
    )
    record = json.loads((out.parent / "macn_runs.json").read_text())
    assert record["effects"] == ["detour (eval/detour >= 0.8)", "eval/cliff_falls <= neutral / 3"]
    runs = {(run["group"], run["seed"]): run for run in record["runs"]}
    assert len(runs) == 7 and runs["wang(0.75)", 1]["scores"]["eval/cliff_falls"] == 0.12
    assert list(runs["wang(0.75)", 1]["effects"].values()) == [True, False]
    assert runs["neutral", 2]["effects"] == {"detour (eval/detour >= 0.8)": True}
    assert record["incomplete"] == [{"run": str(seed_dir / "w3"), "status": "running"}]


def test_seed_groups_by_several_fields_and_compares_with_any_group(tmp_path, capsys):
    """Two algorithms under Wang: one run per (risk, seed) no longer holds, --group algo risk
    tells them apart, and an effect can compare DMIX with RiskQ of the same seed."""
    for seed, (riskq, dmix) in enumerate([(3.0, 4.0), (5.0, 4.0)]):
        write_run(tmp_path, f"r{seed}", summary=macn(1, 0, riskq), seed=seed)
        write_run(tmp_path, f"d{seed}", algo="dmix", summary=macn(1, 0, dmix), seed=seed)
    args = ["seeds", str(tmp_path), "--keys", "eval/return_mean", "--reps", "50"]
    assert riskq_table(args) == 2
    [error] = capsys.readouterr().err.splitlines()
    assert f"two runs of group 'wang(0.75)', seed 0: {tmp_path / 'd0'} and {tmp_path / 'r0'}" in (
        error
    )
    effect = ["--effect", "eval/return_mean>riskq, wang(0.75)"]
    assert riskq_table([*args, "--group", "algo", "risk", *effect]) == 0
    page = capsys.readouterr().out
    assert table_rows(page, "Effects: share of seeds")[2] == (
        "| eval/return_mean > riskq, wang(0.75) | 1/2 | (reference) |"
    )


@pytest.mark.parametrize(
    "effect",
    ["eval/detour=>0.8", "eval/detour", "eval/detour>=", ">=0.8", "eval/cliff_falls<=neutral/0"],
)
def test_bad_effect_syntax_is_one_line_naming_the_valid_forms(seed_dir, capsys, effect):
    assert riskq_table(["seeds", str(seed_dir), "--effect", effect]) == 2
    [error] = capsys.readouterr().err.splitlines()
    assert error.startswith(f"riskq-table seeds: error: --effect {effect!r}: ")
    assert "valid forms: KEY>=NUMBER, KEY<GROUP, KEY<=GROUP/NUMBER, KEY>GROUP*NUMBER" in error


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--effect", "eval/cliff_falls<=neutrl/3"], "no group 'neutrl'; groups: neutral, wang"),
        (["--keys", "eval/detuor"], "key 'eval/detuor' is no run's score; scores: eval/cliff"),
        (["--group", "seed"], "--group seed: valid fields: env, algo, risk"),
    ],
)
def test_unknown_group_key_or_field_is_one_line(seed_dir, capsys, args, message):
    assert riskq_table(["seeds", str(seed_dir), *args]) == 2
    [*_, error] = capsys.readouterr().err.splitlines()  # after the incomplete-run warning
    assert error.startswith("riskq-table seeds: error: ") and message in error


@pytest.mark.parametrize(
    ("text", "effect"),
    [
        ("eval/detour>=0.8", Effect("eval/detour", ">=", 0.8)),
        ("d: eval/detour >= .8", Effect("eval/detour", ">=", 0.8, name="d")),
        ("eval/cliff_falls<=neutral/3", Effect("eval/cliff_falls", "<=", 3.0, "neutral", "/")),
        ("eval/return_mean>cvar(0.2)", Effect("eval/return_mean", ">", 1.0, "cvar(0.2)")),
        ("x<riskq, neutral*-1e-1", Effect("x", "<", -0.1, "riskq, neutral", "*")),
    ],
)
def test_effects_parse_into_their_parts(text, effect):
    assert parse_effect(text) == effect


def test_effects_hold_by_their_comparison_at_the_bound():
    scores, neutral = {"falls": 0.1}, {"falls": 0.3}
    assert parse_effect("falls<=0.1").holds(scores) is True
    assert parse_effect("falls<0.1").holds(scores) is False
    assert parse_effect("falls<=neutral/3").holds(scores, {"falls": 0.3000001}) is True
    assert parse_effect("falls<=neutral/3").holds(scores, {"falls": 0.29}) is False
    assert parse_effect("falls<neutral*0.5").holds(scores, neutral) is True
    assert parse_effect("falls<neutral").holds(scores, None) is None  # no reference run
    assert parse_effect("detour>=0.8").holds(scores) is None  # no such score


def test_seed_page_of_a_real_sweep(tmp_path):
    """Four tiny riskq-train runs (neutral and CVaR(0.2), seeds 0 and 1) through the console
    command: the per-seed figures are the runs' summaries, the share counts them."""
    sweep = tmp_path / "sweep"
    train = [sys.executable, "-m", "riskq.cli.train", "-m", "env=matrix", "seed=0,1"]
    train += ["risk=neutral,cvar", "t_max=48", "num_envs=8", "eval_episodes=8"]
    train += ["eval_interval=16", "log_interval=16", "algo.batch_size=8", "threads=1"]
    result = subprocess.run([*train, "progress=false", f"hydra.sweep.dir={sweep}"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    summaries = {
        (config["risk"]["name"], config["seed"]): json.loads((run / "summary.json").read_text())
        for run in sweep.glob("*_seed-*")
        if (config := yaml.safe_load((run / "config.yaml").read_text()))
    }
    command = [sys.executable, "-m", "riskq.cli.table", "seeds", str(sweep), "--reps", "50"]
    command += ["--keys", "eval/return_cvar_0.2", "--effect", "eval/return_cvar_0.2>=neutral"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    cvar = [summaries["cvar", seed]["eval/return_cvar_0.2"] for seed in (0, 1)]
    neutral = [summaries["neutral", seed]["eval/return_cvar_0.2"] for seed in (0, 1)]
    assert table_rows(result.stdout, "Per seed")[2:] == [
        f"| {seed} | {cvar[seed]:.3g} | {neutral[seed]:.3g} |" for seed in (0, 1)
    ]
    share = f"{sum(c >= n for c, n in zip(cvar, neutral, strict=True))}/2"
    assert table_rows(result.stdout, "Effects: share of seeds")[2] == (
        f"| eval/return_cvar_0.2 >= neutral | {share} | (reference) |"
    )
    bad = subprocess.run([*command[:5], "--effect", "eval/return_cvar_0.2=>0"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.count("\n") == 1
