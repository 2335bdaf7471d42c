"""Multi-Agent Car Following (MACF), the benchmark of the RiskQ paper (CONVENTIONS.md section 8.2).

Shen et al., "RiskQ: Risk-sensitive Multi-Agent Reinforcement Learning Value Factorization",
NeurIPS 2023, arXiv:2311.01753. The dynamics and numbers follow the reference environment;
two of its slips are fixed: crashes draw from the env's own seeded generator, and the
200-step time limit is a truncation, not a termination.

Two cars start at p = 0, v = 0 and must stop at p = 2.5. Each step (dt = 0.1 s) car i picks one
of 21 accelerations a = -1 + (2/21) * action. Driving faster than the speed limit 1 reaches the
target sooner (higher mean return) but every over-speed step crashes with probability
(v - 1) * 0.4, costing 1: a risk-averse team should crash less.

Per step, in this order (reference):
  1. cars not yet reached move (``move_cars``): forward speed is capped at 1.8, with the time
     to reach the cap rounded to 2 decimals; a car that reached at an earlier step is placed at
     p = 2.5, v = 0 (a car keeps its own p, v in the step it reaches, as in the reference);
  2. r = -1 - sum_i |p_i - 2.5|;
  3. each car not yet reached with |p_i - 2.5| < 0.01 is now reached: r += 5;
  4. each car with |v_i| > 1 counts a speed violation; if v_i > 1 it crashes with probability
     (v_i - 1) * 0.4: r -= 1 (the episode goes on; reversing never crashes);
  5. r += 1 if |p_0 - p_1| <= 0.3;
  6. both cars reached: r += 10 and the episode terminates; step 200: truncation.

Observation of car i [O = 4]: for each car j, (p_j, v_j) if |p_j - p_i| <= 0.3 else (0, 0).
State [S = 4]: (p_0, v_0, p_1, v_1). Agent features [F = 2]: (p_i, v_i).

Shapes: E env copies, N = 2 cars, A actions, O observation, S state, F per-agent features.
"""

from __future__ import annotations

import numpy as np

from envs.base import BatchedEnv, EnvInfo, EnvObs, EnvStep

N_CARS = 2
METRIC_NAMES = ("crashes", "cars_reached", "speed_violations")
LOWEST_ACCEL, HIGHEST_ACCEL = -1.0, 1.0  # a = -1 + (2/21) * action, reference
REACH_TOLERANCE = 0.01  # a car is reached when |p - target| < 0.01, reference
STEP_REWARD = -1.0  # every step, before the distance penalty, reference
REACH_REWARD = 5.0  # per car, once, reference
CLOSE_REWARD = 1.0  # when |p_0 - p_1| <= observation_range, reference
TERMINATION_REWARD = 10.0  # when both cars have reached, reference


def accelerations(actions: np.ndarray, *, n_actions: int) -> np.ndarray:
    """Action indices [...] (int) -> accelerations [...]: -1 + (2 / A) * action (reference)."""
    return LOWEST_ACCEL + (HIGHEST_ACCEL - LOWEST_ACCEL) / n_actions * actions


def move_cars(
    pos: np.ndarray,
    vel: np.ndarray,
    accel: np.ndarray,
    *,
    reached: np.ndarray,
    dt: float,
    speed_max: float,
    target: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One step of the reference kinematics: positions, velocities [E, N] -> new ones [E, N].

    A car whose speed would reach ``speed_max`` accelerates for t1 = round((v_max - v)/a, 2)
    seconds and cruises at ``speed_max`` for the rest of dt. Cars in ``reached`` [E, N] are
    placed at the target with zero velocity.
    """
    capped = vel + accel * dt >= speed_max  # [E, N]
    nonzero_accel = np.where(accel != 0, accel, 1.0)  # [E, N]; a = 0 caps only at v = v_max
    t1 = np.round((speed_max - vel) / nonzero_accel * 100) / 100  # [E, N]
    t2 = dt - t1  # [E, N]
    pos_capped = pos + vel * t1 + 0.5 * accel * t1**2 + speed_max * t2  # [E, N]
    pos_free = pos + vel * dt + 0.5 * accel * dt**2  # [E, N]
    new_pos = np.where(capped, pos_capped, pos_free)  # [E, N]
    new_vel = np.where(capped, speed_max, vel + accel * dt)  # [E, N]
    return np.where(reached, target, new_pos), np.where(reached, 0.0, new_vel)


def speed_events(
    vel: np.ndarray, uniforms: np.ndarray, *, speed_limit: float, risk_delta: float
) -> tuple[np.ndarray, np.ndarray]:
    """Over-speed and crash flags [E, N] from velocities and U[0, 1) draws [E, N].

    Every |v| > limit is a speed violation; a forward one (v > limit) crashes when
    u <= (v - limit) * risk_delta, i.e. with that probability (reference).
    """
    over_speed = np.abs(vel) > speed_limit  # [E, N]
    crash_prob = (vel - speed_limit) * risk_delta  # [E, N]
    crashed = over_speed & (vel > speed_limit) & (uniforms <= crash_prob)  # [E, N]
    return over_speed, crashed


def team_reward(
    pos: np.ndarray,
    *,
    newly_reached: np.ndarray,
    crashed: np.ndarray,
    terminated: np.ndarray,
    target: float,
    observation_range: float,
    crash_reward: float,
) -> np.ndarray:
    """Reference team reward [E] from positions, reach and crash flags [E, N], terminated [E]."""
    return (
        STEP_REWARD
        - np.abs(pos - target).sum(axis=-1)
        + REACH_REWARD * newly_reached.sum(axis=-1)
        + crash_reward * crashed.sum(axis=-1)
        + CLOSE_REWARD * (np.abs(pos[:, 0] - pos[:, 1]) <= observation_range)
        + TERMINATION_REWARD * terminated
    )  # [E]


def car_observations(pos: np.ndarray, vel: np.ndarray, *, observation_range: float) -> np.ndarray:
    """Per-car views [E, N, 2N]: car j's (p_j, v_j) when |p_j - p_i| <= range, else zeros."""
    num_envs, n_cars = pos.shape
    visible = np.abs(pos[:, None, :] - pos[:, :, None]) <= observation_range  # [E, N(i), N(j)]
    features = np.stack([pos, vel], axis=-1)  # [E, N, 2]
    views = visible[..., None] * features[:, None, :, :]  # [E, N(i), N(j), 2]
    return views.reshape(num_envs, n_cars, 2 * n_cars)  # [E, N, 2N]


def _check_positive(**values: float) -> None:
    for key, value in values.items():
        if not value > 0:
            raise ValueError(f"{key} must be > 0, got {value}")


class CarFollowing(BatchedEnv):
    """E copies of MACF in lock-step; see the module docstring for the dynamics and rewards."""

    def __init__(
        self,
        *,
        num_envs: int = 1,
        seed: int | None = None,
        target: float = 2.5,
        dt: float = 0.1,
        episode_limit: int = 200,
        n_actions: int = 21,
        speed_limit: float = 1.0,
        speed_max: float = 1.8,
        risk_delta: float = 0.4,
        observation_range: float = 0.3,
        crash_reward: float = -1.0,
    ) -> None:
        super().__init__(num_envs=num_envs, seed=seed)
        _check_positive(dt=dt, speed_max=speed_max, episode_limit=episode_limit)
        if n_actions < 2:
            raise ValueError(f"n_actions must be >= 2, got {n_actions}")
        if risk_delta < 0 or observation_range < 0:
            raise ValueError(
                f"risk_delta, observation_range must be >= 0, got {risk_delta}, {observation_range}"
            )
        self.target = target
        self.dt = dt
        self.n_actions = n_actions
        self.speed_limit = speed_limit
        self.speed_max = speed_max
        self.risk_delta = risk_delta
        self.observation_range = observation_range
        self.crash_reward = crash_reward
        self.info = EnvInfo(
            n_agents=N_CARS,
            n_actions=n_actions,
            obs_dim=2 * N_CARS,
            state_dim=2 * N_CARS,
            agent_feature_dim=2,
            episode_limit=episode_limit,
        )
        self._init_episode()

    def _init_episode(self) -> None:
        shape = (self.num_envs, N_CARS)
        self.pos = np.zeros(shape)  # [E, N]
        self.vel = np.zeros(shape)  # [E, N]
        self.reached = np.zeros(shape, dtype=bool)  # [E, N]
        self.steps = np.zeros(self.num_envs, dtype=np.int64)  # [E]
        self.done = np.zeros(self.num_envs, dtype=bool)  # [E]
        self.metrics = {name: np.zeros(self.num_envs) for name in METRIC_NAMES}  # [E] each

    def reset(self, seed: int | None = None) -> EnvObs:
        self.reseed(seed)
        self._init_episode()
        return self._observe()

    def _observe(self) -> EnvObs:
        features = np.stack([self.pos, self.vel], axis=-1).astype(np.float32)  # [E, N, 2]
        obs = car_observations(self.pos, self.vel, observation_range=self.observation_range)
        return EnvObs(
            obs=obs.astype(np.float32),  # [E, N, O]
            state=features.reshape(self.num_envs, 2 * N_CARS),  # [E, S]
            avail_actions=np.ones((self.num_envs, N_CARS, self.n_actions), dtype=bool),
            agent_features=features,  # [E, N, F]
        )

    def step(self, actions: np.ndarray) -> EnvStep:
        actions = self.validated_actions(actions)  # [E, N]
        active = ~self.done  # [E]
        accel = accelerations(actions, n_actions=self.n_actions)  # [E, N]
        pos, vel = move_cars(
            self.pos,
            self.vel,
            accel,
            reached=self.reached,
            dt=self.dt,
            speed_max=self.speed_max,
            target=self.target,
        )  # [E, N] each
        newly_reached = ~self.reached & (np.abs(pos - self.target) < REACH_TOLERANCE)  # [E, N]
        reached = self.reached | newly_reached  # [E, N]
        terminated = reached.all(axis=-1)  # [E]
        over_speed, crashed = speed_events(
            vel,
            self.rng.random(vel.shape),
            speed_limit=self.speed_limit,
            risk_delta=self.risk_delta,
        )  # [E, N] each
        reward = team_reward(
            pos,
            newly_reached=newly_reached,
            crashed=crashed,
            terminated=terminated,
            target=self.target,
            observation_range=self.observation_range,
            crash_reward=self.crash_reward,
        )  # [E]
        self._commit(active, pos=pos, vel=vel, reached=reached)
        self._count(active, crashed=crashed, newly_reached=newly_reached, over_speed=over_speed)
        terminated &= active
        truncated = active & ~terminated & (self.steps >= self.info.episode_limit)  # [E]
        self.done |= terminated | truncated
        return EnvStep(
            next_obs=self._observe(),
            reward=np.where(active, reward, 0.0).astype(np.float32),  # [E]
            terminated=terminated,
            truncated=truncated,
        )

    def _commit(
        self, active: np.ndarray, *, pos: np.ndarray, vel: np.ndarray, reached: np.ndarray
    ) -> None:
        """Write the new car states of the running copies (active [E]); frozen ones keep theirs."""
        running = active[:, None]  # [E, 1]
        self.pos = np.where(running, pos, self.pos)  # [E, N]
        self.vel = np.where(running, vel, self.vel)  # [E, N]
        self.reached = np.where(running, reached, self.reached)  # [E, N]
        self.steps += active

    def _count(
        self,
        active: np.ndarray,
        *,
        crashed: np.ndarray,
        newly_reached: np.ndarray,
        over_speed: np.ndarray,
    ) -> None:
        self.metrics["crashes"] += active * crashed.sum(axis=-1)
        self.metrics["cars_reached"] += active * newly_reached.sum(axis=-1)
        self.metrics["speed_violations"] += active * over_speed.sum(axis=-1)

    def episode_metrics(self) -> dict[str, np.ndarray]:
        """Per copy [E]: crashes, cars reached, speed violations (car-steps with |v| > limit)."""
        return {name: values.copy() for name, values in self.metrics.items()}
