"""riskq never loses or corrupts a run: the real commands, in-process, on tiny matrix-game runs.

Each test reproduces an observed failure: deleted directories, silent NaN training, resumes of
another experiment, two runs in one directory, mislabelled risk levels, tracebacks.
"""

from __future__ import annotations

import fcntl
import gc
import importlib.util
import json
import shutil
import signal
import sys
from pathlib import Path

import pytest
import torch
import yaml
from budgets import TINY

from envs.macn import CliffNavigation
from envs.matrix import MatrixGame
from riskq.cli import evaluate as riskq_eval
from riskq.cli import rigm as riskq_rigm
from riskq.cli import train as riskq_train
from riskq.run import trainer
from riskq.run.finite import non_finite
from riskq.run.labels import risk_label, risk_level
from riskq.run.logger import RunLogger
from riskq.run.run_dir import config_differences, keyword_defaults
from riskq.run.stopping import STOP, STOP_SIGNALS

ROOT = Path(__file__).resolve().parents[1]


def run_command(monkeypatch, capsys, main, prog: str, *args: str) -> tuple[int, str]:
    """Run a console entry point in this process: (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", [prog, *args])
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    return code, capsys.readouterr().err


@pytest.fixture
def train_cli(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)  # default run directories land in this test's folder
    return lambda *args: run_command(monkeypatch, capsys, riskq_train.main, "riskq-train", *args)


@pytest.fixture
def eval_cli(monkeypatch, capsys):
    return lambda *args: run_command(
        monkeypatch, capsys, lambda: riskq_eval.main(list(args)), "riskq-eval"
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A finished tiny run (RiskQ, risk ladder, Wang(0.75)) to copy from."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(sys, "argv", ["riskq-train", *TINY, f"hydra.run.dir={run_dir}"])
        riskq_train.main()
    return run_dir


def copy_run(run_dir: Path, dest: Path) -> Path:
    return Path(shutil.copytree(run_dir, dest))


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def one_line_error(err: str, prog: str = "riskq-train") -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


# 1. Never delete a directory riskq did not create in this invocation.


def test_resume_refuses_another_run_dir_and_deletes_nothing(trained_run, tmp_path, train_cli):
    run_a = copy_run(trained_run, tmp_path / "A")
    other = tmp_path / "B"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    before = snapshot(run_a)
    code, err = train_cli(f"resume={run_a}", *TINY, f"hydra.run.dir={other}")
    assert code == 2 and "hydra.run.dir" in one_line_error(err)
    assert (other / "keep.txt").read_text() == "mine"
    assert snapshot(run_a) == before


def test_resume_with_run_dir_dot_keeps_the_working_directory(trained_run, tmp_path, train_cli):
    run_a = copy_run(trained_run, tmp_path / "A")
    (tmp_path / "notes.txt").write_text("mine")  # train_cli runs in tmp_path
    code, err = train_cli(f"resume={run_a}", *TINY, "hydra.run.dir=.")
    assert code == 2 and "hydra.run.dir" in one_line_error(err)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("run_dir", ["new/deep/run", "empty", "default"])
def test_failed_start_up_removes_exactly_the_dirs_it_created(tmp_path, train_cli, run_dir):
    (tmp_path / "empty").mkdir()
    where = [] if run_dir == "default" else [f"hydra.run.dir={tmp_path / run_dir}"]
    code, err = train_cli("t_max=0", *where)
    assert code == 2 and "t_max" in one_line_error(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no new/ and no results/


# 2. Non-finite values stop the run at the update where they appear.


def write_game(folder: Path, name: str, *, scale: float = 1.0, broken: bool = False) -> Path:
    """configs/env/matrix.yaml with its payoffs scaled, as a user game file."""
    config = yaml.safe_load((ROOT / "configs" / "env" / "matrix.yaml").read_text())
    payoffs = config["env"]["args"]["agent_payoffs"]
    config["env"]["args"]["agent_payoffs"] = [
        [[scale * value for value in action] for action in agent] for agent in payoffs
    ]
    text = "# @package _global_\n" + yaml.safe_dump(config)
    (folder / "env").mkdir(parents=True, exist_ok=True)
    (folder / "env" / f"{name}.yaml").write_text(text + ("  bad: [1, 2\n" if broken else ""))
    return folder


@pytest.mark.parametrize("cause", ["lr", "payoffs"])
def test_non_finite_training_stops_and_keeps_the_last_good_checkpoint(tmp_path, train_cli, cause):
    run_dir = tmp_path / "run"
    if cause == "lr":
        diverge = ["algo.lr=1e30"]
    else:
        diverge = [
            "--config-dir",
            str(write_game(tmp_path / "games", "huge", scale=1e38)),
            "env=huge",
        ]
    code, err = train_cli(*diverge, *TINY, "checkpoint_interval=1", f"hydra.run.dir={run_dir}")
    line = one_line_error(err)
    assert code == 1 and "non-finite" in line and "at update" in line and "env step" in line
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "non-finite" in summary["error"]
    assert summary["t_env"] < 300
    checkpoint = run_dir / "checkpoints" / "latest.pt"
    if checkpoint.exists():  # written before the failing update: every value finite
        learner = torch.load(checkpoint, weights_only=True)["learner"]
        for net in ("agent", "mixer"):
            assert all(torch.isfinite(v).all() for v in learner[net].values()), net
        assert torch.load(checkpoint, weights_only=True)["counters"]["t_env"] < summary["t_env"]


def test_an_unforeseen_fault_during_training_marks_the_run_failed(tmp_path, train_cli,
                                                                  monkeypatch):  # fmt: skip
    """An error no check foresaw (here injected into the training loop) still leaves a run
    that says ``failed`` with the error, not one that says ``running`` forever."""

    def fault(*args, **kwargs):
        raise RuntimeError("injected fault")

    monkeypatch.setattr(trainer, "train_loop", fault)
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="injected fault"):  # unforeseen: it goes on as it is
        train_cli(*TINY, f"hydra.run.dir={run_dir}")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == "RuntimeError: injected fault"


@pytest.fixture
def signal_handlers():
    """The process's stop-signal handlers and unraisable hook, restored after the test (a
    stop handled in-process leaves SIGINT and SIGTERM ignored, as a stopping run wants)."""
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    hook = sys.unraisablehook
    yield
    for signum, handler in handlers.items():
        signal.signal(signum, handler)
    sys.unraisablehook = hook


def test_a_stop_signal_swallowed_by_a_gc_callback_still_stops_the_run(
    tmp_path, train_cli, monkeypatch, signal_handlers
):
    """Python may run the stop handler inside a garbage-collector callback (JAX keeps one in
    gc.callbacks), where its KeyboardInterrupt can only be reported, not raised. The run must
    still stop, as interrupted, at the end of that iteration, and print no report of it."""
    real_iteration, calls = trainer.iteration, []

    def stop_inside_gc(phase, info) -> None:
        gc.callbacks.remove(stop_inside_gc)
        STOP.handle(signal.SIGTERM, None)  # what Python does when the signal lands here

    def iteration(*args, **kwargs):
        result = real_iteration(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            gc.callbacks.append(stop_inside_gc)
            gc.collect()  # the handler's KeyboardInterrupt is swallowed in the callback
        return result

    monkeypatch.setattr(trainer, "iteration", iteration)
    run_dir = tmp_path / "run"
    code, err = train_cli(*TINY, f"hydra.run.dir={run_dir}")
    assert code == 130 and "Exception ignored" not in err
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    assert len(calls) == 2  # stopped at the end of the iteration it was swallowed in


def test_non_finite_names_the_first_bad_quantity():
    net = torch.nn.Linear(2, 2)
    assert non_finite({"loss": 1.0, "grad_norm": 2.0}, {"agent": net}) is None
    assert non_finite({"loss": float("nan"), "grad_norm": 2.0}, {"agent": net}) == "loss (nan)"
    assert non_finite({"loss": 1.0, "grad_norm": float("inf")}, {"agent": net}) == (
        "gradient norm (inf)"
    )
    with torch.no_grad():
        net.weight.fill_(1e31)  # huge but finite: a sum of squares would overflow, max-abs not
        assert non_finite({"loss": 1.0}, {"agent": net}) is None
        net.bias[1] = float("nan")
    assert non_finite({"loss": 1.0}, {"agent": net}) == "parameter agent.bias"


def test_non_finite_checks_a_learners_flat_parameters():
    net = torch.nn.Linear(2, 2)
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])  # [P] copy
    assert non_finite({"loss": 1.0}, {"agent": net}, flat_params=flat) is None
    with torch.no_grad():
        net.weight[0, 1] = float("inf")
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])  # [P]
    assert non_finite({"loss": 1.0}, {"agent": net}, flat_params=flat) == "parameter agent.weight"


def test_a_finished_run_says_complete(trained_run):
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["t_env"] == summary["t_max"] == 300


# 3. Resume continues only the same experiment, and checks before it touches anything.


@pytest.mark.parametrize(
    ("change", "keys"),
    [
        (["seed=1"], "seed"),
        (["risk=cvar"], "risk.name, risk.param"),
        (["algo=vdn"], "algo.mixer"),
        (["env=macf"], "env.name"),
        (["eval_episodes=8"], "eval_episodes"),
        (["+env.args.label=ladder"], "env.args.*"),  # saved without it: the default, "matrix"
    ],
)
def test_resume_refuses_another_experiment(trained_run, tmp_path, train_cli, change, keys):
    run_a = copy_run(trained_run, tmp_path / "A")
    before = snapshot(run_a)
    code, err = train_cli(f"resume={run_a}", *TINY, *change)
    assert code == 2 and keys in one_line_error(err)
    assert snapshot(run_a) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A"]  # no new run directory either


def test_config_differences_skip_budget_keys_and_group_deep_keys():
    saved = {"seed": 0, "t_max": 9, "device": "cpu", "env": {"name": "a", "args": {"x": 1, "y": 2}}}
    new = {"seed": 1, "t_max": 99, "device": "cuda", "env": {"name": "b", "args": {"x": 3, "y": 2}}}
    assert config_differences(saved, new) == ["env.args.*", "env.name", "seed"]
    assert config_differences(saved, {**saved, "eval_episodes": 8}) == ["eval_episodes"]


def test_config_differences_take_an_env_arg_at_its_default_as_written_out_or_left_out():
    saved = {"seed": 0, "env": {"name": "a", "args": {"x": 1}}}
    defaults = {"y": 2, "z": None}  # keyword_defaults of the env class

    def new(**args):
        return {**saved, "env": {"name": "a", "args": {"x": 1, **args}}}

    assert config_differences(saved, new(y=2, z=None), defaults) == []
    assert config_differences(new(y=2), saved, defaults) == []
    assert config_differences(saved, new(y=3), defaults) == ["env.args.*"]
    assert config_differences(saved, new(w=2), defaults) == ["env.args.*"]  # w has no default
    assert config_differences(saved, new(y=2)) == ["env.args.*"]  # no defaults given
    assert keyword_defaults(CliffNavigation)["slip_prob"] == 0.1
    assert "n_agents" not in keyword_defaults(MatrixGame)  # required: no default


def test_resume_takes_an_env_arg_written_out_at_its_default_as_unchanged(
    trained_run, tmp_path, train_cli
):
    """A run saved before its env file wrote out a default resumes as it is: the matrix game's
    label defaults to "matrix" (test_resume_refuses_another_experiment refuses another label)."""
    run_a = copy_run(trained_run, tmp_path / "A")
    assert "label" not in yaml.safe_load((run_a / "config.yaml").read_text())["env"]["args"]
    code, err = train_cli(
        *TINY, "t_max=400", "eval_interval=100", f"resume={run_a}", "+env.args.label=matrix"
    )
    assert code == 0, err
    assert yaml.safe_load((run_a / "config.yaml").read_text())["env"]["args"]["label"] == "matrix"
    # and back: the saved config writes it out, the composed one leaves it out
    code, err = train_cli(*TINY, "t_max=500", "eval_interval=100", f"resume={run_a}")
    assert code == 0, err
    summary = json.loads((run_a / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["t_env"] == 500


def test_resume_may_change_how_the_update_is_computed(trained_run, tmp_path, train_cli):
    """algo.length_buckets (like threads and device) changes how the same update is computed:
    a run saved without length buckets continues with them."""
    run_a = copy_run(trained_run, tmp_path / "A")
    assert yaml.safe_load((run_a / "config.yaml").read_text())["algo"]["length_buckets"] == 1
    code, err = train_cli(
        *TINY, "t_max=400", "eval_interval=100", f"resume={run_a}", "algo.length_buckets=4"
    )
    assert code == 0, err
    summary = json.loads((run_a / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["t_env"] == 400


def test_resume_needs_only_the_keys_it_changes(trained_run, tmp_path, train_cli):
    """``resume=<dir> t_max=...`` continues the saved config (TINY's batch, envs, episodes are
    not repeated); a key outside RESUMABLE_KEYS alone is still compared, and refused."""
    run_a = copy_run(trained_run, tmp_path / "A")
    saved = yaml.safe_load((run_a / "config.yaml").read_text())
    code, err = train_cli(f"resume={run_a}", "seed=1")
    assert code == 2 and "seed" in one_line_error(err)
    code, err = train_cli(f"resume={run_a}", "t_max=400", "eval_interval=100", "progress=false")
    assert code == 0, err
    after = yaml.safe_load((run_a / "config.yaml").read_text())
    changed = {"t_max", "eval_interval", "resume"}
    assert (after["t_max"], after["eval_interval"]) == (400, 100)
    assert {k: v for k, v in after.items() if k not in changed} == {
        k: v for k, v in saved.items() if k not in changed
    }
    summary = json.loads((run_a / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["t_env"] == 400


def test_resume_extends_the_budget_then_says_complete(trained_run, tmp_path, train_cli):
    run_a = copy_run(trained_run, tmp_path / "A")
    longer = [*TINY, "t_max=400", "eval_interval=100", f"resume={run_a}"]
    code, err = train_cli(*longer)
    assert code == 0, err
    summary = json.loads((run_a / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["t_env"] == 400
    records = [json.loads(line) for line in (run_a / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("final")] == [400]  # the old final eval is gone
    # 7. resuming a finished run changes nothing: no second final evaluation, no new events
    before = snapshot(run_a)
    code, err = train_cli(*longer)
    assert code == 0 and "already complete" in err
    assert snapshot(run_a) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A"]


# 4. One run per directory.


def test_a_run_directory_in_use_is_refused_and_a_stale_lock_is_taken_over(tmp_path, train_cli):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with (run_dir / ".riskq.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another process's lock
        held.write("4242\n")
        held.flush()
        code, err = train_cli(*TINY, f"hydra.run.dir={run_dir}")
        assert code == 2 and "in use by process 4242" in one_line_error(err)
        assert sorted(p.name for p in run_dir.iterdir()) == [".riskq.lock"]
    (run_dir / ".riskq.lock").write_text("999999\n")  # left behind by a killed run
    code, err = train_cli(*TINY, f"hydra.run.dir={run_dir}")
    assert code == 0, err
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "complete"
    assert not (run_dir / ".riskq.lock").exists()


def test_a_new_run_into_a_run_directory_is_refused(trained_run, tmp_path, train_cli):
    run_a = copy_run(trained_run, tmp_path / "A")
    before = snapshot(run_a)
    code, err = train_cli(*TINY, "seed=1", f"hydra.run.dir={run_a}")
    assert code == 2 and "already holds a run" in one_line_error(err)
    assert snapshot(run_a) == before


# 5. risk.alpha / risk.eta: one level, one label.


def test_one_level_and_one_label_for_every_alias():
    assert risk_level({"name": "cvar", "param": 0.2, "alpha": 0.1}) == 0.1
    assert risk_level({"name": "wang", "param": 0.75, "eta": -0.5}) == -0.5
    assert risk_level({"name": "cvar", "param": 0.2}) == 0.2
    assert (risk_label("cvar", 0.1), risk_label("cvar", 0.1, for_path=True)) == (
        "cvar(0.1)",
        "cvar_0.1",
    )
    assert risk_label("neutral", 0.0) == risk_label("neutral", 0.0, for_path=True) == "neutral"
    with pytest.raises(ValueError, match="at most one"):
        risk_level({"name": "wang", "param": 0.75, "alpha": 0.1, "eta": 0.5})


def test_risk_alias_names_the_run_directory_and_the_saved_config(tmp_path, train_cli):
    code, err = train_cli(*TINY, "t_max=8", "risk=cvar", "risk.alpha=0.1")
    assert code == 0, err
    [run_dir] = (tmp_path / "results" / "runs" / "risk_ladder" / "riskq").glob("*/*")
    assert run_dir.parent.name == "cvar_0.1"
    risk = yaml.safe_load((run_dir / "config.yaml").read_text())["risk"]
    assert risk == {"name": "cvar", "param": 0.1, "alpha": None, "eta": None}


# 7. Smaller defects.


def test_progress_bar_total_follows_an_overshoot_of_t_max(tmp_path):
    logger = RunLogger(tmp_path, total_steps=2000, progress=True)
    logger.advance(1600)
    logger.advance(3200)  # MACF: 8 episodes of 200 steps per collection
    assert (logger.bar.n, logger.bar.total) == (3200, 3200)
    logger.close()


def test_eval_under_another_measure_uses_its_default_level(trained_run, tmp_path, eval_cli):
    run_a = copy_run(trained_run, tmp_path / "A")
    code, err = eval_cli(str(run_a), "--risk", "cvar", "--episodes", "4")
    assert code == 0, err
    assert json.loads((run_a / "eval_cvar_0.2.json").read_text())["risk"] == "CVaR(0.2)"
    code, err = eval_cli(str(run_a), "--risk", "cvar", "--risk-param", "0.1", "--episodes", "4")
    assert code == 0, err
    assert json.loads((run_a / "eval_cvar_0.1.json").read_text())["risk"] == "CVaR(0.1)"
    assert json.loads((run_a / "eval_cvar_0.2.json").read_text())["risk"] == "CVaR(0.2)"


def test_eval_refuses_a_file_that_is_no_checkpoint_and_a_folder_as_output(
    trained_run, tmp_path, eval_cli
):
    """A run's config.yaml given for the run, or --output naming a folder: one line each, exit
    2, and (the folder) before any episode is played, not after."""
    run = copy_run(trained_run, tmp_path / "A")
    code, err = eval_cli(str(run / "config.yaml"), "--episodes", "4")
    line = one_line_error(err, "riskq-eval")
    assert (
        code == 2 and f"{run / 'config.yaml'} is not a checkpoint (give its run directory" in line
    )
    code, err = eval_cli(str(run), "--episodes", "4", "--output", str(tmp_path))
    assert code == 2 and one_line_error(err, "riskq-eval").endswith(f"got the folder {tmp_path}")
    assert not list(run.glob("eval_*.json"))


def test_eval_of_several_runs_writes_one_file_per_run(trained_run, tmp_path, eval_cli):
    run_a, run_b = (copy_run(trained_run, tmp_path / name) for name in ("A", "B"))
    code, err = eval_cli(str(run_a), str(run_b), "--episodes", "4")
    assert code == 0, err
    for run in (run_a, run_b):
        result = json.loads((run / "eval_wang_0.75.json").read_text())
        assert (result["run_dir"], result["episodes"]) == (str(run), 4)
    code, err = eval_cli(str(run_a), str(run_b), "--output", str(tmp_path / "one.json"))
    assert code == 2 and "--output names one file" in one_line_error(err, "riskq-eval")
    assert not (tmp_path / "one.json").exists()
    # a directory that is no run: its one-line error, exit 2, and the run after it still runs
    (run_b / "eval_wang_0.75.json").unlink()
    code, err = eval_cli(str(tmp_path / "nothing"), str(run_b), "--episodes", "4")
    assert code == 2 and "checkpoint not found" in one_line_error(err, "riskq-eval")
    assert (run_b / "eval_wang_0.75.json").is_file()


def test_a_checkpoint_with_wrong_content_is_a_one_line_error(
    trained_run, tmp_path, train_cli, eval_cli
):
    run_a = copy_run(trained_run, tmp_path / "A")
    torch.save({"learner": {"agent": {}}, "counters": {}}, run_a / "checkpoints" / "latest.pt")
    code, err = eval_cli(str(run_a))
    assert code == 2 and "checkpoint" in one_line_error(err, "riskq-eval")
    before = snapshot(run_a)
    code, err = train_cli(*TINY, f"resume={run_a}")
    assert code == 2 and "checkpoint" in one_line_error(err)
    assert snapshot(run_a) == before


def test_a_yaml_syntax_error_in_a_game_file_is_a_one_line_error(tmp_path, train_cli):
    games = write_game(tmp_path / "games", "broken", broken=True)
    code, err = train_cli("--config-dir", str(games), "env=broken", *TINY)
    line = one_line_error(err)
    assert code == 2 and "broken.yaml" in line and "line" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["games"]


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None
    or shutil.which("srun") is not None,
    reason="needs the submitit launcher and a machine without Slurm",
)
def test_slurm_launcher_without_a_cluster_is_a_one_line_error(tmp_path, train_cli):
    sweep_dir = tmp_path / "sweep"
    code, err = train_cli("-m", "hydra/launcher=slurm", *TINY, f"hydra.sweep.dir={sweep_dir}")
    assert code == 2 and "srun" in one_line_error(err)
    assert not sweep_dir.exists()


def test_rigm_of_a_trained_run_reports_progress_and_each_measure_once(
    trained_run, monkeypatch, capsys
):
    output = trained_run.parent / "rigm.json"
    args = [f"run={trained_run}", "episodes=4", f"output={output}"]
    code, err = run_command(monkeypatch, capsys, riskq_rigm.main, "riskq-rigm", *args)
    assert code == 0, err
    assert "riskq-rigm: " in err and "evaluation episodes" in err  # progress on stderr
    labels = [row["label"] for row in json.loads(output.read_text())["rows"]]
    assert labels[0] == "Wang(0.75)" and len(labels) == len(set(labels))


def test_rigm_of_an_expected_value_mixer_says_the_check_is_vacuous(
    tmp_path, train_cli, monkeypatch, capsys
):
    run_dir = tmp_path / "vdn"
    code, err = train_cli(*TINY, "t_max=8", "algo=vdn", f"hydra.run.dir={run_dir}")
    assert code == 0, err
    monkeypatch.setattr(sys, "argv", ["riskq-rigm", f"run={run_dir}", "episodes=4"])
    riskq_rigm.main()
    printed = capsys.readouterr().out
    assert "vacuous" in printed and "violations" not in printed  # no table of zeros
