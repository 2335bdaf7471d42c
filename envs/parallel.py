"""A PettingZoo ``ParallelEnv`` view of one copy of any ``BatchedEnv``.

The batched env holds the dynamics; this wrapper only translates between dicts keyed by
agent name and the batched arrays, so the PettingZoo and batched forms cannot drift apart.
Every agent receives the team reward; the action mask is ``infos[agent]["action_mask"]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from envs.base import BatchedEnv, EnvObs, EnvStep


class BatchedParallelEnv(ParallelEnv):
    """PettingZoo parallel API over a ``BatchedEnv`` with ``num_envs == 1``."""

    def __init__(self, env: BatchedEnv) -> None:
        if env.num_envs != 1:
            raise ValueError(f"BatchedParallelEnv needs num_envs == 1, got {env.num_envs}")
        self.env = env
        info = env.info
        self.possible_agents = [f"agent_{i}" for i in range(info.n_agents)]
        self.agents: list[str] = []
        self.metadata = {
            "name": getattr(env, "label", type(env).__name__),
            "is_parallelizable": True,
            "render_modes": [],
        }
        self.render_mode = None
        self.observation_spaces = {
            agent: spaces.Box(-np.inf, np.inf, shape=(info.obs_dim,), dtype=np.float32)
            for agent in self.possible_agents
        }
        self.action_spaces = {
            agent: spaces.Discrete(info.n_actions) for agent in self.possible_agents
        }
        self.state_space = spaces.Box(-np.inf, np.inf, shape=(info.state_dim,), dtype=np.float32)
        self._last: EnvObs | None = None

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self.action_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """Start an episode; ``seed`` re-seeds the batched env's generator."""
        self._last = self.env.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return self._observations(), self._infos()

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        """One joint step; every live agent must act. Agents leave when the episode ends."""
        if not self.agents:
            return {}, {}, {}, {}, {}
        missing = sorted(set(self.agents) - set(actions))
        if missing:
            raise ValueError(f"actions missing for live agents {missing}")
        joint = np.array([[int(actions[agent]) for agent in self.possible_agents]])  # [E=1, N]
        result: EnvStep = self.env.step(joint)
        self._last = result.next_obs
        observations, infos = self._observations(), self._infos()
        rewards = dict.fromkeys(self.agents, float(result.reward[0]))
        terminations = dict.fromkeys(self.agents, bool(result.terminated[0]))
        truncations = dict.fromkeys(self.agents, bool(result.truncated[0]))
        if result.terminated[0] or result.truncated[0]:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """The global state [S] of the current step."""
        if self._last is None:
            raise RuntimeError("call reset() before state()")
        return self._last.state[0]

    def close(self) -> None:
        self.env.close()

    def _observations(self) -> dict[str, np.ndarray]:
        return {agent: self._last.obs[0, i] for i, agent in enumerate(self.possible_agents)}

    def _infos(self) -> dict[str, dict[str, Any]]:
        masks = self._last.avail_actions[0].astype(np.int8)  # [N, A]
        return {agent: {"action_mask": masks[i]} for i, agent in enumerate(self.possible_agents)}
