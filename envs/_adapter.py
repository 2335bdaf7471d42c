"""What the adapters of external suites (``pettingzoo``, ``gym_ma``) share: ``PerCopyEnv``, the
per-copy reset and step loop over E independent external envs, and the helpers that turn
per-agent spaces, observations, masks and rewards into the padded arrays of a ``BatchedEnv``.

Shapes: E env copies, N agents, A actions (padded to the largest), O observation (padded).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.base import BatchedEnv, EnvObs, EnvStep

# team reward from the per-agent rewards of one step (an empty step gives 0)
REWARD_REDUCERS: dict[str, Callable[[np.ndarray], float]] = {
    "sum": lambda rewards: float(np.sum(rewards)),
    "mean": lambda rewards: float(np.mean(rewards)) if rewards.size else 0.0,
}


class PerCopyEnv(BatchedEnv):
    """E independent external envs (``self._envs``) stepped one by one in a Python loop.

    ``reset`` re-seeds each copy with a seed drawn from ``self.rng``; ``step`` validates the
    actions once, steps every running copy and freezes the copies that ended. A subclass sets
    ``info`` and ``_envs``, calls ``_allocate`` and defines ``_reset_copy``, ``_step_copy`` and
    ``_env_obs``.
    """

    _envs: list[Any]

    def _allocate(self) -> None:
        """Per-copy buffers of the current step (subclasses add their own)."""
        E, N, info = self.num_envs, self.info.n_agents, self.info
        self._obs = np.zeros((E, N, info.obs_dim), dtype=np.float32)  # [E, N, O]
        self._avail = np.zeros((E, N, info.n_actions), dtype=bool)  # [E, N, A]
        self._done = np.ones(E, dtype=bool)  # [E]
        self._steps = np.zeros(E, dtype=np.int64)  # [E] steps taken in the current episode

    @abc.abstractmethod
    def _reset_copy(self, e: int, seed: int) -> None:
        """Reset copy ``e`` with ``seed`` and write its observations into the buffers."""

    @abc.abstractmethod
    def _step_copy(self, e: int, actions: np.ndarray) -> tuple[float, bool, bool]:
        """Step copy ``e`` (``_steps[e]`` already counts this step) with actions [N] and write
        its observations; returns (team reward, terminated, truncated)."""

    @abc.abstractmethod
    def _env_obs(self) -> EnvObs:
        """Copies of the buffers as an EnvObs."""

    def reset(self, seed: int | None = None) -> EnvObs:
        self.reseed(seed)
        for e, copy_seed in enumerate(self.copy_seeds()):
            self._done[e] = False
            self._steps[e] = 0
            self._reset_copy(e, copy_seed)
        return self._env_obs()

    def step(self, actions: np.ndarray) -> EnvStep:
        running = ~self._done  # [E]
        actions = self.validated_actions(actions, avail=self._avail, running=running)  # [E, N]
        reward = np.zeros(self.num_envs, dtype=np.float32)  # [E]
        terminated = np.zeros(self.num_envs, dtype=bool)  # [E]
        truncated = np.zeros(self.num_envs, dtype=bool)  # [E]
        for e in np.flatnonzero(running):
            self._steps[e] += 1
            reward[e], terminated[e], truncated[e] = self._step_copy(e, actions[e])
        self._done |= terminated | truncated
        return EnvStep(self._env_obs(), reward, terminated, truncated)

    def close(self) -> None:
        for env in self._envs:
            env.close()


def reward_reducer(name: str) -> Callable[[np.ndarray], float]:
    """The team-reward reducer registered under ``name``."""
    if name not in REWARD_REDUCERS:
        valid = ", ".join(sorted(REWARD_REDUCERS))
        raise ValueError(f"unknown reward mode '{name}'; valid choices: {valid}")
    return REWARD_REDUCERS[name]


def discrete_size(space: spaces.Space, *, env: str, id: str, agent: str) -> int:
    """Number of actions of a Discrete space starting at 0; any other space is refused."""
    if not isinstance(space, spaces.Discrete):
        raise ValueError(
            f"env '{env}' id '{id}' agent '{agent}' has action space {space}; "
            "valid choices: Discrete"
        )
    if int(space.start) != 0:
        raise ValueError(f"env '{env}' id '{id}' agent '{agent}': Discrete start must be 0")
    return int(space.n)


def split_obs(observation: Any) -> tuple[Any, Any]:
    """(observation, action mask or None) from a plain or ``{"observation", "action_mask"}`` obs."""
    if isinstance(observation, dict) and "observation" in observation:
        return observation["observation"], observation.get("action_mask")
    return observation, None


def obs_size(space: spaces.Space) -> int:
    """Flat size of one agent's observation (the ``observation`` entry of a Dict space)."""
    if isinstance(space, spaces.Dict) and "observation" in space.spaces:
        space = space["observation"]
    if space.shape is None:
        raise ValueError(f"observation space {space} has no shape; valid choices: Box, Discrete")
    return int(np.prod(space.shape))


def padded(values: Any, *, width: int) -> np.ndarray:
    """Flatten ``values`` to float32 and pad it with zeros to ``width``: [width]."""
    flat = np.asarray(values, dtype=np.float32).reshape(-1)  # [O_agent]
    row = np.zeros(width, dtype=np.float32)  # [width]
    row[: flat.size] = flat
    return row


def avail_row(mask: Any, *, n_actions: int, width: int) -> np.ndarray:
    """Available actions of one agent: its mask (all True if None), False beyond: [width]."""
    row = np.zeros(width, dtype=bool)  # [A]
    row[:n_actions] = True if mask is None else np.asarray(mask, dtype=bool).reshape(-1)
    return row


def noop_row(*, width: int) -> np.ndarray:
    """Avail row of an agent that has finished: only action 0 (a no-op it sends nowhere): [A]."""
    row = np.zeros(width, dtype=bool)  # [A]
    row[0] = True
    return row
