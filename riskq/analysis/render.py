"""Watch a trained run: one greedy evaluation episode drawn as an animated GIF (``riskq-render``).

- MACN: the grid with its cliff, start and goal cells, each agent's path so far and where it
  stands; the title counts the steps, the return and the cliff falls.
- MACF: the two cars on the road (one lane each) with the target line, coloured by speed
  (red above the speed limit), their tracks and a mark where a crash happened.
- SMAX: JaxMARL's own visualiser (``riskq.analysis.render_smax``).

Several runs of one env are drawn side by side, one panel each, for as many frames as the
longest episode has (a shorter one holds its last frame). A frame shows the state after
t = 0, ..., T steps: an episode of T steps gives T + 1 frames.

What is drawn comes from small pure functions of the episode the evaluation runner recorded
(``agent_cells``, ``fall_counts``, ``car_states``, ``crash_counts``); tests/test_render.py
checks them against the env's own state while it replays the same episode.

Shapes: T steps, N agents, S state features.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from envs.macf import REACH_TOLERANCE, CarFollowing, team_reward
from envs.macn import CliffNavigation, is_cliff
from riskq.errors import UsageError
from riskq.run.checkpoint import CheckpointError
from riskq.run.evaluate import load_run, read_run
from riskq.run.experiment import EVAL_SEED_OFFSET, Experiment

DRAWING_PACKAGES = ("matplotlib", "PIL")  # the plot extra: figures and Pillow's GIF writer
AGENT_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink")


@dataclass(frozen=True)
class Episode:
    """One recorded episode of one env copy (numpy), with the run's label for the panel."""

    label: str  # e.g. "riskq, Wang(0.75)"
    seed: int  # the env seed it was played from
    state: np.ndarray  # [T+1, S], the state after 0..T steps
    actions: np.ndarray  # [T, N]
    reward: np.ndarray  # [T]
    terminated: np.ndarray  # [T] bool

    @property
    def length(self) -> int:
        """T, the steps taken."""
        return int(self.reward.shape[0])


def greedy_episode(exp: Experiment, *, seed: int, label: str) -> Episode:
    """The first episode of a greedy evaluation (epsilon 0) of ``exp`` from env seed ``seed``."""
    rollout = exp.eval_runner.collect(epsilon=0.0, seed=seed)
    steps = int(rollout.lengths[0])
    batch = rollout.batch
    return Episode(
        label=label,
        seed=seed,
        state=batch.state[0, : steps + 1].cpu().numpy(),  # [T+1, S]
        actions=batch.actions[0, :steps].cpu().numpy(),  # [T, N]
        reward=batch.reward[0, :steps].cpu().numpy(),  # [T]
        terminated=batch.terminated[0, :steps].cpu().numpy(),  # [T]
    )


# ----------------------------------------------------------------- MACN: what is drawn
def agent_cells(state: np.ndarray, *, n_agents: int, height: int, width: int) -> np.ndarray:
    """Each agent's cell (row, col) from MACN states [T+1, S]: [T+1, N, 2] int.

    The state holds per agent the one-hot of its cell over H*W cells, then its reached flag.
    """
    per_agent = state.reshape(state.shape[0], n_agents, height * width + 1)  # [T+1, N, HW+1]
    index = per_agent[..., : height * width].argmax(axis=-1)  # [T+1, N]
    return np.stack([index // width, index % width], axis=-1)  # [T+1, N, 2]


def reached_flags(state: np.ndarray, *, n_agents: int) -> np.ndarray:
    """Each agent's reached flag from MACN states [T+1, S]: [T+1, N] bool."""
    per_agent = state.reshape(state.shape[0], n_agents, -1)  # [T+1, N, HW+1]
    return per_agent[..., -1] > 0.5  # [T+1, N]


def fall_counts(state: np.ndarray, reward: np.ndarray, env: CliffNavigation) -> np.ndarray:
    """Cliff falls at each step, [T] int, from MACN states [T+1, S] and team rewards [T].

    The reward of a step is -step_cost per walking agent + goal_bonus per arrival + the
    shaping terms - cliff_penalty per fall; every term but the falls follows from the cells.
    """
    n_agents = env.info.n_agents
    cells = agent_cells(state, n_agents=n_agents, height=env.height, width=env.width)
    walking = ~reached_flags(state, n_agents=n_agents)[:-1]  # [T, N], before each step
    arrived = walking & (cells[1:] == env.goals).all(axis=-1)  # [T, N]
    shaping = env.potential(cells[1:]) - env.potential(cells[:-1])  # [T, N]
    without_falls = (
        -env.step_cost * walking.sum(axis=-1)
        + env.goal_bonus * arrived.sum(axis=-1)
        + (shaping * walking).sum(axis=-1)
    )  # [T]
    return np.rint((without_falls - reward) / env.cliff_penalty).astype(np.int64)  # [T]


# ----------------------------------------------------------------- MACF: what is drawn
def car_states(state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities [T+1, N] from MACF states [T+1, S = (p_0, v_0, p_1, v_1)]."""
    cars = state.reshape(state.shape[0], -1, 2).astype(np.float64)  # [T+1, N, (p, v)]
    return cars[..., 0], cars[..., 1]


def crash_counts(
    state: np.ndarray, reward: np.ndarray, terminated: np.ndarray, env: CarFollowing
) -> np.ndarray:
    """Crashes at each step, [T] int, from MACF states [T+1, S], rewards [T], terminated [T].

    The team reward (``envs.macf.team_reward``) follows from the positions but for
    crash_reward per crash; a car is reached once it is within REACH_TOLERANCE of the target.
    """
    pos, vel = car_states(state)  # [T+1, N]
    reached = np.abs(pos - env.target) < REACH_TOLERANCE  # [T+1, N]
    reached[0] = False  # every car starts at p = 0
    without_crashes = team_reward(
        pos[1:],
        newly_reached=reached[1:] & ~reached[:-1],
        crashed=np.zeros_like(reached[1:]),
        terminated=terminated,
        target=env.target,
        observation_range=env.observation_range,
        crash_reward=env.crash_reward,
    )  # [T]
    crashes = np.rint((reward - without_crashes) / env.crash_reward).astype(np.int64)
    speeding = (vel[1:] > env.speed_limit).sum(axis=-1)  # [T]: only these cars can crash
    return np.clip(crashes, 0, speeding)


def crashed_cars(vel: np.ndarray, crashes: np.ndarray, *, speed_limit: float) -> np.ndarray:
    """Which cars to mark as crashed at each step, [T, N] bool, from velocities [T+1, N] and
    crash counts [T]. The team reward gives the count only: the fastest speeding cars are
    marked (the crash probability grows with the speed over the limit)."""
    speed = np.where(vel[1:] > speed_limit, vel[1:], -np.inf)  # [T, N]
    rank = np.argsort(np.argsort(-speed, axis=-1, kind="stable"), axis=-1)  # 0: the fastest
    return rank < crashes[:, None]  # [T, N]


# ----------------------------------------------------------------- scenes
class MacnScene:
    """One MACN panel: grid, cliff, start and goal, paths and agents."""

    size = (4.0, 3.4)  # inches per panel

    def __init__(self, ax, episode: Episode, env: CliffNavigation) -> None:
        from matplotlib.patches import Rectangle

        n_agents, height, width = env.info.n_agents, env.height, env.width
        self.ax, self.episode = ax, episode
        self.cells = agent_cells(episode.state, n_agents=n_agents, height=height, width=width)
        self.falls = np.concatenate(
            [[0], np.cumsum(fall_counts(episode.state, episode.reward, env))]
        )
        self.returns = np.concatenate([[0.0], np.cumsum(episode.reward, dtype=np.float64)])
        grid = np.indices((height, width)).reshape(2, -1).T  # [HW, 2] (row, col)
        for row, col in grid:
            colour = "0.25" if is_cliff(np.array([row, col]), height=height, width=width) else "w"
            ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fc=colour, ec="0.7"))
        for (row, col), text in ((env.starts[0], "start"), (env.goals[0], "goal")):
            ax.text(col, row + 0.35, text, ha="center", va="center", fontsize=8)
        ax.text((width - 1) / 2, height - 1, "cliff", color="w", ha="center", va="center")
        # [N]: each agent's path drawn a little off the cell centre, so that shared cells show both
        self.offsets = (np.arange(n_agents) - (n_agents - 1) / 2) * 0.15
        self.paths = [
            ax.plot([], [], "-", color=AGENT_COLOURS[i], lw=2)[0] for i in range(n_agents)
        ]
        self.dots = [
            ax.plot([], [], "o", ms=12, color=AGENT_COLOURS[i], mec="k")[0] for i in range(n_agents)
        ]
        ax.set(xlim=(-0.5, width - 0.5), ylim=(height - 0.5, -0.5), aspect="equal")
        ax.set_xticks([])
        ax.set_yticks([])

    def draw(self, frame: int) -> None:
        t = min(frame, self.episode.length)
        for i, (path, dot) in enumerate(zip(self.paths, self.dots, strict=True)):
            shifted = self.cells[: t + 1, i] + self.offsets[i]  # [t+1, 2], (row, col)
            rows, cols = shifted[:, 0], shifted[:, 1]
            jumps = np.abs(np.diff(self.cells[: t + 1, i], axis=0)).sum(axis=-1) > 1  # falls
            gaps = np.concatenate([[False], jumps])  # break the line where the agent was sent back
            path.set_data(cols, np.where(gaps, np.nan, rows))
            dot.set_data([cols[-1]], [rows[-1]])
        self.ax.set_title(
            f"{self.episode.label}\nstep {t}/{self.episode.length}  return "
            f"{self.returns[t]:.1f}  falls {self.falls[t]}",
            fontsize=9,
        )


class MacfScene:
    """One MACF panel: the road, the target, the two cars, their tracks and crashes."""

    size = (5.5, 2.6)  # inches per panel

    def __init__(self, ax, episode: Episode, env: CarFollowing) -> None:
        self.ax, self.episode, self.env = ax, episode, env
        self.pos, self.vel = car_states(episode.state)  # [T+1, N]
        crashes = crash_counts(episode.state, episode.reward, episode.terminated, env)
        self.crashed = crashed_cars(self.vel, crashes, speed_limit=env.speed_limit)  # [T, N]
        self.total_crashes = np.concatenate([[0], np.cumsum(crashes)])
        self.returns = np.concatenate([[0.0], np.cumsum(episode.reward, dtype=np.float64)])
        lanes = np.arange(self.pos.shape[1])  # one lane per car
        low = min(0.0, float(self.pos.min())) - 0.2
        high = max(env.target, float(self.pos.max())) + 0.3
        ax.axhspan(-0.5, lanes[-1] + 0.5, color="0.85")
        ax.axvline(env.target, color="tab:green", ls="--", lw=2)
        ax.text(env.target, lanes[-1] + 0.6, "target", color="tab:green", ha="center")
        self.tracks = [ax.plot([], [], "-", color="0.5", lw=1)[0] for _ in lanes]
        self.cars = ax.scatter(np.zeros(lanes.size), lanes, s=300, marker="s", ec="k", zorder=3)
        self.crash_marks = ax.scatter([], [], s=150, marker="X", color="tab:red", zorder=4)
        ax.set(xlim=(low, high), ylim=(-0.8, lanes[-1] + 1.0), xlabel="position")
        ax.set_yticks(lanes, [f"car {i}" for i in lanes])

    def draw(self, frame: int) -> None:
        t = min(frame, self.episode.length)
        lanes = np.arange(self.pos.shape[1])
        for lane, track in zip(lanes, self.tracks, strict=True):
            track.set_data(self.pos[: t + 1, lane], np.full(t + 1, lane))
        self.cars.set_offsets(np.column_stack([self.pos[t], lanes]))
        speeding = self.vel[t] > self.env.speed_limit
        self.cars.set_facecolor(np.where(speeding, "tab:red", "tab:blue"))
        steps, cars = np.nonzero(self.crashed[:t])  # crashes up to this frame
        self.crash_marks.set_offsets(np.column_stack([self.pos[steps + 1, cars], cars]))
        speeds = ", ".join(f"{v:.2f}" for v in self.vel[t])
        self.ax.set_title(
            f"{self.episode.label}\nstep {t}/{self.episode.length}  return "
            f"{self.returns[t]:.1f}  crashes {self.total_crashes[t]}  speeds {speeds}",
            fontsize=9,
        )


def supported_env(run: str | Path) -> str:
    """The env name of a run that riskq-render can draw; others raise UsageError."""
    try:
        cfg = read_run(run)[0]
    except CheckpointError as error:
        raise CheckpointError(
            f"{error}; riskq-render draws runs of {', '.join(SUPPORTED)}"
        ) from None
    if cfg.env.name not in SUPPORTED:
        raise UsageError(
            f"{run}: env '{cfg.env.name}' cannot be rendered; supported envs: "
            f"{', '.join(SUPPORTED)}"
        )
    return cfg.env.name


def load_episode(run: str | Path, *, seed: int | None) -> tuple[Episode, Any, dict]:
    """A run's greedy episode (seed None: its first evaluation seed), its env and env.args."""
    cfg, exp, _ = load_run(run, episodes=1)
    label = f"{cfg.algo.name}, {exp.risk_fn.label}"
    seed = cfg.seed + EVAL_SEED_OFFSET if seed is None else seed
    return greedy_episode(exp, seed=seed, label=label), exp.eval_env, cfg.env.args


def animate(episodes: list[tuple[Episode, Any, dict]], env_name: str, out: Path, *, fps: int):
    """Write the episodes (``load_episode``), side by side, as a GIF at ``out``; returns the
    frames written."""
    from matplotlib.animation import FuncAnimation, PillowWriter
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panel = SCENES[env_name]
    fig = Figure(figsize=(panel.size[0] * len(episodes), panel.size[1]), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(episodes), squeeze=False)[0]
    scenes = [panel(ax, episode, env) for ax, (episode, env, _) in zip(axes, episodes, strict=True)]
    frames = max(episode.length for episode, _, _ in episodes) + 1

    def draw(frame: int) -> list:
        for scene in scenes:
            scene.draw(frame)
        return []

    out.parent.mkdir(parents=True, exist_ok=True)
    FuncAnimation(fig, draw, frames=frames, init_func=lambda: [], blit=False).save(
        out, writer=PillowWriter(fps=fps), dpi=80
    )
    return frames


def draw_scenes(runs: list, env_name: str, out: Path, *, seed: int | None, fps: int) -> int:
    """MACN and MACF: riskq's own panels (``SCENES``), runs side by side."""
    return animate([load_episode(run, seed=seed) for run in runs], env_name, out, fps=fps)


def draw_smax(runs: list, env_name: str, out: Path, *, seed: int | None, fps: int) -> int:
    """SMAX: JaxMARL's visualiser (``riskq.analysis.render_smax``), one run at a time, its own
    speed."""
    if len(runs) > 1:
        raise UsageError("SMAX runs are drawn one at a time (JaxMARL's visualiser)")
    from riskq.analysis.render_smax import render_smax

    return render_smax(*load_episode(runs[0], seed=seed), out)


SCENES: dict[str, Any] = {"macn": MacnScene, "macf": MacfScene}  # env.name -> its panel
DRAWERS: dict[str, Callable[..., int]] = {**dict.fromkeys(SCENES, draw_scenes), "smax": draw_smax}
SUPPORTED = tuple(DRAWERS)  # the env names riskq-render draws


def render(runs: list[str | Path], out: Path, *, seed: int | None = None, fps: int = 4) -> int:
    """Draw each run's greedy episode (side by side) into the GIF ``out``; returns the frames
    drawn. Every run must be of one supported env (``SUPPORTED``); bad input raises
    UsageError, CheckpointError or ImportError (one line each)."""
    missing = [name for name in DRAWING_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"riskq-render needs {missing[0]}: pip install -e '.[plot]'")
    names = {supported_env(run) for run in runs}
    if len(names) > 1:
        raise UsageError(
            f"runs of different envs ({', '.join(sorted(names))}) cannot be drawn side by side"
        )
    (env_name,) = names
    return DRAWERS[env_name](runs, env_name, out, seed=seed, fps=fps)
