"""riskq-render on real runs: tiny MACN, MACF and matrix runs trained by the real CLI.

What is drawn (each agent's cell, the cars' positions and speeds, falls and crashes) is
checked against the env's own state while it replays the recorded episodes; the GIF has one
frame per state of the episode (its length + 1).
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from budgets import TINY
from PIL import Image

from riskq.analysis.render import (
    SUPPORTED,
    agent_cells,
    car_states,
    crash_counts,
    crashed_cars,
    fall_counts,
    load_episode,
)
from riskq.run.evaluate import evaluate_run, load_run
from riskq.run.experiment import make_env

BIN = Path(sys.executable).parent
RUNS = {  # env -> overrides of its tiny run
    "macn": ["env=macn"],
    "macf": ["env=macf", "env.args.episode_limit=30", "algo.agent.n_quantiles=8", "t_max=400"],
    "matrix": ["env=matrix"],
}


def command(name: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    """A console script of this environment, run from ``cwd``."""
    return subprocess.run(
        [str(BIN / name), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """env -> the directory of a tiny riskq-train run (one torch thread)."""
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for env, overrides in RUNS.items():
        run_dir = root / env
        result = command(
            "riskq-train", *TINY, *overrides, "threads=1", f"hydra.run.dir={run_dir}", cwd=root
        )
        assert result.returncode == 0, result.stderr
        made[env] = run_dir
    return made


def replay(run: Path, *, copies: int, seed: int, epsilon: float):
    """Episodes of ``copies`` env copies as the evaluation runner records them (the run's
    network acting epsilon-greedily), and a fresh env of the run's config stepped through the
    same actions from the same seed (the same random stream): (batch, lengths, env,
    snapshots), where snapshots[t] holds what the env itself says after t steps."""
    cfg, exp, _ = load_run(run, episodes=copies)
    rollout = exp.eval_runner.collect(epsilon=epsilon, seed=seed)
    env = make_env(cfg, num_envs=copies, seed=0)
    env.reset(seed=seed)
    snapshots = [snapshot(env)]
    for t in range(rollout.batch.max_steps):
        env.step(rollout.batch.actions[:, t].numpy())
        snapshots.append(snapshot(env))
    return rollout.batch, rollout.lengths, env, snapshots


def snapshot(env) -> dict[str, np.ndarray]:
    """The env's own record of where everything is: MACN cells and falls, MACF cars."""
    if hasattr(env, "cells"):
        return {"cells": env.cells.copy(), "falls": env.falls.sum(axis=-1)}
    return {"pos": env.pos.copy(), "vel": env.vel.copy(), "crashes": env.metrics["crashes"].copy()}


def test_macn_cells_and_falls_are_the_envs_own(runs):
    batch, lengths, env, snapshots = replay(runs["macn"], copies=16, seed=11, epsilon=1.0)
    falls_seen = 0
    for copy, steps in enumerate(lengths):
        state = batch.state[copy, : steps + 1].numpy()  # [T+1, S]
        cells = agent_cells(state, n_agents=2, height=env.height, width=env.width)
        expected = np.stack([snap["cells"][copy] for snap in snapshots[: steps + 1]])
        np.testing.assert_array_equal(cells, expected)
        falls = fall_counts(state, batch.reward[copy, :steps].numpy(), env)  # [T]
        total = np.array([snap["falls"][copy] for snap in snapshots[: steps + 1]])
        np.testing.assert_array_equal(falls, np.diff(total))
        falls_seen += int(falls.sum())
    assert falls_seen > 0  # random walks fall: the decoding was exercised


def test_macf_cars_and_crashes_are_the_envs_own(runs):
    # greedy: the tiny run's cars speed (random accelerations rarely pass the speed limit)
    batch, lengths, env, snapshots = replay(runs["macf"], copies=16, seed=11, epsilon=0.0)
    crashes_seen = 0
    for copy, steps in enumerate(lengths):
        state = batch.state[copy, : steps + 1].numpy()  # [T+1, S]
        pos, vel = car_states(state)
        np.testing.assert_allclose(pos, [s["pos"][copy] for s in snapshots[: steps + 1]], 1e-6)
        np.testing.assert_allclose(vel, [s["vel"][copy] for s in snapshots[: steps + 1]], 1e-6)
        reward, terminated = batch.reward[copy, :steps], batch.terminated[copy, :steps]
        crashes = crash_counts(state, reward.numpy(), terminated.numpy(), env)
        total = np.array([snap["crashes"][copy] for snap in snapshots[: steps + 1]])
        np.testing.assert_array_equal(crashes, np.diff(total))
        marked = crashed_cars(vel, crashes, speed_limit=env.speed_limit)  # [T, N]
        assert (marked.sum(axis=-1) == crashes).all() and (vel[1:][marked] > 1.0).all()
        crashes_seen += int(crashes.sum())
    assert crashes_seen > 0


@pytest.mark.parametrize("env", ["macn", "macf"])
def test_render_writes_one_frame_per_state_of_the_greedy_episode(runs, env, tmp_path):
    episode, _, _ = load_episode(runs[env], seed=None)
    assert episode.length >= 1
    result = command("riskq-render", runs[env], "--out", "episode.gif", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "episode.gif") as gif:
        assert gif.n_frames == episode.length + 1
        width = gif.size[0]
    side_by_side = command(
        "riskq-render", runs[env], runs[env], "--out", "pair.gif", "--seed", 5, cwd=tmp_path
    )
    assert side_by_side.returncode == 0, side_by_side.stderr
    other, _, _ = load_episode(runs[env], seed=5)
    with Image.open(tmp_path / "pair.gif") as gif:
        assert gif.n_frames == other.length + 1
        assert gif.size[0] > 1.8 * width  # two panels


def test_the_drawn_episode_is_the_runs_greedy_evaluation(runs):
    """riskq-eval with one episode and the same seed plays the episode that is drawn."""
    episode, _, _ = load_episode(runs["macn"], seed=3)
    cfg, exp, run_dir = load_run(runs["macn"], episodes=1)
    stats = evaluate_run(cfg, exp, run_dir, seed=3)
    assert stats["eval/episode_length"] == episode.length
    assert stats["eval/return_mean"] == pytest.approx(float(episode.reward.sum()))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["{missing}"],
            "checkpoint not found: {missing} (give a run directory holding "
            "checkpoints/latest.pt, or a .pt file); riskq-render draws runs of macn, macf, smax",
        ),
        (
            ["{matrix}"],
            "{matrix}: env 'matrix' cannot be rendered; supported envs: macn, macf, smax",
        ),
        (
            ["{macn}", "{matrix}"],
            "{matrix}: env 'matrix' cannot be rendered; supported envs: macn, macf, smax",
        ),
        (["{macn}", "{macf}"], "runs of different envs (macf, macn) cannot be drawn side by side"),
    ],
)
def test_bad_runs_are_a_one_line_error(runs, tmp_path, args, message):
    names = {**runs, "missing": tmp_path / "no_run"}
    result = command(
        "riskq-render", *(a.format(**names) for a in args), "--out", "x.gif", cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"riskq-render: error: {message.format(**names)}"
    assert not (tmp_path / "x.gif").exists()
    assert SUPPORTED == ("macn", "macf", "smax")


@pytest.mark.parametrize("out", ["episode.txt", "."])
def test_out_must_name_a_gif_file(runs, tmp_path, out):
    result = command("riskq-render", runs["macn"], "--out", out, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"riskq-render: error: --out names the GIF file to write (NAME.gif), got {out}"
    )


@pytest.mark.slow  # compiles SMAX's step; JaxMARL's visualiser draws ~2 s a frame here
def test_smax_episode_is_drawn_from_the_states_the_agents_saw(tmp_path):
    pytest.importorskip("jaxmarl", reason="needs the smax extra: pip install -e '.[smax]'")
    from envs.smax_jax import scenario_normaliser
    from riskq.analysis.render_smax import heuristic_scenario, smax_frames

    run = tmp_path / "smax"
    overrides = ["env=smax_3m", "env.args.episode_limit=2", "algo.agent.n_quantiles=8"]
    trained = command(
        "riskq-train", *TINY, *overrides, "t_max=40", "threads=1", f"hydra.run.dir={run}",
        cwd=tmp_path,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    episode, env, env_args = load_episode(run, seed=None)
    assert episode.length == 2  # the time limit: no 3m battle ends in two steps
    scenario = heuristic_scenario(env_args)
    env.reseed(episode.seed)
    frames, states = smax_frames(scenario, env.copy_seeds()[0], episode.actions)
    assert len(frames) == episode.length * (1 + scenario.world_steps_per_env_step)
    low, scale = scenario_normaliser(scenario)
    for t, state in enumerate(states):  # replayed JAX states = what the adapter recorded
        world = np.maximum(np.asarray(scenario.get_world_state(state)), low) * scale
        np.testing.assert_allclose(world, episode.state[t], atol=1e-6)
    result = command("riskq-render", run, "--out", "smax.gif", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"saved smax.gif ({len(frames)} frames drawn)"
    with Image.open(tmp_path / "smax.gif") as gif:  # Pillow merges repeated frames
        assert episode.length < gif.n_frames <= len(frames)
