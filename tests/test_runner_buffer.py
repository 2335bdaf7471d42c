"""Collection and replay: epsilon-greedy on psi, a mock agent with a known greedy action,
the episode buffer's ring, truncation and state round trip."""

import numpy as np
import pytest
import torch

from envs import make_batched_env
from envs.base import BatchedEnv, EnvInfo, EnvObs, EnvStep
from riskq.model.buffer import EpisodeBatch, ReplayBuffer, episode_tensors
from riskq.model.risk import make_risk_measure
from riskq.run.runner import Runner, StreamingRunner, epsilon_greedy, linear_schedule

LADDER = {
    "n_agents": 2,
    "action_names": ["S", "M", "R"],
    "event_probs": [0.25, 0.75],
    "agent_payoffs": [[[0.0, 0.0], [-0.5, 1.0], [-6.0, 3.0]]] * 2,
}


class FixedQuantileAgent(torch.nn.Module):
    """Every agent's quantiles are a fixed [A, K] table, whatever it observes."""

    def __init__(self, table: torch.Tensor, n_agents: int) -> None:
        super().__init__()
        self.table, self.n_agents = table, n_agents

    def initial_hidden(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(batch_size, self.n_agents, 1)

    def step(self, inputs, hidden):
        batch = inputs.shape[0]
        return self.table.expand(batch, self.n_agents, *self.table.shape), hidden


def test_linear_schedule_endpoints():
    assert linear_schedule(0, start=1.0, finish=0.05, anneal_steps=100) == 1.0
    assert linear_schedule(50, start=1.0, finish=0.0, anneal_steps=100) == pytest.approx(0.5)
    assert linear_schedule(10_000, start=1.0, finish=0.05, anneal_steps=100) == pytest.approx(0.05)


def test_epsilon_greedy_never_picks_unavailable_actions():
    rng = np.random.default_rng(0)
    values = np.zeros((500, 2, 4))
    avail = np.zeros((500, 2, 4), dtype=bool)
    avail[..., [1, 3]] = True
    actions = epsilon_greedy(values, avail, 1.0, rng)
    assert set(np.unique(actions)) == {1, 3}
    greedy = epsilon_greedy(np.arange(4.0) * np.ones((500, 2, 4)), avail, 0.0, rng)
    assert (greedy == 3).all()


@pytest.mark.parametrize(("risk", "param", "expected"), [("neutral", None, 2), ("cvar", 0.25, 0)])
def test_runner_acts_risk_greedily_with_a_known_agent(risk, param, expected):
    # action 0: constant 0; action 1: constant -1; action 2: -10 w.p. 1/4, +10 w.p. 3/4
    table = torch.tensor([[0.0] * 4, [-1.0] * 4, [-10.0, 10.0, 10.0, 10.0]])  # [A, K]
    env = make_batched_env("matrix", num_envs=6, seed=0, **LADDER)
    runner = Runner(
        env=env,
        agent=FixedQuantileAgent(table, 2),
        risk_fn=make_risk_measure(risk, param),
        rng=np.random.default_rng(0),
        device=torch.device("cpu"),
    )
    rollout = runner.collect(epsilon=0.0)
    assert (rollout.batch.actions == expected).all()
    assert rollout.lengths.tolist() == [1] * 6 and rollout.batch.terminated.all()


def _batch(env, episodes: int, seed: int):
    agent_table = torch.zeros(3, 2)
    runner = Runner(
        env=env,
        agent=FixedQuantileAgent(agent_table, 2),
        risk_fn=make_risk_measure("neutral"),
        rng=np.random.default_rng(seed),
        device=torch.device("cpu"),
    )
    return runner.collect(epsilon=1.0).batch


def test_buffer_ring_overwrites_oldest_and_samples_distinct_episodes():
    env = make_batched_env("matrix", num_envs=4, seed=0, **LADDER)
    buffer = ReplayBuffer(capacity=6, info=env.info)
    first, second = _batch(env, 4, 0), _batch(env, 4, 1)
    buffer.add(first)
    buffer.add(second)
    assert buffer.size == 6 and buffer.cursor == 2
    assert torch.equal(buffer.storage["actions"][:2], second.actions[2:])  # wrapped around
    assert torch.equal(buffer.storage["actions"][2:4], first.actions[2:])
    sample = buffer.sample(6, np.random.default_rng(0))
    assert sample.batch_size == 6 and sample.max_steps == 1
    with pytest.raises(ValueError):
        buffer.sample(7, np.random.default_rng(0))


def test_buffer_state_dict_round_trip():
    env = make_batched_env("macn", num_envs=3, seed=0)
    buffer = ReplayBuffer(capacity=5, info=env.info)
    runner = Runner(
        env=env,
        agent=FixedQuantileAgent(torch.zeros(5, 2), 2),
        risk_fn=make_risk_measure("neutral"),
        rng=np.random.default_rng(0),
        device=torch.device("cpu"),
    )
    buffer.add(runner.collect(epsilon=1.0).batch)
    restored = ReplayBuffer(capacity=5, info=env.info)
    restored.load_state_dict(buffer.state_dict())
    a = buffer.sample(3, np.random.default_rng(4))
    b = restored.sample(3, np.random.default_rng(4))
    for name, value in a.tensors().items():
        assert torch.equal(value, b.tensors()[name]), name
    assert a.max_steps == int(buffer.lengths[:3].max())


class Countdown(BatchedEnv):
    """Each copy's episode lasts L steps, L drawn from 1..5 at its start; it observes the steps
    left (L, L-1, ..., 0), earns reward 1 per step and terminates at 0. ``started`` lists every
    L in the order the episodes began."""

    resets_copies = True

    def __init__(self, num_envs: int, seed: int) -> None:
        super().__init__(num_envs=num_envs, seed=seed)
        self.info = EnvInfo(2, 3, 1, 1, 0, episode_limit=5)
        self.left = np.zeros(num_envs, np.int64)
        self.started: list[int] = []

    def _obs(self) -> EnvObs:
        left = self.left.astype(np.float32)
        obs = np.repeat(left[:, None, None], 2, axis=1)  # [E, N, 1]
        return EnvObs(
            obs=obs, state=left[:, None], avail_actions=np.ones((self.num_envs, 2, 3), bool)
        )

    def reset_copies(self, copies):
        lengths = self.rng.integers(1, 6, size=self.num_envs)
        self.left[copies] = lengths[copies]
        self.started += lengths[copies].tolist()
        return self._obs()

    def reset(self, seed=None):
        self.reseed(seed)
        return self.reset_copies(np.ones(self.num_envs, bool))

    def step(self, actions):
        running = self.left > 0
        self.left = np.maximum(self.left - 1, 0)
        ended = running & (self.left == 0)
        return EnvStep(self._obs(), running.astype(np.float32), ended, np.zeros_like(ended))


def _random_batch(info: EnvInfo, episodes: int, width: int, seed: int) -> EpisodeBatch:
    """``episodes`` episodes recorded for ``width`` steps, every entry non-zero (as the
    padding a lock-step batch records after a copy's own end), episode i valid for
    max(width - i, 1) steps."""
    gen = torch.Generator().manual_seed(seed)
    fields = {
        name: (torch.rand(value.shape, generator=gen) + 0.5).to(value.dtype)
        for name, value in episode_tensors(info, episodes).items()
    }
    fields["mask"] = (
        torch.arange(info.episode_limit)[None]
        < torch.tensor([max(width - i, 1) for i in range(episodes)])[:, None]
    )
    return EpisodeBatch(**fields).truncate(width)


def test_buffer_state_dict_packs_written_entries_and_restores_every_entry():
    info = EnvInfo(n_agents=2, n_actions=3, obs_dim=4, state_dim=5, agent_feature_dim=0,
                   episode_limit=6)  # fmt: skip
    buffer = ReplayBuffer(capacity=7, info=info)
    for seed, width in enumerate([6, 2, 4, 3]):  # 12 episodes into 7 slots: the ring wraps
        buffer.add(_random_batch(info, 3, width, seed))
    # slots 0-2 hold batch 0, 3-5 batch 1; batch 2 overwrites 6, 0, 1 and batch 3 2, 3, 4
    assert buffer.widths.tolist() == [4, 4, 3, 3, 3, 2, 4]
    assert buffer.lengths.tolist() == [3, 2, 3, 2, 1, 1, 4]
    state = buffer.state_dict()
    assert state["packed"]["actions"].shape == (23, 2)  # sum of widths, not 7 x 6
    assert state["packed"]["obs"].shape == (30, 2, 4)  # one more observation per episode
    restored = ReplayBuffer(capacity=7, info=info)
    restored.load_state_dict(state)
    for name, value in buffer.storage.items():
        assert torch.equal(restored.storage[name], value), name
    assert np.array_equal(restored.widths, buffer.widths)
    assert (restored.cursor, restored.size) == (buffer.cursor, buffer.size) == (5, 7)
    # the unpacked layout of earlier releases (every field padded to the limit) still loads
    old = {
        "storage": {name: value.clone() for name, value in buffer.storage.items()},
        "lengths": buffer.lengths.copy(),
        "cursor": buffer.cursor,
        "size": buffer.size,
    }
    from_old = ReplayBuffer(capacity=7, info=info)
    from_old.load_state_dict(old)
    for name, value in buffer.storage.items():
        assert torch.equal(from_old.storage[name], value), name


def streaming_runner(env: BatchedEnv) -> StreamingRunner:
    return StreamingRunner(
        env=env,
        agent=FixedQuantileAgent(torch.zeros(3, 4), 2),
        risk_fn=make_risk_measure("neutral", None),
        rng=np.random.default_rng(0),
        device=torch.device("cpu"),
    )


def test_streaming_runner_returns_whole_episodes_and_carries_the_rest_over():
    env = Countdown(num_envs=4, seed=3)
    runner = streaming_runner(env)
    returned = []
    for call in range(5):
        rollout = runner.collect(epsilon=0.5, finish=call == 4)
        assert len(rollout.returns) >= 4 or call == 4  # at least E per call, bar the last
        batch = rollout.batch
        for i, length in enumerate(rollout.lengths.tolist()):
            left = batch.obs[i, : length + 1, 0, 0].tolist()
            assert left == list(range(length, -1, -1))  # L, L-1, ..., 0: one whole episode
            assert batch.mask[i].tolist() == [True] * length + [False] * (batch.max_steps - length)
            assert batch.terminated[i].nonzero().flatten().tolist() == [length - 1]
            assert rollout.returns[i] == length
        assert rollout.steps == sum(rollout.lengths.tolist())
        returned += rollout.lengths.tolist()
    assert not runner.in_flight
    assert sorted(returned) == sorted(env.started) and len(returned) > 20  # nothing lost


def test_streaming_needs_an_env_that_restarts_single_copies():
    env = make_batched_env("matrix", num_envs=2, seed=0, **LADDER)
    with pytest.raises(
        ValueError, match=r"cannot restart single copies .* valid choices for it: lockstep"
    ):
        streaming_runner(env)
