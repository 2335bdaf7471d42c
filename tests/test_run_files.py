"""Run files are safe to share and survive the machine: real processes, real files.

1. Loading a checkpoint never runs code: a crafted pickle is refused by every reader (the
   console scripts, run as processes) and its payload never runs.
2. Every checkpoint holds its format; another format is refused in one line, format 0 (before
   formats were numbered) converts exactly, and nothing is ever restored in part.
3. A write that fails (a full disk, a read-only file system: real tmpfs mounts) is one line,
   exit 1, keeps the last good checkpoint, leaves no temporary file, and the run resumes
   exactly once space is freed.
4. A partial last record of metrics.jsonl and of a TensorBoard file is dropped with a one-line
   warning, and the resumed run matches an uninterrupted one.
5. Any number of SIGTERM/SIGINT while a run stops: one line, exit 130, summary "interrupted".
6. A config file that would make Hydra run code is refused.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from budgets import TINY
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from riskq.cli.compose import CONFIG_MODULE, compose_config, register_configs
from riskq.cli.trusted_config import refused_entries
from riskq.run.checkpoint import load_checkpoint, save_checkpoint
from riskq.run.experiment import build_experiment
from riskq.run.logger import EVENT_FILE_PREFIX, whole_records_size
from riskq.run.run_files import RunFileError, describe_os_error
from riskq.run.stopping import quiet_signal_races
from riskq.run.trainer import train

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def command(name: str, *args: str) -> subprocess.CompletedProcess:
    """A console script of the installed package (``riskq-train``, ...), run to its end; a
    ``.py`` name runs that script of scripts/."""
    program = (
        [sys.executable, str(ROOT / "scripts" / name)]
        if name.endswith(".py")
        else [str(BIN / name)]
    )
    return subprocess.run([*program, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def start(name: str, *args: str) -> subprocess.Popen:
    """A console script started in the background (stderr captured)."""
    return subprocess.Popen(
        [str(BIN / name), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, process: subprocess.Popen, *, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert path.exists(), process.stderr.read() if process.poll() is not None else "too slow"


def one_line_error(err: str, prog: str = "riskq-train") -> str:
    """The one error line of ``prog``'s stderr; any other line is its own progress note."""
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith(f"{prog}: error: ")]
    assert len(errors) == 1 and all(line.startswith(f"{prog}: ") for line in lines), err
    return errors[0]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def metrics_without_speed(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock speed (it differs between runs, the rest must not)."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "train/env_steps_per_s"} for r in records]


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A finished tiny run (RiskQ, risk ladder, Wang(0.75)), trained by the console script."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    result = command("riskq-train", *TINY, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    return run_dir


def copy_run(run_dir: Path, dest: Path) -> Path:
    return Path(shutil.copytree(run_dir, dest))


def checkpoint_of(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "latest.pt"


# 1. A checkpoint never runs code.


class OpensAFile:
    """An object whose unpickling runs ``open(path, "w")``: the file appears if it ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


READERS = {  # reader -> (program, arguments for a run directory)
    "riskq-eval": lambda run: ("riskq-eval", str(run), "--episodes", "4"),
    "riskq-train resume=": lambda run: ("riskq-train", f"resume={run}", *TINY),
    "riskq-rigm run=": lambda run: ("riskq-rigm", f"run={run}", "episodes=4"),
    "scripts/greedy_trace.py": lambda run: ("greedy_trace.py", str(run)),
}


@pytest.mark.parametrize(
    ("reader", "form"),
    [*((reader, "torch.save") for reader in READERS), ("riskq-eval", "bare pickle")],
)
def test_a_crafted_pickle_is_refused_by_every_reader_and_never_runs(
    trained_run, tmp_path, reader, form
):
    run = copy_run(trained_run, tmp_path / "run")
    marker = tmp_path / "payload-ran"
    payload = {"learner": OpensAFile(marker), "counters": {"t_env": 300}}
    checkpoint = checkpoint_of(run)
    if form == "torch.save":
        torch.save(payload, checkpoint)
    else:
        checkpoint.write_bytes(pickle.dumps(payload))
    with contextlib.suppress(RuntimeError):  # a bare pickle: torch then finds no archive
        torch.load(checkpoint, weights_only=False)  # the payload is live: the old way runs it
    assert marker.exists()
    marker.unlink()
    before = snapshot(run)
    program, *args = READERS[reader](run)
    result = command(program, *args)
    line = one_line_error(result.stderr, program.removesuffix(".py"))
    assert result.returncode == 2
    assert f"checkpoint {checkpoint} is refused" in line and "nothing of it was loaded" in line
    if form == "torch.save":
        assert "(io.open)" in line  # what the payload asks for, named
    assert not marker.exists()
    assert snapshot(run) == before


def test_checkpoints_hold_plain_data_with_their_format(trained_run, tmp_path):
    state = torch.load(checkpoint_of(trained_run), weights_only=True)  # no allowlist needed
    assert (state["format"], state["riskq_version"]) == (1, "0.1.0")
    with pytest.raises(TypeError, match=r"plain data; found checkpoint.rng.runner: ndarray"):
        save_checkpoint(tmp_path / "never.pt", {"rng": {"runner": np.zeros(2, dtype=np.uint64)}})
    assert not (tmp_path / "never.pt").exists()


def test_a_numpy_generator_state_survives_a_checkpoint(tmp_path):
    """PCG64's state is two 128-bit integers: weights_only loading keeps them whole."""
    generator = np.random.default_rng(7)
    generator.random(3)
    save_checkpoint(tmp_path / "rng.pt", {"rng": generator.bit_generator.state})
    restored = np.random.default_rng()
    restored.bit_generator.state = load_checkpoint(tmp_path / "rng.pt")["rng"]
    assert restored.random(5).tolist() == generator.random(5).tolist()


# 2. Formats: refused in one line, format 0 converted exactly, nothing restored in part.


def resave(checkpoint: Path, change) -> None:
    torch.save(change(torch.load(checkpoint, weights_only=True)), checkpoint)


def test_another_checkpoint_format_is_refused_naming_both(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path / "run")
    resave(checkpoint_of(run), lambda state: {**state, "format": 2, "riskq_version": "9.0"})
    before = snapshot(run)
    for program, *args in READERS["riskq-eval"](run), READERS["riskq-train resume="](run):
        result = command(program, *args)
        line = one_line_error(result.stderr, program)
        assert result.returncode == 2, line
        assert "has format 2 (written by riskq 9.0); this riskq (0.1.0) reads format 1" in line
        assert "with the riskq release that wrote it" in line
    assert snapshot(run) == before


def as_format_0(state: dict) -> dict:
    """The layout riskq wrote before formats were numbered: no format, numpy lengths/widths."""
    buffer = state["buffer"]
    arrays = {"widths": buffer["widths"].numpy(), "lengths": buffer["lengths"].numpy()}
    kept = {k: v for k, v in state.items() if k not in ("format", "riskq_version")}
    return {**kept, "buffer": {**buffer, **arrays}}


def test_a_format_0_checkpoint_converts_exactly(trained_run, tmp_path):
    current, old = copy_run(trained_run, tmp_path / "new"), copy_run(trained_run, tmp_path / "old")
    resave(checkpoint_of(old), as_format_0)
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(checkpoint_of(old))
    assert "numpy.ndarray" in unsafe  # what format 0 held besides tensors
    for run in (current, old):
        result = command("riskq-train", f"resume={run}", *TINY, "t_max=400")
        assert result.returncode == 0, result.stderr
    assert summary_of(old) == summary_of(current)
    assert metrics_without_speed(old) == metrics_without_speed(current)
    assert torch.load(checkpoint_of(old), weights_only=True)["format"] == 1


def empty_optimiser(state: dict) -> dict:
    learner = state["learner"]
    return {**state, "learner": {**learner, "optimiser": {**learner["optimiser"], "state": {}}}}


def optimiser_of_two_tensors(state: dict) -> dict:
    """torch's optimiser over two parameter tensors (releases before the flat parameter)."""
    optimiser = state["learner"]["optimiser"]
    (group,) = optimiser["param_groups"]
    two = {"state": {0: optimiser["state"][0], 1: optimiser["state"][0]}}
    two["param_groups"] = [{**group, "params": [0, 1]}]
    return {**state, "learner": {**state["learner"], "optimiser": two}}


def counters_of_an_older_release(state: dict) -> dict:
    counters = {k: v for k, v in state["counters"].items() if k != "next_checkpoint"}
    return {**state, "counters": counters}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (empty_optimiser, "no optimiser state after"),
        (optimiser_of_two_tensors, "optimiser state for parameters [0, 1]"),
        (counters_of_an_older_release, "counters ["),
    ],
)
def test_a_checkpoint_that_would_restore_in_part_is_refused(trained_run, tmp_path, damage, message):
    run = copy_run(trained_run, tmp_path / "run")
    resave(checkpoint_of(run), damage)
    before = snapshot(run)
    result = command("riskq-train", f"resume={run}", *TINY, "t_max=400")
    line = one_line_error(result.stderr)
    assert result.returncode == 2 and "does not fit this run's config" in line and message in line
    assert snapshot(run) == before


# 3. Write failures: real file systems that fill up or are read-only.


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs mounted for this test."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)],
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        pytest.skip("no mount command: the tmpfs tests need root and mount")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def free_bytes(disk: Path) -> int:
    stats = os.statvfs(disk)
    return stats.f_bavail * stats.f_frsize


def fill(disk: Path, *, leave: int) -> Path:
    """Take all but about ``leave`` bytes of the free space of ``disk`` with one file. A run
    that writes to the disk meanwhile may take space between two looks: the file grows in
    chunks until the disk has ``leave`` bytes or fewer free, then gives back what it took
    beyond that, so the disk ends with ``leave`` bytes free (to a page) either way."""
    filler = disk / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        while (free := free_bytes(disk)) > leave:
            try:
                os.write(descriptor, bytes(min(free - leave, 1 << 20)))
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                break  # the run took the rest
        short = leave - free_bytes(disk)
        if short > 0:
            os.ftruncate(descriptor, max(0, os.fstat(descriptor).st_size - short))
    finally:
        os.close(descriptor)
    return filler


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (errno.ENOSPC, "ENOSPC"),
        (errno.EDQUOT, "EDQUOT"),
        (errno.EROFS, "EROFS"),
        (errno.EACCES, "EACCES"),
    ],
)
def test_every_write_error_is_named(code, name):
    assert describe_os_error(OSError(code, os.strerror(code))) == f"{os.strerror(code)} ({name})"


def test_a_checkpoint_that_does_not_fit_keeps_the_last_one_and_no_temporary(small_disk):
    path = small_disk / "checkpoints" / "latest.pt"
    save_checkpoint(path, {"weights": torch.zeros(10)})
    fill(small_disk, leave=64 * 1024)
    with pytest.raises(RunFileError, match=rf"^cannot write {path}: No space left on device"):
        save_checkpoint(path, {"weights": torch.zeros(1_000_000)})  # 4 MB
    assert load_checkpoint(path)["weights"].shape == (10,)
    assert sorted(p.name for p in path.parent.iterdir()) == ["latest.pt"]


MACN = [
    "env=macn",
    "num_envs=4",
    "eval_episodes=4",
    "eval_interval=500",
    "log_interval=250",
    "checkpoint_interval=500",
    "progress=false",
    "seed=3",
]


def test_a_full_disk_is_one_line_keeps_the_checkpoint_and_the_run_resumes_exactly(
    tmp_path, small_disk
):
    uninterrupted = tmp_path / "uninterrupted"
    result = command("riskq-train", *MACN, "t_max=3000", f"hydra.run.dir={uninterrupted}")
    assert result.returncode == 0, result.stderr
    run_dir = small_disk / "run"
    process = start("riskq-train", *MACN, "t_max=10000000", f"hydra.run.dir={run_dir}")
    wait_for(checkpoint_of(run_dir), process)
    filler = fill(small_disk, leave=64 * 1024)  # room for logs, not for the next checkpoint
    _, err = process.communicate(timeout=240)
    line = one_line_error(err)
    saved = load_checkpoint(run_dir)["counters"]["t_env"]
    assert process.returncode == 1
    assert re.fullmatch(
        rf"riskq-train: error: cannot write {run_dir}/checkpoints/latest.pt: No space left on "
        rf"device \(ENOSPC\); {run_dir}/checkpoints/latest.pt keeps env step {saved}; "
        rf"{run_dir}/summary.json marks the run failed; once the file can be written, "
        rf"resume={run_dir} continues it",
        line,
    ), line
    summary = summary_of(run_dir)
    assert summary["status"] == "failed" and summary["checkpoint_t_env"] == saved < 3000
    assert not list(small_disk.rglob("*.tmp"))
    filler.unlink()  # space is freed
    result = command("riskq-train", *MACN, "t_max=3000", f"resume={run_dir}")
    assert result.returncode == 0, result.stderr
    assert summary_of(run_dir) == summary_of(uninterrupted)
    assert metrics_without_speed(run_dir) == metrics_without_speed(uninterrupted)


def test_a_tensorboard_write_that_fails_is_one_line_and_marks_the_run_failed(
    trained_run, tmp_path, small_disk
):
    """TensorBoard's events are written in the training loop's thread: a failed write is the
    same one line as any other (no traceback from a background writer thread)."""
    run = copy_run(trained_run, tmp_path / "run")
    shutil.move(run / "tb", small_disk / "tb")
    (run / "tb").symlink_to(small_disk / "tb")
    fill(small_disk, leave=0)
    checkpoint = checkpoint_of(run).read_bytes()
    result = command("riskq-train", f"resume={run}", *TINY, "t_max=400")
    line = one_line_error(result.stderr)
    assert result.returncode == 1
    assert re.search(
        rf"cannot write {run}/tb/{EVENT_FILE_PREFIX}\S+: No space left on device \(ENOSPC\)", line
    ), line
    assert summary_of(run)["status"] == "failed" and "marks the run failed" in line
    assert checkpoint_of(run).read_bytes() == checkpoint
    assert not list(run.rglob("*.tmp"))


def test_an_eval_file_on_a_read_only_file_system_is_one_line_and_exit_1(
    trained_run, tmp_path, small_disk
):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    output = small_disk / "eval.json"
    result = command("riskq-eval", str(trained_run), "--episodes", "4", "--output", str(output))
    line = one_line_error(result.stderr, "riskq-eval")
    assert result.returncode == 1
    assert line == f"riskq-eval: error: cannot write {output}: Read-only file system (EROFS)"
    assert list(small_disk.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_run_directory_without_write_permission_is_one_line_and_exit_1(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path / "run")
    run.chmod(0o500)
    try:
        result = command("riskq-train", f"resume={run}", *TINY, "t_max=400")
    finally:
        run.chmod(0o700)
    line = one_line_error(result.stderr)
    assert result.returncode == 1 and "Permission denied (EACCES)" in line


# 4. Torn appends.


def test_torn_last_records_are_dropped_and_the_resumed_run_matches_an_uninterrupted_one(
    tmp_path, capsys
):
    base = [*MACN[:2], "eval_episodes=4", "eval_interval=200", "log_interval=100", "t_max=600"]
    base += ["checkpoint_interval=100000", "algo.batch_size=4", "progress=false", "seed=5"]
    full_cfg, half_cfg = compose_config(base), compose_config([*base, "t_max=300"])
    full = train(full_cfg, tmp_path / "full", build_experiment(full_cfg))
    half_dir = tmp_path / "half"
    train(half_cfg, half_dir, build_experiment(half_cfg))
    whole_lines = len((half_dir / "metrics.jsonl").read_text().splitlines())
    with (half_dir / "metrics.jsonl").open("a") as handle:  # killed while appending
        handle.write('{"step": 400, "train/loss": 0.')
    [events] = (half_dir / "tb").glob(f"{EVENT_FILE_PREFIX}*")
    whole = events.stat().st_size
    with events.open("ab") as handle:
        handle.write(events.read_bytes()[-30:-7])  # most of a record
    capsys.readouterr()
    resumed_cfg = compose_config([*base, f"resume={half_dir}"])
    resumed = train(resumed_cfg, half_dir, build_experiment(resumed_cfg))
    warnings = capsys.readouterr().err.strip().splitlines()
    assert warnings == [
        f"warning: {half_dir / 'metrics.jsonl'}: partial last line {whole_lines + 1} left out",
        f"warning: {events}: partial last record left out (23 bytes)",
    ]
    assert resumed == full
    assert metrics_without_speed(half_dir) == metrics_without_speed(tmp_path / "full")
    assert events.stat().st_size == whole == whole_records_size(events)


# 6. Configs are data.


def write_shared_game(folder: Path, hydra_keys: dict) -> Path:
    """A game file as a colleague might share it: the risk ladder plus ``hydra:`` keys."""
    (folder / "env").mkdir(parents=True)
    config = {"defaults": ["matrix"], "hydra": hydra_keys}
    (folder / "env" / "shared.yaml").write_text("# @package _global_\n" + json.dumps(config))
    return folder


def code_in_hydra_keys(marker: Path) -> dict[str, dict]:
    return {
        "callback": {
            "callbacks": {"shared": {"_target_": "pathlib.Path.touch", "_args_": [str(marker)]}}
        },
        "logging handler": {
            "job_logging": {
                "version": 1,
                "handlers": {
                    "shared": {"class": "subprocess.Popen", "args": ["touch", str(marker)]}
                },
                "root": {"handlers": ["shared"]},
            }
        },
        "environment": {"job": {"env_set": {"PYTHONPATH": str(marker.parent)}}},
    }


@pytest.mark.parametrize("kind", ["callback", "logging handler", "environment"])
def test_a_config_file_that_would_run_code_is_refused(tmp_path, kind):
    marker = tmp_path / "config-code-ran"
    games = write_shared_game(tmp_path / "games", code_in_hydra_keys(marker)[kind])
    run_dir = tmp_path / "run"
    result = command(
        "riskq-train", "--config-dir", str(games), "env=shared", *TINY, f"hydra.run.dir={run_dir}"
    )
    line = one_line_error(result.stderr)
    assert (
        result.returncode == 2
        and "refused config: hydra." in line
        and "riskq configs are data" in line
    )
    assert not marker.exists() and not run_dir.exists()


@pytest.mark.parametrize(
    "option",
    [
        [],
        *(
            [f"hydra/launcher={p.stem}"]
            for p in sorted((ROOT / "configs/hydra/launcher").glob("*.yaml"))
        ),
        *([f"hydra/job_logging={name}"] for name in ("default", "disabled", "none", "stdout")),
        *([f"hydra/hydra_logging={name}"] for name in ("default", "disabled", "hydra_debug")),
    ],
)
def test_every_config_riskq_and_hydra_ship_is_accepted(option):
    register_configs()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            cfg = compose(config_name="train", overrides=option, return_hydra_config=True)
    except Exception as error:  # a launcher whose extra is not installed
        pytest.skip(f"{option} does not compose here: {error}")
    assert refused_entries(OmegaConf.to_container(cfg.hydra, resolve=False)) == []


# 5. Signals: the first one stops the run, every later one is ignored while it stops.


def test_only_the_signal_race_report_is_dropped_while_stopping():
    """CPython reports a stop signal caught just before SIG_IGN took over as an unraisable
    OSError (a traceback on stderr), and a stop raised inside a gc callback as an unraisable
    KeyboardInterrupt; the stopping hook drops exactly those reports."""
    seen = []
    hook = quiet_signal_races(seen.append)
    race = SimpleNamespace(exc_value=OSError("Signal 15 ignored due to race condition"))
    other = SimpleNamespace(exc_value=OSError("disk full"))
    swallowed_stop = SimpleNamespace(exc_value=KeyboardInterrupt("signal 15"))  # in a gc callback
    someone_elses = SimpleNamespace(exc_value=KeyboardInterrupt())
    for unraisable in (race, other, swallowed_stop, someone_elses):
        hook(unraisable)
    assert seen == [other, someone_elses]


def test_repeated_signals_while_stopping_leave_one_line_and_an_interrupted_summary(tmp_path):
    run_dir = tmp_path / "run"
    process = start(
        "riskq-train",
        "env=macn",
        "t_max=10000000",
        "checkpoint_interval=200",
        "progress=false",
        f"hydra.run.dir={run_dir}",
    )
    checkpoint = checkpoint_of(run_dir)
    wait_for(checkpoint, process)
    sent = 0
    while process.poll() is None and sent < 400:  # a burst while the run writes its summary
        with_signal = signal.SIGTERM if sent % 2 == 0 else signal.SIGINT
        try:
            process.send_signal(with_signal)
        except ProcessLookupError:
            break
        sent += 1
        time.sleep(0.002)
    _, err = process.communicate(timeout=120)
    assert sent > 1, "the run ended before a second signal"
    assert process.returncode == 130
    assert err.strip() == "riskq-train: interrupted"
    summary = summary_of(run_dir)
    saved = load_checkpoint(checkpoint)["counters"]["t_env"]
    assert summary["status"] == "interrupted" and summary["checkpoint_t_env"] == saved
    assert not (run_dir / ".riskq.lock").exists()
    assert not list(run_dir.rglob("*.tmp"))
