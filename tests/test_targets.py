"""Known answers for target building: TD(lambda), risk-greedy selection, gathering."""

import pytest
import torch

from riskq.model.targets import gather_actions, masked_argmax, td_lambda_targets


def _targets(reward, terminated, mask, next_values, gamma=0.5, td_lambda=0.0):
    return td_lambda_targets(
        reward=torch.tensor(reward),
        terminated=torch.tensor(terminated),
        mask=torch.tensor(mask),
        next_values=torch.tensor(next_values),
        gamma=gamma,
        td_lambda=td_lambda,
    )


def test_one_step_targets_when_lambda_is_zero():
    reward = [[1.0, 2.0, 3.0]]
    next_values = [[10.0, 20.0, 30.0]]
    got = _targets(reward, [[False, False, True]], [[True, True, True]], next_values)
    assert torch.allclose(got, torch.tensor([[1 + 0.5 * 10, 2 + 0.5 * 20, 3.0]]))


def test_lambda_one_terminated_episode_is_the_monte_carlo_return():
    reward = [[1.0, 2.0, 3.0]]
    got = _targets(reward, [[False, False, True]], [[True] * 3], [[7.0, 8.0, 9.0]], td_lambda=1.0)
    expected = [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0]
    assert torch.allclose(got, torch.tensor([expected]))


def test_truncated_episode_bootstraps_from_its_final_state():
    reward = [[1.0, 1.0]]
    got = _targets(reward, [[False, False]], [[True, True]], [[0.0, 100.0]], td_lambda=1.0)
    assert torch.allclose(got, torch.tensor([[1 + 0.5 * (1 + 0.5 * 100), 1 + 0.5 * 100]]))


def test_short_episode_in_a_padded_batch_does_not_see_padding():
    # episode 2 ends (terminated) after 2 steps; its padded step holds garbage values
    reward = [[1.0, 1.0, 1.0], [1.0, 1.0, 999.0]]
    terminated = [[False, False, False], [False, True, False]]
    mask = [[True, True, True], [True, True, False]]
    next_values = [[4.0, 4.0, 4.0], [4.0, 555.0, 555.0]]
    got = _targets(reward, terminated, mask, next_values, td_lambda=0.6)
    g1 = 1.0  # terminated: no bootstrap
    g0 = 1 + 0.5 * (0.4 * 4 + 0.6 * g1)
    assert torch.allclose(got[1, :2], torch.tensor([g0, g1]))


def test_trailing_quantile_dimension_is_handled_per_index():
    reward = torch.tensor([[1.0, 0.0]])
    next_values = torch.tensor([[[0.0, 2.0], [4.0, 8.0]]])  # [B, T, K]
    got = td_lambda_targets(
        reward=reward,
        terminated=torch.tensor([[False, False]]),
        mask=torch.tensor([[True, True]]),
        next_values=next_values,
        gamma=1.0,
        td_lambda=0.0,
    )
    assert torch.allclose(got, torch.tensor([[[1.0, 3.0], [4.0, 8.0]]]))


def test_masked_argmax_never_picks_unavailable_actions():
    values = torch.tensor([[5.0, 1.0, 3.0], [0.0, 0.0, -1.0]])
    avail = torch.tensor([[False, True, True], [False, False, True]])
    assert masked_argmax(values, avail).tolist() == [2, 2]


def test_masked_argmax_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="values"):
        masked_argmax(torch.zeros(2, 3), torch.ones(2, 4, dtype=torch.bool))


def test_gather_actions_picks_each_agents_quantiles():
    quantiles = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)  # [N, A, K]
    got = gather_actions(quantiles, torch.tensor([2, 0]))
    assert torch.equal(got, torch.stack([quantiles[0, 2], quantiles[1, 0]]))
