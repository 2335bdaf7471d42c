"""riskq-train as a cluster job: stopping for a requeue and continuing exactly (in this process),
and sweeps on a real Slurm.

The Slurm tests use the one-node cluster of ``scripts/slurm_local.sh`` (partition ``cpu``,
accounting through slurmdbd) and are marked ``cluster``: the default run leaves them out, CI
runs them with ``pytest -m cluster`` after setting Slurm up; without a working Slurm each skips
with one line saying why. Slurm holds a requeued job for two minutes before it may start again;
the tests start such jobs after 2 s (``scontrol update StartTime=now``), as an administrator
could: not at once, since slurmd refuses a job whose new credential dates from the same second as
the revocation of its last one ("Job credential revoked"), which then fails the job.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from importlib.util import find_spec
from pathlib import Path
from subprocess import PIPE

import pytest
from budgets import SWEEP
from test_docs import run_tutorial

from riskq.cli.compose import compose_config
from riskq.run.cluster import PREEMPTION, Preempted, requeued_resume
from riskq.run.experiment import build_experiment
from riskq.run.trainer import train

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
PARTITION = "cpu"  # scripts/slurm_local.sh
SLURM = ["hydra/launcher=slurm", f"hydra.launcher.partition={PARTITION}", "hydra.launcher.mem_gb=1"]
# MACN runs whose every checkpoint but the first comes from the signal (checkpoint_interval)
MACN = [
    "env=macn",
    "num_envs=4",
    "eval_episodes=8",
    "eval_interval=500",
    "log_interval=250",
    "checkpoint_interval=1000000",
]


def command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def probe(*args: str) -> tuple[bool, str]:
    """Whether a Slurm command succeeds within 10 s, and its last line of output."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False, f"{args[0]} did not answer in 10 s"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode == 0, lines[-1] if lines else ""


def slurm_missing() -> str | None:
    """Why these tests cannot run here, or None."""
    for name in ("sbatch", "squeue", "sacct", "scontrol", "sinfo", "scancel"):
        if shutil.which(name) is None:
            return f"no {name} on PATH"
    if find_spec("hydra_plugins.hydra_submitit_launcher") is None:
        return "hydra-submitit-launcher is not installed (extra: sweep)"
    answered, state = probe("sinfo", "-h", "-p", PARTITION, "-o", "%a")
    if not answered or state != "up":
        return f"partition {PARTITION} is not up ({state})"
    answered, error = probe("sacct", "-n", "-X", "-j", "1")
    if not answered:
        return f"sacct fails, no job accounting ({error})"
    return None


@pytest.fixture(scope="module")
def local_slurm():
    reason = slurm_missing()
    if reason is not None:
        pytest.skip(f"no local Slurm: {reason}; set one up with sudo scripts/slurm_local.sh")


def riskq_train(cwd: Path, *args: str) -> subprocess.Popen:
    """``riskq-train`` in the background, its output captured."""
    command = [sys.executable, "-m", "riskq.cli.train", *args]
    return subprocess.Popen(command, cwd=cwd, env=ENV, stdout=PIPE, stderr=PIPE, text=True)


def start_sweep(cwd: Path, *overrides: str) -> subprocess.Popen:
    """``riskq-train -m`` on the local Slurm."""
    return riskq_train(cwd, "-m", *SLURM, *overrides)


def job_ids(sweep_dir: Path) -> list[str]:
    """The Slurm ids of a sweep's jobs (``17``, or ``17_0``, ``17_1`` for an array)."""
    folders = (sweep_dir / ".submitit").glob("*")
    return sorted(path.name for path in folders if list(path.glob("*_log.out")))


RELEASE_DELAY_S = 2  # a requeued job waits this long before its release (module docstring)


def release(job: str, waiting_since: dict[str, float]) -> None:
    """Start the requeued ``job`` now instead of two minutes later, once it has waited
    RELEASE_DELAY_S since it was first seen waiting (``waiting_since``). ``StartTime=now`` and
    not ``now+2``: a begin time in the future waits for Slurm's next scheduling pass (a minute)."""
    now = time.monotonic()
    since = waiting_since.setdefault(job, now)
    if now - since >= RELEASE_DELAY_S:
        command("scontrol", "update", f"JobId={job}", "StartTime=now")
        del waiting_since[job]


def release_requeued(sweep_dir: Path, waiting_since: dict[str, float]) -> None:
    """Release every requeued job of the sweep (``release``)."""
    for job in job_ids(sweep_dir):
        reason = command("squeue", "-h", "-j", job, "-o", "%r").stdout.strip()
        if reason == "BeginTime":
            release(job, waiting_since)


def finish(process: subprocess.Popen, sweep_dir: Path) -> tuple[int, str, float]:
    """Wait for the sweep, releasing requeued jobs: (exit code, stderr, time it ended)."""
    waiting_since: dict[str, float] = {}
    while process.poll() is None:
        release_requeued(sweep_dir, waiting_since)
        time.sleep(0.5)
    return process.returncode, process.stderr.read(), time.time()


UNSETTLED = {"PENDING", "RUNNING", "COMPLETING", "REQUEUED", "SUSPENDED"}


def job_states(job: str, *, settle_s: float = 60.0) -> list[str]:
    """Every state the job's records in the accounting show, first start first (a requeued job
    has one REQUEUED record per requeue, then its last one).

    slurmctld sends a job's end to slurmdbd asynchronously, so on a busy machine sacct can
    still show the job running a moment after it ended: wait up to ``settle_s`` for its last
    record to reach a final state."""
    deadline = time.monotonic() + settle_s
    while True:
        out = command("sacct", "-n", "-X", "-P", "--duplicates", "-j", job, "-o", "State").stdout
        states = out.split()
        if (states and states[-1] not in UNSETTLED) or time.monotonic() > deadline:
            return states
        time.sleep(1.0)


def last_end(jobs: list[str]) -> float:
    """When the last of ``jobs`` ended, from the accounting (one-second resolution), once
    every job's end has reached it."""
    for job in jobs:
        job_states(job)
    out = command("sacct", "-n", "-X", "-P", *[f"-j{job}" for job in jobs], "-o", "End").stdout
    return max(datetime.fromisoformat(end).timestamp() for end in out.split())


def run_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(path.parent for path in sweep_dir.glob("*/summary.json"))


def metrics(run_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        record.pop("train/env_steps_per_s", None)  # wall-clock speed differs, nothing else may
    return records


def start_uninterrupted(run_dir: Path, overrides: list[str]) -> subprocess.Popen:
    """The same run as a sweep job's, in one go on this machine (one torch thread, as the job)."""
    settings = ["threads=1", "progress=false", f"hydra.run.dir={run_dir}"]
    return riskq_train(run_dir.parent, *overrides, *settings)


def train_in(run_dir: Path, overrides: list[str]) -> dict:
    cfg = compose_config([*overrides, "progress=false"])
    return train(cfg, run_dir, build_experiment(cfg))


def stop_and_continue(run_dir: Path, overrides: list[str], stop_at: int) -> dict:
    """Train to ``stop_at``, continue with the preemption signal already received (what
    PREEMPTION's handler records: Preempted after one more iteration), then continue to the
    end. Returns summary.json as the signal left it."""
    train_in(run_dir, [*overrides, f"t_max={stop_at}"])
    PREEMPTION.signum = signal.SIGUSR2
    try:
        with pytest.raises(Preempted):
            train_in(run_dir, [*overrides, f"resume={run_dir}"])
    finally:
        PREEMPTION.signum = None
    stopped = json.loads((run_dir / "summary.json").read_text())
    train_in(run_dir, [*overrides, f"resume={run_dir}"])
    return stopped


def test_a_preempted_run_checkpoints_at_the_end_of_its_iteration_and_continues_exactly(tmp_path):
    overrides = [*MACN, "seed=5", "t_max=1500", "threads=1"]
    train_in(tmp_path / "full", overrides)
    stopped = stop_and_continue(tmp_path / "run", overrides, stop_at=610)
    assert stopped["status"] == "interrupted"
    assert 610 < stopped["checkpoint_t_env"] == stopped["t_env"] < 1500  # no periodic one there
    for name in ("full", "run"):
        assert json.loads((tmp_path / name / "summary.json").read_text())["status"] == "complete"
    expected = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == expected
    assert metrics(tmp_path / "run") == metrics(tmp_path / "full")


@pytest.mark.slow
def test_under_streaming_collection_a_preempted_run_continues_from_its_periodic_checkpoint(
    tmp_path,
):
    """Episodes run across iterations: no checkpoint is added at the signal (playing them out
    early would change what the run collects), and the last periodic one continues exactly."""
    pytest.importorskip("jaxmarl", reason="needs the smax extra: pip install -e '.[smax]'")
    overrides = [
        "env=smax_3m",
        "collection=streaming",
        "t_max=400",
        "num_envs=4",
        "eval_episodes=4",
        "eval_interval=200",
        "checkpoint_interval=200",
        "algo.batch_size=4",
        "algo.buffer_size=64",
        "algo.agent.n_quantiles=8",
        "seed=2",
    ]
    train_in(tmp_path / "full", overrides)
    stopped = stop_and_continue(tmp_path / "run", overrides, stop_at=200)
    assert stopped["status"] == "interrupted"
    assert stopped["checkpoint_t_env"] < stopped["t_env"]  # episodes were in flight
    expected = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == expected
    assert metrics(tmp_path / "run") == metrics(tmp_path / "full")


def test_a_requeued_slurm_job_continues_its_own_run_and_no_other(tmp_path, monkeypatch):
    run_dir, cfg = tmp_path / "run", compose_config(SWEEP)
    train(cfg, run_dir, build_experiment(cfg))
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert requeued_resume(cfg, run_dir) == replace(cfg, resume=str(run_dir))
    assert requeued_resume(cfg, tmp_path / "new") == cfg  # no checkpoint: a first start
    assert requeued_resume(replace(cfg, resume="other"), run_dir).resume == "other"
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")  # the job's first start
    assert requeued_resume(cfg, run_dir) == cfg
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    monkeypatch.delenv("SUBMITIT_EXECUTOR")  # not a job of a riskq sweep
    assert requeued_resume(cfg, run_dir) == cfg


@pytest.mark.cluster
@pytest.mark.usefixtures("local_slurm")
def test_a_slurm_sweep_completes_and_riskq_plot_aggregates_it(tmp_path):
    sweep_dir = tmp_path / "sweep"
    sweep = start_sweep(tmp_path, "seed=0,1", *SWEEP, f"hydra.sweep.dir={sweep_dir}")
    code, err, ended = finish(sweep, sweep_dir)
    assert code == 0, err[-3000:]
    assert "Bypassing sacct error" not in err + sweep.stdout.read()
    jobs = job_ids(sweep_dir)
    assert len(jobs) == 2 and all(job_states(job) == ["COMPLETED"] for job in jobs)
    print(f"\nSlurm sweep of 2 runs: riskq-train -m exited {ended - last_end(jobs):.1f} s after")
    runs = run_dirs(sweep_dir)
    assert [json.loads((run / "summary.json").read_text())["status"] for run in runs] == [
        "complete",
        "complete",
    ]
    plotted = subprocess.run(
        [sys.executable, "-m", "riskq.cli.plot", str(sweep_dir), "--out", str(tmp_path / "plots")],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plotted.returncode == 0, plotted.stderr
    with (tmp_path / "plots" / "final_performance.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert int(row["n_seeds"]) == 2


@pytest.mark.cluster
@pytest.mark.usefixtures("local_slurm")
def test_a_failed_run_fails_the_slurm_sweep_with_one_line(tmp_path):
    sweep_dir = tmp_path / "sweep"
    sweep = start_sweep(
        tmp_path, "seed=0", "algo.lr=0.001,1e30", *SWEEP, f"hydra.sweep.dir={sweep_dir}"
    )
    code, err, ended = finish(sweep, sweep_dir)
    print(f"\nfailed Slurm sweep: exit {code}, {ended - last_end(job_ids(sweep_dir)):.1f} s after")
    lines = [line for line in err.splitlines() if not line.startswith("[")]
    assert code == 1 and len(lines) == 2, err[-3000:]
    assert lines[0].startswith("run 1 (algo.lr=1e+30) failed: non-finite loss")
    assert lines[1].startswith("riskq-train: error: 1 of 2 runs failed")


@pytest.mark.cluster
@pytest.mark.usefixtures("local_slurm")
def test_a_preempted_job_checkpoints_requeues_and_continues_exactly(tmp_path):
    overrides = [*MACN, "seed=3", "t_max=6000"]
    sweep_dir = tmp_path / "sweep"
    sweep = start_sweep(tmp_path, *overrides, f"hydra.sweep.dir={sweep_dir}")
    while not list(sweep_dir.glob("*/metrics.jsonl")) or job_ids(sweep_dir) == []:
        assert sweep.poll() is None, sweep.stderr.read()[-3000:]
        time.sleep(0.2)
    (job,) = job_ids(sweep_dir)
    (run_dir,) = [path.parent for path in sweep_dir.glob("*/metrics.jsonl")]
    while len((run_dir / "metrics.jsonl").read_text().splitlines()) < 4:
        time.sleep(0.2)
    assert command("scancel", "--signal=USR2", job).returncode == 0
    while command("squeue", "-h", "-j", job, "-o", "%r").stdout.strip() != "BeginTime":
        assert sweep.poll() is None, sweep.stderr.read()[-3000:]
        time.sleep(0.2)
    stopped = json.loads((run_dir / "summary.json").read_text())  # while the job waits
    reference = start_uninterrupted(tmp_path / "uninterrupted", overrides)
    code, err, _ = finish(sweep, sweep_dir)
    assert code == 0, err[-3000:]
    assert reference.wait() == 0, reference.stderr.read()
    assert stopped["status"] == "interrupted"
    assert 0 < stopped["checkpoint_t_env"] == stopped["t_env"] < 6000  # saved at the signal
    assert job_states(job) == ["REQUEUED", "COMPLETED"]
    print(f"\npreempted at env step {stopped['t_env']}, requeued once, continued to the end")
    summary = json.loads((run_dir / "summary.json").read_text())
    expected = tmp_path / "uninterrupted"
    assert summary == json.loads((expected / "summary.json").read_text())
    assert metrics(run_dir) == metrics(expected)


@pytest.mark.cluster
@pytest.mark.usefixtures("local_slurm")
def test_a_job_past_its_requeues_fails_with_one_line_and_keeps_its_checkpoint(tmp_path):
    """max_num_timeout=0: the first time-limit signal (sent here by hand; under a 1-minute
    limit submitit counts any signal as the time limit, and Slurm's own comes only 5 s before
    the end) ends the sweep instead of a requeue."""
    sweep_dir = tmp_path / "sweep"
    limits = [
        "hydra.launcher.timeout_min=1",
        "hydra.launcher.signal_delay_s=5",
        "hydra.launcher.max_num_timeout=0",
    ]
    sweep = start_sweep(tmp_path, *MACN, "t_max=100000", *limits, f"hydra.sweep.dir={sweep_dir}")
    while not list(sweep_dir.glob("*/checkpoints/latest.pt")):
        assert sweep.poll() is None, sweep.stderr.read()[-3000:]
        time.sleep(0.2)
    (job,) = job_ids(sweep_dir)
    assert command("scancel", "--signal=USR2", job).returncode == 0
    code, err, _ = finish(sweep, sweep_dir)
    lines = [line for line in err.splitlines() if not line.startswith("[")]
    assert code == 1 and len(lines) == 2, err[-3000:]
    assert "failed: Job not requeued because: timed-out too many times" in lines[0]
    assert "max_num_timeout" in lines[0] and lines[1].startswith("riskq-train: error: 1 of 1")
    (run_dir,) = run_dirs(sweep_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["checkpoint_t_env"] == summary["t_env"]
    assert job_states(job) == ["COMPLETED"]  # no requeue


@pytest.mark.cluster
@pytest.mark.usefixtures("local_slurm")
def test_a_job_at_its_time_limit_is_requeued_until_the_run_completes_exactly(tmp_path):
    """A 1-minute limit and signal_delay_s=15: Slurm checks limits every 30 s and signals a job
    with less than signal_delay_s + 30 s left, so each start of the job is signalled 15 to 45 s
    after it (not earlier: the job's Python must be up to catch the signal); the run is sized
    for 55 s of training here."""
    speed = steps_per_second(tmp_path)
    t_max = int(55 * speed) // 100 * 100
    overrides = [*MACN, "seed=4", f"t_max={t_max}"]
    sweep_dir = tmp_path / "sweep"
    sweep = start_sweep(
        tmp_path,
        *overrides,
        "hydra.launcher.timeout_min=1",
        "hydra.launcher.signal_delay_s=15",
        "hydra.launcher.max_num_timeout=10",
        f"hydra.sweep.dir={sweep_dir}",
    )
    reference = start_uninterrupted(tmp_path / "uninterrupted", overrides)
    code, err, _ = finish(sweep, sweep_dir)
    assert code == 0, err[-3000:]
    assert reference.wait() == 0, reference.stderr.read()
    (job,) = job_ids(sweep_dir)
    states = job_states(job)
    assert states[-1] == "COMPLETED" and set(states[:-1]) == {"REQUEUED"} and len(states) > 1
    log = next((sweep_dir / ".submitit" / job).glob("*_log.out")).read_text()
    signalled = [line for line in log.splitlines() if "WARNING" in line and "Caught" in line]
    assert len(signalled) == len(states) - 1
    assert all("this job is timed-out" in line for line in signalled)
    print(f"\n{t_max} env steps under a 1-minute limit: requeued {len(states) - 1} times")
    (run_dir,) = run_dirs(sweep_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    expected = tmp_path / "uninterrupted"
    assert summary == json.loads((expected / "summary.json").read_text())
    assert metrics(run_dir) == metrics(expected)


def steps_per_second(tmp_path: Path) -> float:
    """MACN env steps per second of a short run of the tests' settings on this machine."""
    cfg = compose_config([*MACN, "t_max=2000", "threads=1", "progress=false"])
    start = time.perf_counter()
    train(cfg, tmp_path / "speed", build_experiment(cfg))
    return 2000 / (time.perf_counter() - start)


@contextmanager
def releasing_requeued_jobs() -> Iterator[None]:
    """While the block runs, release every requeued job of this user (``release``)."""
    done, waiting_since = threading.Event(), {}

    def release_all() -> None:
        while not done.wait(0.5):
            pending = command("squeue", "-h", "--me", "-t", "PENDING", "-o", "%i %r").stdout
            for job, reason in (line.split() for line in pending.splitlines()):
                if reason == "BeginTime":
                    release(job, waiting_since)

    thread = threading.Thread(target=release_all, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@pytest.mark.cluster
@pytest.mark.usefixtures("local_slurm")
def test_the_cluster_guide_runs_as_written(tmp_path):
    """Every command of docs/guide/cluster.md on the local Slurm, budgets shrunk, partition
    and GPU settings changed where the page's test directives say."""
    with releasing_requeued_jobs():
        run_tutorial(ROOT / "docs" / "guide" / "cluster.md", tmp_path)
