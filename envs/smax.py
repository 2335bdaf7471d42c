"""JaxMARL's SMAX (StarCraft micromanagement re-implemented in JAX) as a ``BatchedEnv``.

RiskQ (Shen et al., NeurIPS 2023, arXiv:2311.01753) is evaluated on SMAC maps, which need the
StarCraft II binary. SMAX (Rutherford et al., JaxMARL, arXiv:2311.10090) re-implements the
SMAC scenarios (``3m``, ``2s3z``, ``3s_vs_5z``, ``5m_vs_6m``, ...) in JAX and runs on CPU.
The allies are the learning agents; the enemies follow JaxMARL's heuristic policy
(``HeuristicEnemySMAX``: each enemy attacks the closest ally in range, else walks towards it).
SMAX's options ``attack_mode="closest"``, ``see_enemy_actions=True`` and
``walls_cause_death=True`` (SMAX's defaults) are the settings of JaxMARL's published SMAX
results. JaxMARL's ``smacv2_*`` maps draw unit types and start positions each episode (SMACv2's
generation): their scenario turns both draws on, and SMAX reads those flags from the scenario
over its constructor's, so they need no setting here.

All running copies step in one jitted, vmapped call; one transfer per step brings every array
to numpy. Once half or more of the copies have ended, only a block of rows steps (the running
copies, padded with ended ones to the next power of two, at least ``MIN_ROWS``): the call's cost
grows with its rows, and ended copies stay frozen either way (``compact=False`` steps every
copy; the trajectories are the same). Conventions:

* Observation [O]: SMAX's unit-list observation of each ally (zeros once it is dead).
  State [S]: SMAX's ``world_state`` (every unit's health, position, cooldown and type bits,
  then every unit's team and type) brought to unit scale (``world_state_normaliser``):
  positions divided by the map's width and height, the weapon cooldown clipped at 0 and
  divided by the largest cooldown, types by the largest type index. JaxMARL leaves positions
  in map units (up to 32) and lets a holding unit's cooldown fall to -50 s: fed raw, they made
  the mixers' hypernetwork weights tens of times too large (QMIX's joint value started near
  20 on 3m, where a won episode returns 2). Agent features [F]: the ally's own slice of that
  state, the per-unit features RiskQ's attention mixer keys on.
* Actions [A = 5 + enemies]: 4 moves, stop, attack enemy j. SMAX's masks: a dead ally can
  only stop; attacks need a live enemy in range. Unavailable actions are refused.
* Team reward: SMAX's shared ally reward, the enemies' health lost as a fraction of their
  total health, plus ``won_battle_bonus`` on a win (the return of a won episode is 2).
* Ends: a battle over (all allies or all enemies dead) is ``terminated``; reaching
  ``episode_limit`` steps is ``truncated`` (``time_limit="truncation"``, the default: the learner
  bootstraps from the last state) or, with ``time_limit="termination"``, ends the battle as a
  draw that SMAC scores as not won (no bootstrap: the return to go at the time limit is 0).
  JaxMARL's own auto-reset is not used: a copy that has ended is frozen (reward 0, no new
  ends) until the next ``reset``, as ``BatchedEnv`` says, or until ``reset_copies`` starts its
  next episode while the other copies run on (streaming collection, ``collection=streaming``).
* Metrics per episode: ``win_rate`` (1 if every enemy died and an ally lives), ``allies_dead``
  and ``enemies_killed`` (unit counts at the end).
* Seeding: each ``reset`` draws one seed per copy from ``self.rng``; copy e then uses the JAX
  key ``PRNGKey(seed_e)``, split once for the reset and once per step. The numpy generator is
  the whole random state between episodes, so ``rng_state`` makes resume exact.

JAX is configured before its first import (``envs.smax_jax.configure_jax``): XLA's CPU thread
pool is kept to one thread (``XLA_FLAGS``) so env steps do not compete with torch for cores, and
GPU memory is not preallocated (``XLA_PYTHON_CLIENT_PREALLOCATE=false``). Compiling a scenario's
step takes about half a minute on CPU; JAX's persistent cache (``JAX_COMPILATION_CACHE_DIR``, by
default ``~/.cache/riskq/jax``) keeps the result for later runs. Values set by the user are kept.

Shapes: E env copies, N allies (agents), A actions, O observation, S state, F agent features.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.base import BatchedEnv, EnvInfo, EnvObs, EnvStep, StepRestart
from envs.smax_jax import NAME, Settings, dynamics, unpack

METRIC_NAMES = ("win_rate", "allies_dead", "enemies_killed")
ATTACK_MODES = ("closest", "random")  # targets of the heuristic enemies, JaxMARL's choices
TIME_LIMITS = ("truncation", "termination")  # what reaching episode_limit is (module docstring)
# Smallest block of rows a compacted step runs: below ~16 rows a vmapped 3m step cost about
# the same whatever its size (0.9 ms for 8 or 16 copies, 1.4 ms for 32, 2.5 ms for 64).
MIN_ROWS = 16
OBSERVED_OUTPUTS = 5  # step outputs a frozen copy repeats: obs, state, avail, features, metrics


def check_choice(key: str, value: Any, valid: tuple[str, ...]) -> None:
    """A ValueError naming ``key`` and the choices unless ``value`` is one of ``valid``."""
    if value not in valid:
        choices = ", ".join(valid)
        raise ValueError(f"env '{NAME}': unknown {key} '{value}'; valid choices: {choices}")


def check_flag(key: str, value: Any) -> None:
    """A ValueError naming ``key`` unless ``value`` is a bool (YAML's true or false)."""
    if not isinstance(value, bool):
        raise ValueError(f"env '{NAME}': {key} must be true or false, got {value!r}")


def block_rows(running: np.ndarray, *, min_rows: int = MIN_ROWS) -> np.ndarray | None:
    """running [E] bool -> the copies a compacted step runs, [R] int32, or None for all E.

    R is the smallest power of two >= the running count and >= ``min_rows``; blocks of R >= E
    step every copy (None). The running copies come first, then ended ones as padding.
    """
    count = int(running.sum())
    rows = max(min_rows, 1 << max(count - 1, 0).bit_length())  # next power of two
    if rows >= running.size:
        return None
    order = np.concatenate([np.flatnonzero(running), np.flatnonzero(~running)])
    return order[:rows].astype(np.int32)


class SmaxEnv(BatchedEnv):
    """E copies of one SMAX scenario against heuristic enemies; see the module docstring."""

    resets_copies = True

    def __init__(
        self,
        *,
        num_envs: int = 1,
        seed: int | None = None,
        map_name: str = "3m",
        episode_limit: int = 100,
        attack_mode: str = "closest",
        won_battle_bonus: float = 1.0,
        see_enemy_actions: bool = True,
        walls_cause_death: bool = True,
        time_limit: str = "truncation",
        compact: bool = True,
    ) -> None:
        super().__init__(num_envs=num_envs, seed=seed)
        check_choice("time_limit", time_limit, TIME_LIMITS)
        if episode_limit < 1:
            raise ValueError(f"env '{NAME}': episode_limit must be >= 1, got {episode_limit}")
        check_choice("attack_mode", attack_mode, ATTACK_MODES)
        flags = {
            "see_enemy_actions": see_enemy_actions,
            "walls_cause_death": walls_cause_death,
            "compact": compact,
        }
        for key, value in flags.items():
            check_flag(key, value)
        self.compact, self.time_limit, self.map_name = compact, time_limit, map_name
        self.settings = Settings(
            map_name=map_name,
            attack_mode=attack_mode,
            won_battle_bonus=float(won_battle_bonus),
            see_enemy_actions=see_enemy_actions,
            walls_cause_death=walls_cause_death,
        )
        self._dynamics = dynamics(self.settings)
        env = self._dynamics.env
        self.info = EnvInfo(
            n_agents=env.num_allies,
            n_actions=env.num_ally_actions,
            obs_dim=env.obs_size,
            state_dim=env.state_size,
            agent_feature_dim=len(env.own_features),
            episode_limit=int(episode_limit),
        )
        self._carry: Any = None
        self._avail = np.zeros((num_envs, self.info.n_agents, self.info.n_actions), bool)
        self._done = np.ones(num_envs, dtype=bool)  # [E]
        self._metrics = np.zeros((num_envs, len(METRIC_NAMES)), np.float32)  # [E, 3]
        self._last: list[np.ndarray] = []  # the last outputs of every copy (obs ... metrics)

    @property
    def scenario(self) -> Any:
        """JaxMARL's SMAX env of this map under its heuristic-enemy wrapper: what a scripted
        ally policy (``scripts/smax_scripted.py``) is built from."""
        return self._dynamics.env._env

    def reset(self, seed: int | None = None) -> EnvObs:
        self.reseed(seed)
        seeds = np.asarray(self.copy_seeds(), dtype=np.uint32)  # [E]
        limit = np.int32(self.info.episode_limit)
        self._carry, outputs = self._dynamics.reset(seeds, limit)
        self._done[:] = False
        return self._unpack(self._host(outputs))[0]

    def reset_copies(self, copies: np.ndarray) -> EnvObs:
        """New episodes in copies ``copies`` [E] bool, in a block of rows padded to a power
        of two (``block_rows``) so that few block sizes compile."""
        if self._carry is None:
            raise RuntimeError(f"env '{NAME}': call reset() before reset_copies()")
        import jax

        copies = np.asarray(copies, bool)
        seeds = np.asarray(self.copy_seeds(), dtype=np.uint32)  # [E], one per copy
        rows = block_rows(copies)
        rows = np.arange(self.num_envs, dtype=np.int32) if rows is None else rows  # [R]
        limit = np.int32(self.info.episode_limit)
        self._carry, outputs = self._dynamics.reset_rows(
            self._carry, rows, seeds[rows], copies[rows], limit
        )
        fresh = rows[copies[rows]]  # the rows whose outputs are new
        host = unpack(np.asarray(jax.device_get(outputs))[copies[rows]], self._dynamics.layout)
        self._done[fresh] = False
        return self._unpack(host, fresh)[0]

    def step_restart(self, actions: np.ndarray) -> StepRestart:
        """``BatchedEnv.step_restart`` in one jitted call: every copy steps (all run) and the
        ones that ended start new episodes, one seed per copy drawn from the env's generator
        at every call."""
        if self._carry is None or self._done.any():
            raise RuntimeError(f"env '{NAME}': step_restart() needs every copy running")
        import jax

        actions = self.validated_actions(actions, avail=self._avail).astype(np.int32)  # [E, N]
        seeds = np.asarray(self.copy_seeds(), dtype=np.uint32)  # [E]
        limit = np.int32(self.info.episode_limit)
        self._carry, outputs = self._dynamics.step_restart(self._carry, actions, seeds, limit)
        stepped, started = np.split(np.asarray(jax.device_get(outputs)), 2, axis=1)  # [E, D]
        step = self._ends(*self._unpack(unpack(stepped, self._dynamics.layout)))
        metrics = self.episode_metrics()
        ended = step.terminated | step.truncated  # [E]
        obs = step.next_obs
        if ended.any():
            rows = np.flatnonzero(ended)
            obs = self._unpack(unpack(started[rows], self._dynamics.layout), rows)[0]
        self._done[:] = False
        return StepRestart(step, metrics, obs)

    def step(self, actions: np.ndarray) -> EnvStep:
        if self._carry is None:
            raise RuntimeError(f"env '{NAME}': call reset() before step()")
        actions = self.validated_actions(actions, avail=self._avail, running=~self._done)  # [E, N]
        actions = actions.astype(np.int32)
        rows = block_rows(~self._done) if self.compact else None
        if rows is None:
            self._carry, outputs = self._dynamics.step(self._carry, actions)
        else:
            self._carry, outputs = self._dynamics.step_rows(self._carry, rows, actions[rows])
        step = self._ends(*self._unpack(self._host(outputs), rows))
        self._done |= step.terminated | step.truncated
        return step

    def _host(self, outputs: Any) -> list[np.ndarray]:
        """Packed device outputs [R, D] -> one numpy array [R, ...] per output."""
        import jax

        return unpack(np.asarray(jax.device_get(outputs)), self._dynamics.layout)

    def _ends(self, next_obs, reward, terminated, truncated) -> EnvStep:
        """The step with the time limit as ``time_limit`` says."""
        if self.time_limit == "termination":
            terminated, truncated = terminated | truncated, np.zeros_like(truncated)
        return EnvStep(next_obs, reward, terminated, truncated)

    def _unpack(
        self, host: list[np.ndarray], rows: np.ndarray | None = None
    ) -> tuple[EnvObs, np.ndarray, np.ndarray, np.ndarray]:
        """Host outputs (``unpack``) of every copy, or of copies ``rows`` [R] only (the others
        are frozen: their last observation again, reward 0, no new end) -> (EnvObs, reward [E],
        terminated [E], truncated [E]); keeps the observed outputs of every copy."""
        if rows is not None:
            observed = [last.copy() for last in self._last]
            ends = [np.zeros(self.num_envs, x.dtype) for x in host[OBSERVED_OUTPUTS:]]
            for whole, part in zip(observed + ends, host, strict=True):
                whole[rows] = part
            host = observed + ends
        self._last = host[:OBSERVED_OUTPUTS]
        obs, state, avail, features, metrics, reward, terminated, truncated = host
        self._avail, self._metrics = avail, metrics
        env_obs = EnvObs(obs=obs, state=state, avail_actions=avail, agent_features=features)
        return env_obs, reward, terminated, truncated

    def units(self) -> dict[str, np.ndarray]:
        """Every unit's true state in every copy, allies first then enemies (U units):
        ``position`` [E, U, 2] in map units, ``health`` [E, U], ``cooldown`` [E, U] (seconds
        until the weapon may fire again; at most 0 = ready) and ``alive`` [E, U] bool.
        For scripted policies and diagnostics; the learner never reads it."""
        if self._carry is None:
            raise RuntimeError(f"env '{NAME}': call reset() before units()")
        import jax

        units = self._carry[0].state  # SMAX's State, batched over copies
        position, health, cooldown, alive = jax.device_get(
            (units.unit_positions, units.unit_health, units.unit_weapon_cooldowns, units.unit_alive)
        )
        return {
            "position": np.asarray(position),
            "health": np.asarray(health),
            "cooldown": np.asarray(cooldown),
            "alive": np.asarray(alive, bool),
        }

    def episode_metrics(self) -> dict[str, np.ndarray]:
        """Per copy [E]: won (0/1), allies dead and enemies killed so far this episode."""
        return {name: self._metrics[:, i].copy() for i, name in enumerate(METRIC_NAMES)}
