"""MACF (CONVENTIONS.md section 8.2): hand-computed trajectories of the reference dynamics."""

import inspect
from pathlib import Path

import numpy as np
import pytest
import yaml

import envs
from envs.macf import CarFollowing, move_cars

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "env" / "macf.yaml"
FULL_THROTTLE = 20  # a = -1 + (2/21) * 20 = 19/21
COAST = 10  # a = -1 + (2/21) * 10 = -1/21
A_MAX, A_COAST = 19 / 21, -1 / 21


def _no_crash_env(num_envs=1, **kwargs):
    """risk_delta 0 makes every reward deterministic (speed violations are still counted)."""
    env = CarFollowing(num_envs=num_envs, seed=0, risk_delta=0.0, **kwargs)
    env.reset()
    return env


def _place(env, pos, vel):
    """Put the cars of every copy at pos, vel [2] (hand-made starting states)."""
    env.pos[:] = pos
    env.vel[:] = vel


def _both(env, action):
    return np.full((env.num_envs, 2), action)


def test_registered_and_sized():
    env = envs.make_batched_env("macf", num_envs=3, seed=0)
    assert isinstance(env, CarFollowing)
    info = env.info
    assert (info.n_agents, info.n_actions, info.obs_dim, info.state_dim) == (2, 21, 4, 4)
    assert (info.agent_feature_dim, info.episode_limit) == (2, 200)
    obs = env.reset()
    assert obs.obs.shape == (3, 2, 4) and obs.state.shape == (3, 4)
    assert obs.agent_features.shape == (3, 2, 2) and obs.avail_actions.all()
    assert obs.obs.dtype == obs.state.dtype == np.float32


def test_full_throttle_until_the_speed_cap():
    env = _no_crash_env()
    for step in range(1, 20):  # free acceleration: p = a t^2 / 2, v = a t
        result = env.step(_both(env, FULL_THROTTLE))
        t = 0.1 * step
        np.testing.assert_allclose(env.pos[0], 0.5 * A_MAX * t**2, atol=1e-12)
        np.testing.assert_allclose(env.vel[0], A_MAX * t, atol=1e-12)
        # -1, distance of both cars, +1 for being within 0.3 of each other
        np.testing.assert_allclose(result.reward[0], -2 * abs(env.pos[0, 0] - 2.5), atol=1e-5)
    # Step 20 reaches the cap: t1 = round((1.8 - 19a/10) / a, 2) = round(0.0895, 2) = 0.09.
    v19, p19 = 1.9 * A_MAX, 0.5 * A_MAX * 1.9**2
    env.step(_both(env, FULL_THROTTLE))
    rounded = p19 + v19 * 0.09 + 0.5 * A_MAX * 0.09**2 + 1.8 * 0.01
    t1 = (1.8 - v19) / A_MAX
    unrounded = p19 + v19 * t1 + 0.5 * A_MAX * t1**2 + 1.8 * (0.1 - t1)
    np.testing.assert_allclose(env.pos[0], rounded, atol=1e-12)
    assert abs(rounded - unrounded) > 1e-8  # 1.3e-7: the rounded branch is what was tested
    np.testing.assert_array_equal(env.vel[0], [1.8, 1.8])
    env.step(_both(env, FULL_THROTTLE))  # at the cap: cruise at 1.8
    np.testing.assert_allclose(env.pos[0], rounded + 0.18, atol=1e-12)
    np.testing.assert_array_equal(env.vel[0], [1.8, 1.8])


def test_cap_only_applies_to_forward_speed():
    pos, vel = move_cars(
        np.zeros((1, 2)),
        np.array([[-1.8, 1.8]]),
        np.array([[-1.0, -1.0]]),
        reached=np.zeros((1, 2), dtype=bool),
        dt=0.1,
        speed_max=1.8,
        target=2.5,
    )
    np.testing.assert_allclose(vel, [[-1.9, 1.7]])
    np.testing.assert_allclose(pos, [[-0.185, 0.175]])


def test_reaching_the_target_pays_five_then_the_car_is_frozen():
    env = _no_crash_env()
    _place(env, pos=[2.45, 0.0], vel=[0.5, 0.0])
    result = env.step(_both(env, COAST))
    p0 = 2.45 + 0.05 + 0.5 * A_COAST * 0.01  # 2.49976: within 0.01 of the target
    p1 = 0.5 * A_COAST * 0.01
    np.testing.assert_allclose(env.pos[0], [p0, p1], atol=1e-12)
    np.testing.assert_allclose(result.reward[0], -1 - (2.5 - p0) - (2.5 - p1) + 5, atol=1e-5)
    assert not result.terminated[0] and env.reached[0].tolist() == [True, False]
    result = env.step(_both(env, FULL_THROTTLE))  # a reached car ignores its action
    np.testing.assert_array_equal([env.pos[0, 0], env.vel[0, 0]], [2.5, 0.0])
    p1 = p1 + A_COAST * 0.1 * 0.1 + 0.5 * A_MAX * 0.01
    np.testing.assert_allclose(result.reward[0], -1 - (2.5 - p1), atol=1e-5)
    assert env.episode_metrics()["cars_reached"][0] == 1


def test_both_reached_pays_ten_and_terminates():
    env = _no_crash_env()
    _place(env, pos=[2.45, 2.45], vel=[0.5, 0.5])
    result = env.step(_both(env, COAST))
    gap = -0.5 * A_COAST * 0.01  # 2.5 - p = 0.000238 for both cars
    # -1 - distances + 5 per car + 1 (close) + 10 (both reached)
    np.testing.assert_allclose(result.reward[0], -1 - 2 * gap + 10 + 1 + 10, atol=1e-5)
    assert result.terminated[0] and not result.truncated[0]
    assert env.episode_metrics()["cars_reached"][0] == 2


def test_time_limit_truncates_without_terminating():
    env = _no_crash_env()
    for step in range(1, 201):  # coasting backwards never reaches and never speeds (|v| < 1)
        result = env.step(_both(env, COAST))
        assert not result.terminated[0]
        assert result.truncated[0] == (step == 200)
    assert env.episode_metrics()["speed_violations"][0] == 0
    result = env.step(_both(env, COAST))  # frozen afterwards
    assert result.reward[0] == 0 and not result.truncated[0]


def test_observation_hides_cars_further_than_the_range():
    env = _no_crash_env(num_envs=2)
    env.pos[:] = [[0.0, 0.25], [0.0, 0.35]]
    env.vel[:] = [[0.1, 0.2], [0.1, 0.2]]
    obs = env._observe()
    np.testing.assert_allclose(obs.obs[0], [[0, 0.1, 0.25, 0.2], [0, 0.1, 0.25, 0.2]], atol=1e-7)
    np.testing.assert_allclose(obs.obs[1], [[0, 0.1, 0, 0], [0, 0, 0.35, 0.2]], atol=1e-7)
    np.testing.assert_allclose(obs.state[1], [0, 0.1, 0.35, 0.2], atol=1e-7)
    np.testing.assert_allclose(obs.agent_features[1], [[0, 0.1], [0.35, 0.2]], atol=1e-7)


@pytest.mark.parametrize(("speed", "action"), [(1.8, FULL_THROTTLE), (1.2, COAST)])
def test_crash_frequency_is_speed_excess_times_risk_delta(speed, action):
    copies = 20_000
    env = CarFollowing(num_envs=copies, seed=0)
    env.reset()
    _place(env, pos=[0.0, 1.0], vel=[speed, speed])
    result = env.step(np.full((copies, 2), action))
    new_speed = env.vel[0, 0]  # 1.8 (cap) or 1.2 - 1/210
    crashes = env.episode_metrics()["crashes"]  # [E]
    rate = crashes.mean() / 2
    expected = (new_speed - 1.0) * 0.4
    assert abs(rate - expected) <= 6 * np.sqrt(expected * (1 - expected) / (2 * copies))
    # the crash penalty is the only random part of the reward
    clean = -1 - np.abs(env.pos[0] - 2.5).sum()
    np.testing.assert_allclose(result.reward, clean - crashes, atol=1e-5)
    np.testing.assert_array_equal(env.episode_metrics()["speed_violations"], 2)


def test_reversing_fast_is_a_violation_but_never_crashes():
    env = CarFollowing(num_envs=1000, seed=0)
    env.reset()
    _place(env, pos=[0.0, 1.0], vel=[-1.5, -1.5])
    env.step(np.full((1000, 2), COAST))
    metrics = env.episode_metrics()
    np.testing.assert_array_equal(metrics["speed_violations"], 2)
    np.testing.assert_array_equal(metrics["crashes"], 0)


def _random_rewards(env, *, seed):
    actions = np.random.default_rng(99)
    env.reset(seed=seed)
    rewards = [env.step(actions.integers(0, 21, (env.num_envs, 2))).reward for _ in range(60)]
    return np.stack(rewards)  # [T, E]


def test_seeded_crashes_are_reproducible_and_seed_dependent():
    env = CarFollowing(num_envs=64)
    first = _random_rewards(env, seed=3)
    np.testing.assert_array_equal(_random_rewards(env, seed=3), first)
    np.testing.assert_array_equal(
        _random_rewards(CarFollowing(num_envs=64, seed=3), seed=None), first
    )
    assert not np.array_equal(_random_rewards(env, seed=4), first)


def test_finished_copies_are_frozen():
    env = _no_crash_env(num_envs=2)
    env.pos[0], env.vel[0] = 2.45, 0.5  # copy 0 terminates after one step, copy 1 runs on
    env.step(_both(env, COAST))
    before = env._observe(), env.episode_metrics()
    for _ in range(5):
        result = env.step(_both(env, FULL_THROTTLE))
        assert result.reward[0] == 0 and not (result.terminated[0] or result.truncated[0])
        assert result.reward[1] != 0
    np.testing.assert_array_equal(result.next_obs.state[0], before[0].state[0])
    assert env.episode_metrics()["cars_reached"][0] == before[1]["cars_reached"][0] == 2
    assert env.steps.tolist() == [1, 6]


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError, match="n_actions must be >= 2"):
        CarFollowing(n_actions=1)
    with pytest.raises(ValueError, match="dt must be > 0"):
        CarFollowing(dt=0.0)
    env = CarFollowing(num_envs=2)
    env.reset()
    with pytest.raises(ValueError, match=r"actions must have shape \[2, 2\]"):
        env.step(np.zeros((2, 3), dtype=int))
    with pytest.raises(ValueError, match=r"actions must lie in \[0, 20\]"):
        env.step(np.full((2, 2), 21))


def test_config_writes_out_the_constructor_defaults():
    args = yaml.safe_load(CONFIG.read_text())["env"]["args"]
    parameters = inspect.signature(CarFollowing.__init__).parameters
    defaults = {
        k: p.default for k, p in parameters.items() if k not in {"self", "num_envs", "seed"}
    }
    assert args == defaults
