"""Per-agent recurrent quantile network (CONVENTIONS.md section 3)."""

import pytest
import torch

from riskq.model.networks import RecurrentQuantileAgent, agent_input_dim, build_agent_inputs

B, T, N, A, K, OBS, H = 3, 5, 2, 4, 6, 7, 16
INPUT_DIM = agent_input_dim(obs_dim=OBS, n_actions=A, n_agents=N)


def make_agent(*, shared: bool = True, seed: int = 0) -> RecurrentQuantileAgent:
    torch.manual_seed(seed)
    return RecurrentQuantileAgent(
        input_dim=INPUT_DIM, n_agents=N, n_actions=A, n_quantiles=K, hidden_dim=H, shared=shared
    )


def random_inputs(seed: int = 1, batch: int = B, steps: int = T) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, steps, N, INPUT_DIM, generator=generator)  # [B, T, N, I]


def test_agent_inputs_append_last_action_and_agent_id():
    obs = torch.arange(2 * N * OBS, dtype=torch.float32).view(2, N, OBS)  # [2, N, OBS]
    last = torch.nn.functional.one_hot(torch.tensor([[1, 3], [0, 2]]), A)  # [2, N, A] int64
    inputs = build_agent_inputs(obs, last)
    assert inputs.shape == (2, N, INPUT_DIM) == (2, N, OBS + A + N)
    assert inputs.dtype == obs.dtype
    torch.testing.assert_close(inputs[..., :OBS], obs)
    torch.testing.assert_close(inputs[..., OBS : OBS + A], last.float())
    expected_ids = torch.eye(N).expand(2, N, N)
    torch.testing.assert_close(inputs[..., OBS + A :], expected_ids)


def test_agent_inputs_any_leading_rank_and_shape_error():
    inputs = build_agent_inputs(torch.zeros(2, 3, N, OBS), torch.zeros(2, 3, N, A))
    assert inputs.shape == (2, 3, N, INPUT_DIM)
    with pytest.raises(ValueError, match=r"\(2, 3, 2, 7\).*\(2, 2, 4\)"):
        build_agent_inputs(torch.zeros(2, 3, N, OBS), torch.zeros(2, N, A))


@pytest.mark.parametrize("shared", [True, False])
def test_shapes_and_sorted_quantiles(shared):
    agent = make_agent(shared=shared)
    quantiles = agent(random_inputs())
    assert quantiles.shape == (B, T, N, A, K)
    assert (quantiles.diff(dim=-1) >= 0).all()
    hidden = agent.initial_hidden(B)
    assert hidden.shape == (B, N, H) and (hidden == 0).all()
    step_quantiles, next_hidden = agent.step(random_inputs()[:, 0], hidden)
    assert step_quantiles.shape == (B, N, A, K) and next_hidden.shape == (B, N, H)
    assert (step_quantiles.diff(dim=-1) >= 0).all()
    assert not torch.equal(next_hidden, hidden)


@pytest.mark.parametrize("shared", [True, False])
def test_step_mode_unrolled_equals_sequence_mode(shared):
    agent = make_agent(shared=shared)
    inputs = random_inputs()
    sequence = agent(inputs)  # [B, T, N, A, K]
    hidden = agent.initial_hidden(B)
    for t in range(T):
        quantiles, hidden = agent.step(inputs[:, t], hidden)
        torch.testing.assert_close(quantiles, sequence[:, t], atol=1e-5, rtol=0)


def test_hidden_state_resets_at_episode_start():
    agent = make_agent()
    episode = random_inputs(seed=2, batch=1)
    # Sequence mode: an episode's outputs do not depend on other episodes of the batch.
    alone = agent(episode)
    together = agent(torch.cat([random_inputs(seed=3, batch=2), episode]))
    torch.testing.assert_close(together[2:], alone, atol=1e-6, rtol=0)
    # Step mode: after a previous episode, initial_hidden gives the same first output.
    hidden = agent.initial_hidden(1)
    for t in range(T):
        _, hidden = agent.step(random_inputs(seed=4, batch=1)[:, t], hidden)
    carried, _ = agent.step(episode[:, 0], hidden)
    fresh, _ = agent.step(episode[:, 0], agent.initial_hidden(1))
    torch.testing.assert_close(fresh, alone[:, 0], atol=1e-6, rtol=0)
    assert not torch.allclose(carried, fresh, atol=1e-4)  # the hidden state does matter


def test_outputs_are_causal_in_time():
    agent = make_agent()
    inputs = random_inputs()
    changed = inputs.clone()
    changed[:, 3:] += 1.0
    before, after = agent(inputs), agent(changed)
    torch.testing.assert_close(before[:, :3], after[:, :3])
    assert not torch.allclose(before[:, 3:], after[:, 3:])


def test_shared_false_gives_each_agent_its_own_parameters():
    same_per_agent = random_inputs()[:, :, :1].expand(B, T, N, INPUT_DIM)  # [B, T, N, I]
    shared_out = make_agent(shared=True)(same_per_agent)
    torch.testing.assert_close(shared_out[:, :, 0], shared_out[:, :, 1])
    separate = make_agent(shared=False)
    separate_out = separate(same_per_agent)
    assert not torch.allclose(separate_out[:, :, 0], separate_out[:, :, 1])
    assert len(separate.cores) == N
    first, second = (core.encoder.weight for core in separate.cores)
    assert not torch.equal(first, second)
    n_shared = sum(p.numel() for p in make_agent(shared=True).parameters())
    assert sum(p.numel() for p in separate.parameters()) == N * n_shared


@pytest.mark.parametrize("shared", [True, False])
def test_gradient_reaches_every_parameter(shared):
    agent = make_agent(shared=shared)
    agent(random_inputs()).square().mean().backward()
    for name, parameter in agent.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_bad_input_shapes_raise_with_both_shapes():
    agent = make_agent()
    with pytest.raises(ValueError, match=r"\(3, 5, 2, 7\).*I=13"):
        agent(torch.zeros(B, T, N, INPUT_DIM - 6))
    with pytest.raises(ValueError, match=r"\(3, 2, 8\).*\(3, 2, 16\)"):
        agent.step(torch.zeros(B, N, INPUT_DIM), torch.zeros(B, N, 8))


def test_initial_hidden_follows_parameter_dtype():
    agent = make_agent().double()
    assert agent.initial_hidden(2).dtype == torch.float64
    assert agent(random_inputs().double()).dtype == torch.float64
