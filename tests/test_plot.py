"""riskq-plot on fake run directories with known values: grouping, bootstrap CIs, files, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from riskq.analysis import curves, plot, published
from riskq.cli import plot as plot_cli

ROOT = Path(__file__).resolve().parents[1]

EVAL_STEPS = (0, 2_000, 4_000, 6_000)


def write_fake_run(
    run_dir: Path,
    *,
    algo: str = "riskq",
    env: str = "risk_ladder",
    risk: tuple[str, float] = ("cvar", 0.2),
    seed: int = 0,
    scalars: dict[str, list[tuple[int, float]]],
) -> Path:
    """Write a run directory as riskq-train lays it out: config.yaml, tb/ events, summary.json.

    scalars: tag -> [(env_steps, value), ...]; summary.json holds each eval/ tag's last value.
    """
    from torch.utils.tensorboard import SummaryWriter

    config = {
        "algo": {"name": algo, "mixer": algo, "gamma": 0.99, "lr": 0.001, "batch_size": 32},
        "env": {"name": "matrix", "label": env, "args": {}},
        "risk": {"name": risk[0], "param": risk[1]},
        "seed": seed,
        "t_max": EVAL_STEPS[-1],
        "eval_interval": 2_000,
        "device": "cpu",
    }
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    writer = SummaryWriter(log_dir=str(run_dir / "tb"))
    for tag, points in scalars.items():
        for step, value in points:  # 1000 env steps a minute, from a fixed start
            writer.add_scalar(tag, value, global_step=step, walltime=1.7e9 + 0.06 * step)
    writer.close()
    summary = {tag: points[-1][1] for tag, points in scalars.items() if tag.startswith("eval/")}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def ramp(final: float, steps=EVAL_STEPS) -> list[tuple[int, float]]:
    """A learning curve rising linearly from 0 to ``final`` (its last logged value)."""
    return [(step, final * step / steps[-1]) for step in steps]


def constant(value: float, steps=EVAL_STEPS) -> list[tuple[int, float]]:
    return [(step, value) for step in steps]


def fake_scalars(final_return: float, final_cvar: float) -> dict:
    return {
        "eval/return_mean": ramp(final_return),
        "eval/return_cvar_0.2": ramp(final_cvar),
        "train/loss": constant(0.5),
    }


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """2 algos x 3 seeds on risk_ladder, nested at different depths like a Hydra sweep.

    riskq final returns 1, 2, 3 (CVaR 0, 0, 3); vdn final return 5 for all seeds (CVaR 4).
    """
    root = tmp_path_factory.mktemp("sweep")
    for seed, (ret, cvar) in enumerate([(1.0, 0.0), (2.0, 0.0), (3.0, 3.0)]):
        write_fake_run(root / f"{seed}_algo=riskq", seed=seed, scalars=fake_scalars(ret, cvar))
        write_fake_run(
            root / "vdn" / f"seed{seed}", algo="vdn", seed=seed, scalars=fake_scalars(5.0, 4.0)
        )
    (root / "0_algo=riskq" / ".hydra").mkdir()
    (root / "0_algo=riskq" / ".hydra" / "config.yaml").write_text("seed: 0\n")  # no tb/: not a run
    return root


def group_row(table: pd.DataFrame, *, algo: str, risk: str = "cvar(0.2)") -> dict:
    rows = table[(table.algo == algo) & (table.risk == risk)]
    assert len(rows) == 1, table
    return rows.iloc[0].to_dict()


def test_bootstrap_ci_known_answers():
    mean, low, high = curves.bootstrap_ci(np.array([[1.0], [2.0], [3.0]]))
    # P(all three resamples pick the same seed) = 1/27 > 2.5%: the CI is exactly [1, 3].
    assert (mean[0], low[0], high[0]) == pytest.approx((2.0, 1.0, 3.0))
    mean, low, high = curves.bootstrap_ci(np.array([[4.0, -1.0]]))  # one seed: no spread
    assert np.allclose([mean, low, high], [[4.0, -1.0]] * 3)
    again = curves.bootstrap_ci(np.random.default_rng(1).normal(size=(5, 7)), seed=3)
    assert np.array_equal(
        again, curves.bootstrap_ci(np.random.default_rng(1).normal(size=(5, 7)), seed=3)
    )


def test_aggregate_aligns_runs_logged_at_different_steps():
    # Seed 0 logs y = x at 0, 100, 200, 300; seed 1 logs y = x + 10 at 10, 110, 210, 310.
    rows = [("a", x, float(x)) for x in (0, 100, 200, 300)]
    rows += [("b", x, float(x + 10)) for x in (10, 110, 210, 310)]
    scalars = pd.DataFrame(rows, columns=["run", "env_steps", "value"]).assign(
        env="e", algo="riskq", risk="neutral", tag="eval/return_mean", seed=0
    )
    curve = curves.aggregate(scalars, metric="eval/return_mean")
    assert curve.env_steps.tolist() == [10, 100, 200, 300]  # seed 0's, clipped into [10, 300]
    assert np.allclose(curve["mean"], curve.env_steps + 5.0)
    # P(both resamples pick the same seed) = 1/4: the CI spans exactly [y0, y1].
    assert np.allclose(curve.ci_low, curve.env_steps) and np.allclose(
        curve.ci_high, curve.env_steps + 10
    )
    assert (curve.n_seeds == 2).all()


def test_find_runs_walks_nested_sweeps(sweep):
    runs = curves.find_runs([sweep])
    assert len(runs) == 6
    assert {(r.algo, r.risk, r.env) for r in runs} == {
        ("riskq", "cvar(0.2)", "risk_ladder"),
        ("vdn", "cvar(0.2)", "risk_ladder"),
    }
    assert sorted(r.seed for r in runs if r.algo == "vdn") == [0, 1, 2]
    assert len(curves.find_runs([sweep, sweep / "vdn"])) == 6  # a run is counted once


def test_final_table_means_and_cis(sweep):
    table = plot.final_table(curves.load_scalars(curves.find_runs([sweep])))
    riskq, vdn = group_row(table, algo="riskq"), group_row(table, algo="vdn")
    assert table.algo.tolist() == ["riskq", "vdn"]  # fixed algorithm order
    assert riskq["n_seeds"] == 3 and vdn["n_seeds"] == 3
    # final values are the last logged ones (the curves ramp up from 0)
    assert riskq["eval/return_mean_mean"] == pytest.approx(2.0)
    assert riskq["eval/return_mean_ci_low"] == pytest.approx(1.0)
    assert riskq["eval/return_mean_ci_high"] == pytest.approx(3.0)
    assert riskq["eval/return_cvar_0.2_mean"] == pytest.approx(1.0)
    assert riskq["eval/return_cvar_0.2_ci_low"] == pytest.approx(0.0)
    assert riskq["eval/return_cvar_0.2_ci_high"] == pytest.approx(3.0)
    assert [vdn[f"eval/return_mean_{s}"] for s in ("mean", "ci_low", "ci_high")] == pytest.approx(
        [5.0] * 3
    )


def test_groups_by_risk_parameter(tmp_path):
    for seed in range(2):
        for alpha, final in ((0.1, 1.0), (0.2, 3.0)):
            write_fake_run(
                tmp_path / f"cvar{alpha}" / f"seed{seed}",
                risk=("cvar", alpha),
                seed=seed,
                scalars={"eval/return_mean": ramp(final + seed)},
            )
        write_fake_run(
            tmp_path / "neutral" / f"seed{seed}",
            risk=("neutral", 0.0),
            seed=seed,
            scalars={"eval/return_mean": ramp(10.0)},
        )
    table = plot.final_table(
        curves.load_scalars(curves.find_runs([tmp_path])), metrics=["eval/return_mean"]
    )
    assert table.risk.tolist() == ["cvar(0.1)", "cvar(0.2)", "neutral"]
    assert table.n_seeds.tolist() == [2, 2, 2]
    assert table["eval/return_mean_mean"].tolist() == pytest.approx([1.5, 3.5, 10.0])


def test_main_writes_figures_and_tables(sweep, tmp_path, capsys):
    out = tmp_path / "plots"
    assert plot_cli.main([str(sweep), "--out", str(out)]) == 0
    png, svg = out / "risk_ladder.png", out / "risk_ladder.svg"
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and png.stat().st_size > 10_000
    assert "<svg" in svg.read_text() and "CVaR" in svg.read_text()
    csv = pd.read_csv(out / "final_performance.csv")
    assert csv.algo.tolist() == ["riskq", "vdn"]
    assert csv["eval/return_mean_mean"].tolist() == pytest.approx([2.0, 5.0])
    markdown = (out / "final_performance.md").read_text()
    assert (
        "| risk_ladder | riskq | cvar(0.2) | 3 | 2.00 [1.00, 3.00] | 1.00 [0.00, 3.00] |"
        in markdown
    )
    printed = capsys.readouterr().out
    assert str(png) in printed and markdown in printed


def test_main_default_out_and_other_metrics(sweep, capsys):
    argv = [str(sweep / "vdn"), "--metrics", "train/loss", "--x", "wall_minutes"]
    assert plot_cli.main(argv) == 0
    assert (sweep / "vdn" / "plots" / "risk_ladder.svg").stat().st_size > 0
    assert "| risk_ladder | vdn | cvar(0.2) | 3 | 0.50 [0.50, 0.50] |" in capsys.readouterr().out
    scalars = curves.load_scalars(curves.find_runs([sweep / "vdn"]))
    curve = curves.aggregate(scalars, metric="eval/return_mean", x="wall_minutes")
    assert curve.wall_minutes.tolist() == pytest.approx([0.0, 2.0, 4.0, 6.0])  # 1000 steps/min
    assert curve["mean"].tolist() == pytest.approx([0.0, 5 / 3, 10 / 3, 5.0])


@pytest.mark.parametrize(
    ("window", "expected"),
    [(1, [1, 2, 6, 3]), (2, [1, 1.5, 4, 4.5]), (3, [1, 1.5, 3, 11 / 3]), (9, [1, 1.5, 3, 3])],
)
def test_trailing_mean_known_answers(window, expected):
    values = np.array([1.0, 2.0, 6.0, 3.0])
    assert curves.trailing_mean(values, window).tolist() == pytest.approx(expected)


def test_smoothed_curves_average_each_run_before_the_seeds(sweep, tmp_path, capsys):
    """riskq's returns ramp to 1, 2, 3 over four evaluations (mean over seeds 0, 2/3, 4/3, 2);
    over two points each run's curve becomes the mean of each point and the one before it.
    The final table keeps the last values as logged."""
    scalars = curves.load_scalars(curves.find_runs([sweep]))
    curve = curves.aggregate(scalars, metric="eval/return_mean", smooth=2)
    riskq = curve[curve.algo == "riskq"]
    assert riskq["mean"].tolist() == pytest.approx([0.0, 1 / 3, 1.0, 5 / 3])
    out = tmp_path / "smoothed"
    assert plot_cli.main([str(sweep), "--out", str(out), "--smooth", "2"]) == 0
    assert "| risk_ladder | riskq | cvar(0.2) | 3 | 2.00 [1.00, 3.00] |" in capsys.readouterr().out
    assert "trailing mean over 2 logged points" in (out / "risk_ladder.svg").read_text()


def make_file_in_the_way(root: Path) -> None:
    """A run, and a file where --out wants a folder."""
    write_fake_run(root / "r", scalars={"eval/return_mean": ramp(1.0)})
    (root / "in_the_way").write_text("not a folder\n")


def make_run_without_scalars(root: Path) -> None:
    """A run that has just started: config.yaml and an empty tb/."""
    write_fake_run(root / "started", scalars={})


def make_bad_config(root: Path) -> None:
    write_fake_run(root / "r", scalars={"eval/return_mean": ramp(1.0)})
    (root / "r" / "config.yaml").write_text("algo: {name: vdn}\nenv: {name: matrix}\n")


@pytest.mark.parametrize(
    ("make", "argv_tail", "message"),
    [
        (lambda d: None, [], "no runs found under"),
        (lambda d: None, ["missing"], "does not exist"),
        (
            lambda d: write_fake_run(d / "r", scalars={"eval/return_mean": ramp(1.0)}),
            ["--metrics", "eval/nope"],
            "metric eval/nope is not logged by any run (logged: eval/return_mean)",
        ),
        (make_run_without_scalars, [], "none of the runs found has logged any scalar yet"),
        (make_bad_config, [], "config.yaml lacks env.label (is it a riskq-train config?)"),
        (
            lambda d: write_fake_run(d / "r", scalars={"eval/return_mean": ramp(1.0)}),
            ["--smooth", "0"],
            "--smooth must be a whole number >= 1, got 0",
        ),
        (
            lambda d: write_fake_run(d / "r", scalars={"eval/return_mean": ramp(1.0)}),
            ["--n-boot", "0"],
            "--n-boot must be a whole number >= 1, got 0",
        ),
        (
            make_file_in_the_way,
            ["--out", "in_the_way", "--metrics", "eval/return_mean"],
            "in_the_way",
        ),  # an OSError, one line
    ],
)
def test_main_errors_are_one_line(tmp_path, capsys, make, argv_tail, message):
    make(tmp_path)
    paths = [str(tmp_path / argv_tail[0])] if argv_tail[:1] == ["missing"] else [str(tmp_path)]
    options = [a for a in argv_tail if a != "missing"]
    options = [str(tmp_path / a) if a == "in_the_way" else a for a in options]
    assert plot_cli.main([*paths, *options]) == 2
    *warnings, error = capsys.readouterr().err.splitlines()  # a warning per skipped run
    assert error.startswith("riskq-plot: error: ") and message in error
    assert all(line.startswith("riskq-plot: warning: ") for line in warnings)


def test_labels_and_colours():
    assert plot.metric_label("eval/return_cvar_0.2") == "CVaR$_{0.2}$ of evaluation return"
    assert plot.metric_label("eval/return_mean") == "evaluation return (team)"
    assert plot.metric_label("eval/crashes") == "crashes (mean per evaluation episode)"
    assert plot.algo_colour("riskq") == plot.ALGO_COLOURS["riskq"]
    assert plot.algo_colour("new_algo") == plot.algo_colour("new_algo")


def test_incomplete_runs_are_drawn_but_left_out_of_the_final_table(tmp_path, capsys):
    for seed, final in ((0, 1.0), (1, 3.0)):
        write_fake_run(
            tmp_path / f"seed{seed}", seed=seed, scalars={"eval/return_mean": ramp(final)}
        )
    killed = write_fake_run(
        tmp_path / "killed", seed=2, scalars={"eval/return_mean": ramp(90.0, (0, 2_000, 4_160))}
    )
    (killed / "summary.json").unlink()  # killed at env step 4160
    failed = write_fake_run(tmp_path / "failed", seed=3, scalars={"eval/return_mean": ramp(50.0)})
    (failed / "summary.json").write_text(json.dumps({"status": "failed", "error": "non-finite"}))
    out = tmp_path / "plots"
    assert plot_cli.main([str(tmp_path), "--out", str(out), "--metrics", "eval/return_mean"]) == 0
    row = pd.read_csv(out / "final_performance.csv").iloc[0]
    assert row.n_seeds == 2 and row["eval/return_mean_mean"] == pytest.approx(2.0)
    [warning] = capsys.readouterr().err.splitlines()
    assert warning.startswith("riskq-plot: warning: 2 incomplete runs left out of the final table")
    assert f"{killed} (no summary.json)" in warning and f"{failed} (failed)" in warning
    assert "2 incomplete runs left out" in (out / "final_performance.md").read_text()
    scalars = curves.load_scalars(curves.find_runs([tmp_path]))
    curve = curves.aggregate(scalars, metric="eval/return_mean")
    assert curve.n_seeds.tolist() == [4] * len(curve)  # the curves still show every run


def test_a_risk_alias_in_a_saved_config_is_the_level(tmp_path):
    run = write_fake_run(tmp_path / "r", risk=("cvar", 0.2), scalars={"eval/return_mean": ramp(1)})
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["risk"] |= {"alpha": 0.1, "eta": None}  # written before config.yaml was canonical
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    assert [r.risk for r in curves.find_runs([tmp_path])] == ["cvar(0.1)"]


@pytest.mark.parametrize("flag, drawn", [([], True), (["--no-published"], False)])
def test_published_figures_are_level_lines_of_their_env_and_metric(tmp_path, flag, drawn):
    """2s3z's win rate figure carries JaxMARL's IPPO and MAPPO win rates at 1e7 steps (their
    labels are in the SVG's text); the return figure beside it and other envs carry none."""
    for seed in range(2):
        scalars = {"eval/win_rate": ramp(0.5), "eval/return_mean": ramp(1.0)}
        write_fake_run(tmp_path / "runs" / f"s{seed}", env="smax_2s3z", seed=seed, scalars=scalars)
    write_fake_run(tmp_path / "runs" / "other", env="smax_3m", scalars={"eval/win_rate": ramp(1)})
    out = tmp_path / "plots"
    argv = [str(tmp_path / "runs"), "--out", str(out), "--metrics", "eval/win_rate"]
    assert plot_cli.main([*argv, "eval/return_mean", *flag]) == 0
    svg = (out / "smax_2s3z.svg").read_text()
    for label in ("IPPO ~0.9 at 1e7 steps (JaxMARL)", "MAPPO ~1 at 1e7 steps (JaxMARL)"):
        assert (label in svg) == drawn
    assert "JaxMARL" not in (out / "smax_3m.svg").read_text()


@pytest.mark.parametrize("env", sorted(published.PUBLISHED))
def test_every_published_figure_belongs_to_a_shipped_env(env):
    assert (ROOT / "configs" / "env" / f"{env}.yaml").is_file()
    for metric, figures in published.PUBLISHED[env].items():
        assert figures and all(figure.env_steps > 0 for figure in figures)
        if metric == "eval/win_rate":
            assert all(0.0 <= figure.value <= 1.0 for figure in figures)
