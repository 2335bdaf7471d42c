"""E copies of a PettingZoo ``ParallelEnv`` (mpe2, SISL, ...) as one ``BatchedEnv``.

``id`` names a module whose ``parallel_env(**kwargs)`` builds the env, e.g.
``mpe2.simple_spread_v3`` or ``pettingzoo.sisl.pursuit_v5``; the copies are stepped in a
Python loop. Conventions:

* Heterogeneous agents: observations are flattened and zero-padded to the largest O,
  actions padded to the largest A with the padding unavailable. Action masks are read from
  ``infos[agent]["action_mask"]`` or ``{"observation", "action_mask"}`` observations.
* Global state: ``env.state()`` when the env has one, else the padded observations [N * O].
* Agents that finish while others go on: their observation becomes zeros and only action 0
  is available; the adapter does not send their action to the env (they act no-op).
* A copy ends when all its agents are done, its agent list is empty or it ran
  ``episode_limit`` steps; its last observations are kept (the bootstrap target after a
  truncation). The end is ``terminated`` if an agent terminated on that step, else
  ``truncated``.
* Every reset re-seeds each copy with a seed drawn from ``self.rng`` (``envs._adapter``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs._adapter import (
    PerCopyEnv,
    avail_row,
    discrete_size,
    noop_row,
    obs_size,
    padded,
    reward_reducer,
    split_obs,
)
from envs._optional import import_optional
from envs.base import EnvInfo, EnvObs

NAME = "pettingzoo"


def _state_size(env: Any) -> int | None:
    """Size of ``env.state()`` after a probe reset, None if the env has no global state."""
    env.reset(seed=0)
    try:
        return int(np.asarray(env.state()).size)
    except (NotImplementedError, AttributeError):
        return None


def _episode_limit(kwargs: dict[str, Any], episode_limit: int | None, *, id: str) -> int:
    """``kwargs["max_cycles"]`` when given, else the explicit ``episode_limit``."""
    max_cycles = kwargs.get("max_cycles")
    if max_cycles is not None and episode_limit is not None and max_cycles != episode_limit:
        raise ValueError(
            f"env '{NAME}' id '{id}': episode_limit {episode_limit} != max_cycles {max_cycles}"
        )
    limit = max_cycles if max_cycles is not None else episode_limit
    if limit is None:
        raise ValueError(f"env '{NAME}' id '{id}' needs episode_limit (or kwargs.max_cycles)")
    return int(limit)


class PettingZooEnv(PerCopyEnv):
    """E copies of one PettingZoo parallel env; see the module docstring for the conventions."""

    def __init__(
        self,
        *,
        num_envs: int = 1,
        seed: int | None = None,
        id: str,
        kwargs: dict[str, Any] | None = None,
        reward: str = "sum",
        episode_limit: int | None = None,
    ) -> None:
        super().__init__(num_envs=num_envs, seed=seed)
        kwargs = dict(kwargs or {})
        self.id = id
        self._team_reward = reward_reducer(reward)
        limit = _episode_limit(kwargs, episode_limit, id=id)
        make = getattr(import_optional(id, env=NAME, id=id), "parallel_env", None)
        if make is None:
            raise ValueError(f"env '{NAME}' id '{id}': module has no parallel_env()")
        self._envs = [make(**kwargs) for _ in range(num_envs)]
        probe = self._envs[0]
        self.agents = list(probe.possible_agents)
        self._n_actions = [
            discrete_size(probe.action_space(a), env=NAME, id=id, agent=a) for a in self.agents
        ]
        obs_dim = max(obs_size(probe.observation_space(a)) for a in self.agents)
        self._has_state = (state_dim := _state_size(probe)) is not None
        self.info = EnvInfo(
            n_agents=len(self.agents),
            n_actions=max(self._n_actions),
            obs_dim=obs_dim,
            state_dim=state_dim if self._has_state else len(self.agents) * obs_dim,
            agent_feature_dim=0,
            episode_limit=limit,
        )
        self._allocate()

    def _allocate(self) -> None:
        """Per-copy buffers of the current step, with the global state and who is alive."""
        super()._allocate()
        E, N = self.num_envs, self.info.n_agents
        self._state = np.zeros((E, self.info.state_dim), dtype=np.float32)  # [E, S]
        self._alive = np.zeros((E, N), dtype=bool)  # [E, N]

    def _reset_copy(self, e: int, seed: int) -> None:
        observations, infos = self._envs[e].reset(seed=seed)
        self._alive[e] = True
        self._write(e, observations, infos)

    def _step_copy(self, e: int, actions: np.ndarray) -> tuple[float, bool, bool]:
        env = self._envs[e]
        acting = {a: int(actions[n]) for n, a in enumerate(self.agents) if self._alive[e, n]}
        acting = {a: act for a, act in acting.items() if a in env.agents}
        observations, rewards, terminations, truncations, infos = env.step(acting)
        finished = np.array(  # [N]
            [
                terminations.get(a, False) or truncations.get(a, False) or a not in env.agents
                for a in self.agents
            ]
        )
        over = not env.agents or bool(finished[self._alive[e]].all())
        over = over or self._steps[e] >= self.info.episode_limit
        if not over:
            self._alive[e] &= ~finished
        self._write(e, observations, infos)
        ended_by_termination = over and any(terminations.get(a, False) for a in acting)
        team = self._team_reward(np.asarray(list(rewards.values()), dtype=np.float64))
        return team, ended_by_termination, over and not ended_by_termination

    def _write(self, e: int, observations: dict[str, Any], infos: dict[str, Any]) -> None:
        """Fill copy ``e``'s obs [N, O], avail [N, A] and state [S]; finished agents get zeros."""
        n_actions, obs_dim = self.info.n_actions, self.info.obs_dim
        for n, agent in enumerate(self.agents):
            if self._alive[e, n] and agent in observations:
                obs, mask = split_obs(observations[agent])
                mask = infos.get(agent, {}).get("action_mask", mask)
                self._obs[e, n] = padded(obs, width=obs_dim)  # [O]
                self._avail[e, n] = avail_row(mask, n_actions=self._n_actions[n], width=n_actions)
            else:
                self._obs[e, n] = 0.0
                self._avail[e, n] = noop_row(width=n_actions)  # [A]
        if self._has_state:
            self._state[e] = padded(self._envs[e].state(), width=self.info.state_dim)  # [S]
        else:
            self._state[e] = self._obs[e].reshape(-1)  # [N * O]

    def _env_obs(self) -> EnvObs:
        return EnvObs(
            obs=self._obs.copy(), state=self._state.copy(), avail_actions=self._avail.copy()
        )
