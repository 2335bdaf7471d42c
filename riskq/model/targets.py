"""Target building for the learner (CONVENTIONS.md section 5), as pure functions over tensors.

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
    dtype = next_values.dtype
    discount = gamma * (1.0 - terminated.to(dtype))  # [B, T]
    valid_next = torch.cat([mask[:, 1:], mask.new_zeros(mask.shape[0], 1)], dim=1).to(dtype)
    # G_t = own_t + carry_t G_{t+1} with G'_{t+1} unrolled: where step t+1 is valid it is
    # G_{t+1} (weight lambda), else Z_{t+1}, which then weighs 1 like the (1 - lambda) term.
    carry = (discount * td_lambda * valid_next).view(*valid_next.shape, *extra)  # [B, T, 1...]
    own_weight = (discount * (1.0 - td_lambda * valid_next)).view(*discount.shape, *extra)
    own = reward.view(*reward.shape, *extra) + own_weight * next_values  # [B, T, ...]
    return linear_recurrence(own, carry)


def linear_recurrence(own: torch.Tensor, carry: torch.Tensor) -> torch.Tensor:
    """x_t = own_t + carry_t x_{t+1} along dim 1, with x_T = 0.

    own [B, T, ...], carry [B, T, ...] (broadcastable to own) -> x [B, T, ...], in ceil(log2 T)
    vectorised doubling steps (after step j, own_t sums the next 2^j terms and carry_t is the
    product of the next 2^j coefficients) instead of a Python loop over T.
    """
    shift, steps = 1, own.shape[1]
    while shift < steps:
        next_own = own.clone()  # [B, T, ...]
        next_own[:, :-shift].addcmul_(carry[:, :-shift], own[:, shift:])
        if 2 * shift < steps:  # the last step needs no products
            next_carry = carry.clone()
            next_carry[:, :-shift].mul_(carry[:, shift:])
            carry = next_carry
        own, shift = next_own, 2 * shift
    return own
