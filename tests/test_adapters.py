"""Adapters of external suites: every shipped config against a directly-stepped twin env,
plus scripted fake envs with known answers for the conventions (padding, masks, finished
agents, time limits) and the errors for missing packages and unsupported spaces."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import ClassVar

import gymnasium
import numpy as np
import pytest
import yaml
from gymnasium import spaces
from pettingzoo import ParallelEnv

import envs

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "env"
ADAPTER_CONFIGS = [
    "simple_spread",
    "simple_reference",
    "simple_speaker_listener",
    "pursuit",
    "lbforaging",
    "rware",
]
E = 3  # env copies
# copies that end by a real termination in test_config_matches_twin_env (seed 7, policy 1):
# lbforaging copy 1 eats its food before the time limit; every other episode runs out of time
TERMINATED = {"lbforaging": [False, True, False]}
TEAM_REWARD = {"sum": np.sum, "mean": np.mean}  # of the twin's per-agent rewards


def load_env(label: str) -> dict:
    return yaml.safe_load((CONFIGS / f"{label}.yaml").read_text())["env"]


def make(label: str, *, seed: int = 0, num_envs: int = E, **overrides) -> envs.BatchedEnv:
    cfg = load_env(label)
    args = {**cfg["args"], **overrides}
    return envs.make_batched_env(cfg["name"], num_envs=num_envs, seed=seed, **args)


def random_actions(avail: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random available action per agent: [E, N]."""
    scores = rng.random(avail.shape) * avail  # [E, N, A]
    return scores.argmax(-1)  # [E, N]


def rollout(env: envs.BatchedEnv, *, policy_seed: int = 0, reset_seed: int | None = None):
    """One episode of random valid actions in every copy: list of (actions, EnvStep)."""
    rng = np.random.default_rng(policy_seed)
    first = env.reset(seed=reset_seed)
    obs, steps, done = first, [], np.zeros(env.num_envs, dtype=bool)
    while not done.all():
        actions = random_actions(obs.avail_actions, rng)
        result = env.step(actions)
        steps.append((actions, result))
        done |= result.terminated | result.truncated
        obs = result.next_obs
    return first, steps


def copy_seeds(seed: int, count: int) -> list[int]:
    """The per-copy reset seeds the adapters draw from default_rng(seed) (their contract)."""
    return [int(s) for s in np.random.default_rng(seed).integers(2**31 - 1, size=count)]


class PettingZooTwin:
    """The raw parallel env of one copy, stepped with the adapter's actions."""

    def __init__(self, args: dict, seed: int) -> None:
        self.env = importlib.import_module(args["id"]).parallel_env(**args["kwargs"])
        self.agents = list(self.env.possible_agents)
        self.obs, _ = self.env.reset(seed=seed)

    def step(self, actions: np.ndarray) -> tuple[list[float], bool, bool]:
        joint = {a: int(actions[n]) for n, a in enumerate(self.agents) if a in self.env.agents}
        self.obs, rewards, terms, _, _ = self.env.step(joint)
        over = not self.env.agents
        return list(rewards.values()), over and any(terms.values()), over


class GymTwin:
    """The raw gymnasium env of one copy, stepped with the adapter's actions."""

    def __init__(self, args: dict, seed: int) -> None:
        importlib.import_module(args["module"])
        self.env = gymnasium.make(args["id"], disable_env_checker=True, **args["kwargs"])
        self.obs, _ = self.env.reset(seed=seed)

    def step(self, actions: np.ndarray) -> tuple[list[float], bool, bool]:
        self.obs, rewards, done, truncated, _ = self.env.step(tuple(int(a) for a in actions))
        return list(rewards), bool(done), bool(done or truncated)


TWINS = {"pettingzoo": PettingZooTwin, "gym_ma": GymTwin}


@pytest.mark.parametrize("label", ADAPTER_CONFIGS)
def test_config_matches_twin_env(label):
    cfg = load_env(label)
    env = make(label, seed=7)
    info = env.info
    first, steps = rollout(env, policy_seed=1)
    twins = [TWINS[cfg["name"]](cfg["args"], s) for s in copy_seeds(7, E)]
    reduce = TEAM_REWARD[cfg["args"]["reward"]]
    assert first.obs.shape == (E, info.n_agents, info.obs_dim)
    assert first.state.shape == (E, info.state_dim)
    assert first.avail_actions.shape == (E, info.n_agents, info.n_actions)
    assert info.agent_feature_dim == 0
    assert len(steps) <= info.episode_limit
    ended, terminated = np.zeros(E, dtype=bool), np.zeros(E, dtype=bool)
    for t, (actions, result) in enumerate(steps, start=1):
        assert result.next_obs.obs.shape == (E, info.n_agents, info.obs_dim)
        assert result.next_obs.state.shape == (E, info.state_dim)
        assert result.reward.shape == result.terminated.shape == result.truncated.shape == (E,)
        for e in np.flatnonzero(~ended):
            rewards, twin_terminated, twin_over = twins[e].step(actions[e])
            assert result.reward[e] == pytest.approx(reduce(np.asarray(rewards)), abs=1e-5)
            over = bool(result.terminated[e] or result.truncated[e])
            assert over == (twin_over or t == info.episode_limit)
            if cfg["name"] == "pettingzoo":
                assert result.terminated[e] == twin_terminated
            else:  # the env's own step limit arrives as a truncation
                assert result.truncated[e] == (over and t == info.episode_limit)
                assert result.terminated[e] == (over and t < info.episode_limit)
        frozen = ended.copy()
        assert (result.reward[frozen] == 0).all()
        assert not (result.terminated | result.truncated)[frozen].any()
        ended |= result.terminated | result.truncated
        terminated |= result.terminated
    assert ended.all()
    assert terminated.tolist() == TERMINATED.get(label, [False] * E)


@pytest.mark.parametrize("label", ["simple_speaker_listener", "lbforaging"])
def test_observations_are_the_twin_observations_padded(label):
    cfg = load_env(label)
    env = make(label, seed=3)
    first = env.reset()
    for e, seed in enumerate(copy_seeds(3, E)):
        twin = TWINS[cfg["name"]](cfg["args"], seed)
        raw = list(twin.obs.values()) if isinstance(twin.obs, dict) else list(twin.obs)
        for n, obs in enumerate(raw):
            obs = np.asarray(obs, dtype=np.float32).reshape(-1)  # [O_n]
            np.testing.assert_array_equal(first.obs[e, n, : obs.size], obs)
            assert not first.obs[e, n, obs.size :].any()


def test_heterogeneous_actions_are_padded_unavailable():
    env = make("simple_speaker_listener")
    avail = env.reset().avail_actions  # [E, N=2, A=5]: speaker 3 words, listener 5 moves
    np.testing.assert_array_equal(avail[:, 0], [[True] * 3 + [False] * 2] * E)
    assert avail[:, 1].all()
    with pytest.raises(ValueError, match="unavailable"):
        env.step(np.array([[3, 0]] * E))


@pytest.mark.parametrize("label", ["simple_spread", "rware"])
def test_same_seed_same_trajectory(label):
    def trajectory(env, reset_seed=None):
        first, steps = rollout(env, policy_seed=5, reset_seed=reset_seed)
        arrays = [first.obs, first.state]
        for _, result in steps:
            arrays += [result.next_obs.obs, result.reward, result.terminated, result.truncated]
        return arrays

    seeded = trajectory(make(label, seed=11))
    reseeded = trajectory(make(label, seed=99), reset_seed=11)
    other = trajectory(make(label, seed=12))
    for a, b in zip(seeded, reseeded, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(seeded[0], other[0])


def test_rng_state_restores_the_next_episode():
    env = make("simple_spread", seed=4)
    env.reset()
    saved = env.rng_state()
    expected = env.reset().obs
    env.reset()
    env.set_rng_state(saved)
    np.testing.assert_array_equal(env.reset().obs, expected)


# ---------------------------------------------------------------- scripted fake envs


class FakeParallelEnv(ParallelEnv):
    """Agent "a" (obs 2, 3 actions, mask in infos) stops after ``a_steps`` (terminated);
    agent "b" (obs 4 in a Dict with its mask, 2 actions) ends after ``b_steps`` by ``b_end``.
    Rewards per step: a 1, b 10. No global state."""

    metadata: ClassVar[dict] = {"name": "fake_v0"}

    def __init__(self, a_steps: int = 2, b_steps: int = 4, b_end: str = "truncate") -> None:
        self.possible_agents = ["a", "b"]
        self.a_steps, self.b_steps, self.b_end = a_steps, b_steps, b_end
        self._spaces = {
            "a": spaces.Box(-1, 1, (2,)),
            "b": spaces.Dict(
                {"observation": spaces.Box(-9, 9, (4,)), "action_mask": spaces.MultiBinary(2)}
            ),
        }

    def observation_space(self, agent):
        return self._spaces[agent]

    def action_space(self, agent):
        return spaces.Discrete(3 if agent == "a" else 2)

    def _obs(self):
        t = float(self.t)
        table = {"a": np.full(2, t), "b": {"observation": np.full(4, -t), "action_mask": [0, 1]}}
        return {agent: table[agent] for agent in self.agents}

    def reset(self, seed=None, options=None):
        self.t, self.agents = 0, list(self.possible_agents)
        return self._obs(), {"a": {"action_mask": np.array([1, 0, 1])}, "b": {}}

    def step(self, actions):
        self.t += 1
        rewards = {agent: {"a": 1.0, "b": 10.0}[agent] for agent in actions}
        terms = {agent: False for agent in actions}
        truncs = dict(terms)
        terms["a"] = "a" in actions and self.t >= self.a_steps
        if "b" in actions and self.t >= self.b_steps:
            (terms if self.b_end == "terminate" else truncs)["b"] = True
        observations = self._obs()
        infos = {
            agent: {"action_mask": np.array([1, 0, 1])} if agent == "a" else {} for agent in actions
        }
        self.agents = [a for a in self.agents if not (terms[a] or truncs[a])]
        return observations, rewards, terms, truncs, infos


@pytest.fixture
def fake_suite(monkeypatch):
    module = types.ModuleType("fake_suite_v0")
    module.parallel_env = FakeParallelEnv
    monkeypatch.setitem(sys.modules, "fake_suite_v0", module)
    return "fake_suite_v0"


def make_fake(fake_suite, **kwargs):
    return envs.make_batched_env(
        "pettingzoo", num_envs=2, seed=0, id=fake_suite, kwargs=kwargs, episode_limit=6
    )


@pytest.mark.parametrize(("b_end", "terminated"), [("truncate", False), ("terminate", True)])
def test_finished_agents_are_zeroed_and_noop(fake_suite, b_end, terminated):
    env = make_fake(fake_suite, b_end=b_end)
    assert (env.info.n_agents, env.info.n_actions, env.info.obs_dim) == (2, 3, 4)
    assert env.info.state_dim == 2 * 4  # no env.state(): the padded observations
    first = env.reset()
    np.testing.assert_array_equal(first.avail_actions[0], [[1, 0, 1], [0, 1, 0]])
    rewards, flags = [], []
    for t in range(5):
        result = env.step(np.array([[2 if t < 2 else 0, 1], [0, 1]]))  # "a" no-op once done
        rewards.append(result.reward.tolist())
        flags.append((result.terminated.tolist(), result.truncated.tolist()))
        if len(rewards) == 2:  # "a" terminated, "b" goes on
            np.testing.assert_array_equal(result.next_obs.obs[:, 0], 0.0)
            np.testing.assert_array_equal(result.next_obs.avail_actions[:, 0], [[1, 0, 0]] * 2)
            np.testing.assert_array_equal(result.next_obs.obs[:, 1], [[-2.0] * 4] * 2)
            np.testing.assert_array_equal(result.next_obs.state[:, :4], 0.0)
    assert rewards == [[11, 11], [11, 11], [10, 10], [10, 10], [0, 0]]
    assert flags[3] == ([terminated] * 2, [not terminated] * 2)
    running = ([False] * 2, [False] * 2)
    assert flags[:3] == [running] * 3 and flags[4] == running  # then frozen
    np.testing.assert_array_equal(result.next_obs.obs[:, 1], [[-4.0] * 4] * 2)  # last obs kept


def test_episode_limit_truncates_the_fake_env(fake_suite):
    env = make_fake(fake_suite, a_steps=9, b_steps=9)
    env.reset()
    ends = [env.step(np.array([[0, 1], [0, 1]])) for _ in range(6)]
    assert [r.truncated.all() for r in ends] == [False] * 5 + [True]
    assert not any(r.terminated.any() for r in ends)
    assert env.info.episode_limit == 6


def test_pettingzoo_episode_limit_rules(fake_suite):
    with pytest.raises(ValueError, match="needs episode_limit"):
        envs.make_batched_env("pettingzoo", id=fake_suite)
    with pytest.raises(ValueError, match="max_cycles 25"):
        make("simple_spread", episode_limit=30)


class Countdown(gymnasium.Env):
    """Tuple env: agent 0 (obs 1, 2 actions), agent 1 (obs 3, 3 actions); rewards [1, 2];
    done at ``end_step`` (a real end) or at its own limit ``max_steps`` (as done, like rware)."""

    def __init__(self, end_step: int | None = None, max_steps: int = 5) -> None:
        self.end_step, self.max_steps = end_step, max_steps
        self.observation_space = spaces.Tuple((spaces.Box(0, 9, (1,)), spaces.Box(0, 9, (3,))))
        self.action_space = spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3)))

    def _obs(self):
        return (np.full(1, self.t, np.float32), np.full(3, self.t + 0.5, np.float32))

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, actions):
        self.t += 1
        done = self.t == self.end_step or self.t >= self.max_steps
        return self._obs(), [1.0, 2.0], done, False, {}


COUNTDOWN = "riskq-test/Countdown-v0"
if COUNTDOWN not in gymnasium.registry:
    gymnasium.register(id=COUNTDOWN, entry_point=Countdown)


@pytest.mark.parametrize(
    ("kwargs", "episode_limit", "limit", "length", "terminated"),
    [
        ({"end_step": 3}, None, 5, 3, True),  # a real end stays terminated
        ({}, None, 5, 5, False),  # the env's own limit (reported done) becomes truncated
        ({}, 4, 4, 4, False),  # a shorter explicit limit truncates
        ({"max_episode_steps": 3}, None, 3, 3, False),  # a TimeLimit wrapper truncates
        ({"end_step": 3, "max_episode_steps": 3}, None, 3, 3, True),  # real end on its last step
        ({"max_steps": 9, "max_episode_steps": 8}, 12, 8, 8, False),  # smallest limit wins
    ],
)
def test_gym_time_limit_is_truncation(kwargs, episode_limit, limit, length, terminated):
    env = envs.make_batched_env(
        "gym_ma", num_envs=2, id=COUNTDOWN, module="gymnasium", kwargs=kwargs,
        reward="mean", episode_limit=episode_limit,
    )  # fmt: skip
    assert env.info.episode_limit == limit
    first, steps = rollout(env)
    assert (env.info.n_actions, env.info.obs_dim, env.info.state_dim) == (3, 3, 6)
    np.testing.assert_array_equal(first.avail_actions[0], [[1, 1, 0], [1, 1, 1]])
    np.testing.assert_array_equal(first.obs[0], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert len(steps) == length
    assert [r.reward.tolist() for _, r in steps] == [[1.5, 1.5]] * length
    last = steps[-1][1]
    assert last.terminated.tolist() == [terminated] * 2
    assert last.truncated.tolist() == [not terminated] * 2
    assert not any(r.terminated.any() or r.truncated.any() for _, r in steps[:-1])


# ---------------------------------------------------------------- errors


def block_imports(monkeypatch, prefix: str, missing: str) -> None:
    """Make importlib.import_module fail for modules under ``prefix`` as if ``missing`` were."""
    real = importlib.import_module

    def fake(name, package=None):
        if name == prefix or name.startswith(prefix + "."):
            raise ModuleNotFoundError(f"No module named '{missing}'", name=missing)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", fake)


@pytest.mark.parametrize(
    ("label", "prefix", "missing", "package", "extra"),
    [
        ("simple_spread", "mpe2", "mpe2", "mpe2", "mpe"),
        ("pursuit", "pettingzoo.sisl", "pymunk", "pettingzoo[sisl]", "sisl"),
        ("lbforaging", "lbforaging", "lbforaging", "lbforaging", "lbforaging"),
        ("rware", "rware", "rware", "rware", "rware"),
    ],
)
def test_missing_package_names_the_extra(monkeypatch, label, prefix, missing, package, extra):
    cfg = load_env(label)
    block_imports(monkeypatch, prefix, missing)
    with pytest.raises(ImportError) as error:
        make(label)
    expected = (
        f"env '{cfg['name']}' id '{cfg['args']['id']}' needs the optional package "
        f"'{package}': pip install -e '.[{extra}]'"
    )
    assert str(error.value) == expected


@pytest.mark.parametrize(
    ("label", "overrides", "match"),
    [
        ("simple_spread", {"kwargs": {"continuous_actions": True, "max_cycles": 25}}, "Discrete"),
        ("rware", {"kwargs": {"max_steps": 100, "msg_bits": 1}}, "Discrete"),
        ("simple_spread", {"reward": "max"}, "unknown reward mode 'max'; valid choices: mean, sum"),
        ("simple_spread", {"id": "mpe2.simple_spred_v3"}, "mpe2.simple_spread_v3"),
    ],
)
def test_invalid_settings_are_refused(label, overrides, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(")):
        make(label, **overrides)


@pytest.mark.parametrize("label", ["simple_spread", "lbforaging"])
def test_parallel_env_passes_pettingzoo_api_test(label):
    pytest.importorskip("envs.parallel")
    from pettingzoo.test import parallel_api_test

    cfg = load_env(label)
    parallel_api_test(envs.make_parallel_env(cfg["name"], seed=0, **cfg["args"]), num_cycles=30)
