"""Target building for the learner (method.md section 5), as pure functions over tensors.

Shapes: B batch (episodes), T time steps, N agents, A actions, K quantiles. Trailing ``...``
dimensions (quantiles, or agents and quantiles for independent learners) pass through.
"""

from __future__ import annotations

import torch


def masked_argmax(values: torch.Tensor, avail_actions: torch.Tensor) -> torch.Tensor:
    """Index of the best available action.

    values [..., A], avail_actions [..., A] bool -> [...] long. Rows with no available action
    (padding) return action 0.
    """
    if values.shape != avail_actions.shape:
        raise ValueError(f"values {tuple(values.shape)} vs avail {tuple(avail_actions.shape)}")
    masked = values.masked_fill(~avail_actions, float("-inf"))  # [..., A]
    return masked.argmax(dim=-1)  # [...]


def gather_actions(agent_quantiles: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Quantiles of the chosen actions.

    agent_quantiles [..., N, A, K], actions [..., N] long -> [..., N, K].
    """
    index = actions[..., None, None].expand(*actions.shape, 1, agent_quantiles.shape[-1])
    return agent_quantiles.gather(-2, index).squeeze(-2)  # [..., N, K]


def td_lambda_targets(
    *,
    reward: torch.Tensor,
    terminated: torch.Tensor,
    mask: torch.Tensor,
    next_values: torch.Tensor,
    gamma: float,
    td_lambda: float,
) -> torch.Tensor:
    """TD(lambda) targets applied per trailing index (per quantile j) across time.

    G_t = r_t + gamma (1 - term_t) [(1 - lambda) Z_{t+1} + lambda G'_{t+1}], where
    G'_{t+1} = G_{t+1} inside the episode and Z_{t+1} past its last valid step, so a truncated
    episode bootstraps from the value of its final state and a terminated one does not.

    reward, terminated, mask: [B, T]; next_values [B, T, ...] holds Z(s_{t+1}) at index t.
    Returns [B, T, ...]; entries at invalid steps (mask 0) are meaningless and must be masked.
    """
    if reward.shape != next_values.shape[:2]:
        raise ValueError(f"reward {tuple(reward.shape)} vs next_values {tuple(next_values.shape)}")
    extra = (1,) * (next_values.dim() - 2)
    reward = reward.view(*reward.shape, *extra)  # [B, T, 1...]
    discount = gamma * (1.0 - terminated.to(next_values.dtype)).view(*terminated.shape, *extra)
    valid_next = torch.cat([mask[:, 1:], mask.new_zeros(mask.shape[0], 1)], dim=1).bool()
    valid_next = valid_next.view(*valid_next.shape, *extra)  # [B, T, 1...]
    targets = torch.empty_like(next_values)  # [B, T, ...]
    following = next_values[:, -1]  # G'_{T}: value of the state after the last step
    for t in range(reward.shape[1] - 1, -1, -1):
        blended = (1.0 - td_lambda) * next_values[:, t] + td_lambda * following
        targets[:, t] = reward[:, t] + discount[:, t] * blended
        if t > 0:
            following = torch.where(valid_next[:, t - 1], targets[:, t], next_values[:, t - 1])
    return targets
