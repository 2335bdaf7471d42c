"""E copies of a Gymnasium Tuple-space multi-agent env (lbforaging, rware) as a ``BatchedEnv``.

The env is built with ``gymnasium.make(id, **kwargs)`` after importing ``module`` (which
registers the ids, e.g. ``lbforaging`` -> ``Foraging-5x5-2p-1f-coop-v3``, ``rware`` ->
``rware-tiny-2ag-v2``). Its step returns a list of per-agent rewards, reduced to the team
reward. Conventions:

* Time limits: these envs report their own step limit (lbforaging ``_max_episode_steps``,
  rware ``max_steps``) as ``terminated``/done. The adapter turns an end at that step count
  into ``truncated`` so the learner bootstraps; earlier ends stay ``terminated``. (An env that
  also reaches a real terminal state on exactly that step is reported truncated.) A
  ``TimeLimit`` wrapper (gymnasium's ``max_episode_steps``, which ``gymnasium.make`` takes
  from ``kwargs``) already reports ``truncated``; a real termination on its last step stays
  ``terminated``. ``episode_limit`` is the smallest of these limits and the explicit one.
* Heterogeneous agents are padded as in ``envs.pettingzoo_adapter``; all actions of an agent
  are available. Global state: the padded observations [N * O].
* Every reset re-seeds each copy with a seed drawn from ``self.rng`` (``envs._adapter``).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from envs._adapter import PerCopyEnv, discrete_size, obs_size, padded, reward_reducer
from envs._optional import import_optional
from envs.base import EnvInfo, EnvObs

NAME = "gym_ma"
# attributes of env.unwrapped that hold a step limit the env reports as termination
INTERNAL_LIMIT_ATTRS: tuple[str, ...] = ("_max_episode_steps", "max_steps")


def _internal_limit(env: gymnasium.Env) -> int | None:
    """The step limit the env itself reports as done, None if it has none."""
    for name in INTERNAL_LIMIT_ATTRS:
        limit = getattr(env.unwrapped, name, None)
        if limit is not None:
            return int(limit)
    return None


def _episode_limit(env: gymnasium.Env, episode_limit: int | None, *, id: str) -> int:
    """Smallest of the explicit limit, the TimeLimit wrapper's and the env's own."""
    wrapper_limit = env.spec.max_episode_steps if env.spec is not None else None
    limits = [x for x in (episode_limit, wrapper_limit, _internal_limit(env)) if x is not None]
    if not limits:
        raise ValueError(f"env '{NAME}' id '{id}' has no time limit: set episode_limit")
    return int(min(limits))


class GymMultiAgentEnv(PerCopyEnv):
    """E copies of one Gymnasium Tuple-space multi-agent env; see the module docstring."""

    def __init__(
        self,
        *,
        num_envs: int = 1,
        seed: int | None = None,
        id: str,
        module: str,
        kwargs: dict[str, Any] | None = None,
        reward: str = "sum",
        episode_limit: int | None = None,
    ) -> None:
        super().__init__(num_envs=num_envs, seed=seed)
        self.id = id
        self._team_reward = reward_reducer(reward)
        import_optional(module, env=NAME, id=id)
        kwargs = {"disable_env_checker": True, **dict(kwargs or {})}
        self._envs = [gymnasium.make(id, **kwargs) for _ in range(num_envs)]
        probe = self._envs[0]
        self._check_tuple(probe)
        self._n_actions = [
            discrete_size(space, env=NAME, id=id, agent=str(n))
            for n, space in enumerate(probe.action_space.spaces)
        ]
        self._internal_limit = _internal_limit(probe)
        n_agents, obs_dim = len(self._n_actions), max(map(obs_size, probe.observation_space))
        self.info = EnvInfo(
            n_agents=n_agents,
            n_actions=max(self._n_actions),
            obs_dim=obs_dim,
            state_dim=n_agents * obs_dim,
            agent_feature_dim=0,
            episode_limit=_episode_limit(probe, episode_limit, id=id),
        )
        self._allocate()

    def _check_tuple(self, env: gymnasium.Env) -> None:
        for kind, space in (("action", env.action_space), ("observation", env.observation_space)):
            if not isinstance(space, gymnasium.spaces.Tuple):
                raise ValueError(
                    f"env '{NAME}' id '{self.id}' has {kind} space {space}; valid choices: Tuple"
                )

    def _allocate(self) -> None:
        """Per-copy buffers of the current step; all real actions are always available."""
        super()._allocate()
        for n, size in enumerate(self._n_actions):
            self._avail[:, n, :size] = True

    def _reset_copy(self, e: int, seed: int) -> None:
        observations, _ = self._envs[e].reset(seed=seed)
        self._write(e, observations)

    def _step_copy(self, e: int, actions: np.ndarray) -> tuple[float, bool, bool]:
        step = self._envs[e].step(tuple(int(a) for a in actions))
        observations, rewards, env_terminated, env_truncated, _ = step
        self._write(e, observations)
        at_internal_limit = self._internal_limit is not None and (
            self._steps[e] >= self._internal_limit
        )
        terminated = bool(np.all(env_terminated)) and not at_internal_limit
        over = bool(np.all(env_terminated)) or bool(np.all(env_truncated))
        over = over or self._steps[e] >= self.info.episode_limit
        team = self._team_reward(np.asarray(rewards, dtype=np.float64).reshape(-1))  # [N]
        return team, terminated, over and not terminated

    def _write(self, e: int, observations: Any) -> None:
        """Fill copy ``e``'s padded observations [N, O]."""
        for n, obs in enumerate(observations):
            self._obs[e, n] = padded(obs, width=self.info.obs_dim)  # [O]

    def _env_obs(self) -> EnvObs:
        E = self.num_envs
        return EnvObs(
            obs=self._obs.copy(),
            state=self._obs.reshape(E, -1).copy(),  # [E, N * O]
            avail_actions=self._avail.copy(),
        )
