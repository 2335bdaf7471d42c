"""The batched multi-agent environment interface shared by the runner and every env.

A ``BatchedEnv`` steps E copies of one cooperative task in lock-step (numpy in, numpy out).
Every agent receives the team reward. Copies that have finished (terminated or truncated)
are frozen: later ``step`` calls leave them unchanged and report reward 0 and no new
termination or truncation, so a runner can keep stepping all copies until the last one ends.

Shapes: E env copies, N agents, A actions, O observation, S state, F per-agent features.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np


@dataclass(frozen=True)
class EnvInfo:
    """Static description of a task, read by the runner to size networks and buffers."""

    n_agents: int
    n_actions: int
    obs_dim: int
    state_dim: int
    agent_feature_dim: int  # 0 when the env has no per-agent slice of the state
    episode_limit: int  # maximum steps per episode (a truncation, not a termination)


@dataclass
class EnvObs:
    """What the agents and the mixer see after a reset or a step."""

    obs: np.ndarray  # [E, N, O] float32
    state: np.ndarray  # [E, S] float32
    avail_actions: np.ndarray  # [E, N, A] bool
    agent_features: np.ndarray | None = None  # [E, N, F] float32, or None


@dataclass
class EnvStep:
    """The result of one lock-step transition of all copies."""

    next_obs: EnvObs
    reward: np.ndarray  # [E] float32, the team reward
    terminated: np.ndarray  # [E] bool, true terminal state: do not bootstrap
    truncated: np.ndarray  # [E] bool, time limit: bootstrap through it


class StepRestart(NamedTuple):
    """``BatchedEnv.step_restart``: a step, the metrics of the episodes it ended, and the
    observation after the copies that ended started new episodes."""

    step: EnvStep  # next_obs: the last observation of episodes that ended
    metrics: dict[str, np.ndarray]  # name -> [E], read where a copy ended
    obs: EnvObs  # every copy's observation, new episodes' first where a copy ended


class BatchedEnv(abc.ABC):
    """E copies of one task, seeded by one numpy Generator owned by the env."""

    info: EnvInfo
    num_envs: int
    # Optional hook of envs whose return distribution is known exactly (matrix games): when True
    # the env also defines exact_optimum(risk_fn) -> (joint action, value),
    # exact_risk_values(risk_fn) -> [A_1, ..., A_n] and action_label(joint action) -> str, and
    # riskq.run.matrix_report adds the learned-vs-optimal check to summary.json.
    has_exact_optimum: bool = False
    # True when the env defines reset_copies (new episodes in some copies while the others run
    # on), which streaming collection (riskq.run.runner.StreamingRunner) needs.
    resets_copies: bool = False

    def __init__(self, *, num_envs: int = 1, seed: int | None = None) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int | None) -> None:
        """Restart the env's generator from ``seed`` (None keeps it): reset(seed) calls this."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def copy_seeds(self) -> list[int]:
        """One reset seed per env copy [E], drawn from the env's generator (envs that wrap
        E independent simulators re-seed each copy with these at every reset)."""
        return [int(s) for s in self.rng.integers(2**31 - 1, size=self.num_envs)]

    def validated_actions(
        self,
        actions: np.ndarray,
        *,
        avail: np.ndarray | None = None,
        running: np.ndarray | None = None,
    ) -> np.ndarray:
        """Integer actions [E, N] as int64, checked once for every env.

        Refuses a wrong shape or dtype and, for running copies (running [E] bool; all when
        None), actions outside [0, A) and, given avail [E, N, A] bool, unavailable ones.
        """
        actions = np.asarray(actions)
        expected = (self.num_envs, self.info.n_agents)
        if actions.shape != expected or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(
                f"actions must have shape {list(expected)} and an integer dtype, "
                f"got {list(actions.shape)} {actions.dtype}"
            )
        running = np.ones(self.num_envs, bool) if running is None else running  # [E]
        n_actions = self.info.n_actions
        in_range = (actions >= 0) & (actions < n_actions)  # [E, N]
        if not in_range[running].all():
            raise ValueError(f"actions must lie in [0, {n_actions - 1}], got {actions.tolist()}")
        if avail is not None:
            index = np.where(in_range, actions, 0)[..., None]  # [E, N, 1]
            chosen = np.take_along_axis(avail, index, axis=-1)[..., 0]  # [E, N]
            bad = ~chosen & running[:, None]  # [E, N]
            if bad.any():
                copy, agent = np.argwhere(bad)[0]
                raise ValueError(
                    f"action {actions[copy, agent]} of agent {agent} (copy {copy}) is not "
                    "available: unavailable actions are refused"
                )
        return actions.astype(np.int64)

    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> EnvObs:
        """Start a new episode in every copy; re-seed the env's generator when seed is given."""

    @abc.abstractmethod
    def step(self, actions: np.ndarray) -> EnvStep:
        """Apply actions [E, N] (int) to every copy that is still running."""

    def reset_copies(self, copies: np.ndarray) -> EnvObs:
        """Start a new episode in copies ``copies`` [E] bool only, seeded from the env's
        generator; the others go on unchanged. Returns every copy's observation. Only envs
        with ``resets_copies`` define it."""
        raise NotImplementedError(f"{type(self).__name__} cannot reset single copies")

    def step_restart(self, actions: np.ndarray) -> StepRestart:
        """Step every copy (all running) and start a new episode in each one that ended
        (envs with ``resets_copies``; streaming collection). This default is ``step`` then
        ``reset_copies``; an env may do both in one call."""
        step = self.step(actions)
        metrics = self.episode_metrics()
        ended = step.terminated | step.truncated  # [E]
        obs = self.reset_copies(ended) if ended.any() else step.next_obs
        return StepRestart(step, metrics, obs)

    def episode_metrics(self) -> dict[str, np.ndarray]:
        """Per-episode env metrics of the current episodes so far: name -> [E] float."""
        return {}

    def rng_state(self) -> dict[str, Any]:
        """The generator state, saved in checkpoints for exact resume."""
        return self.rng.bit_generator.state

    def set_rng_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release external resources (adapters of external envs)."""
