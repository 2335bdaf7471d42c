"""Quantile fractions and the quantile Huber loss (method.md sections 2 and 5).

RiskQ (Shen et al., NeurIPS 2023, arXiv:2311.01753) represents every return distribution by
K quantile values at the fixed midpoints tau_k = (2k+1)/(2K) (QR-DQN style) and fits them with
the quantile Huber loss, whose tau weight is indexed by the PREDICTED quantile k.
"""

from __future__ import annotations

import torch


def quantile_midpoints(
    n_quantiles: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """tau [K] with tau_k = (2k+1)/(2K), k = 0..K-1 (method.md notation)."""
    if n_quantiles < 1:
        raise ValueError(f"n_quantiles must be >= 1, got {n_quantiles}")
    k = torch.arange(n_quantiles, dtype=torch.float64, device=device)  # [K]
    return ((2 * k + 1) / (2 * n_quantiles)).to(dtype)  # [K]


def huber(x: torch.Tensor, kappa: float = 1.0) -> torch.Tensor:
    """Elementwise Huber: x^2/2 for |x| <= kappa, else kappa * (|x| - kappa/2); same shape as x.

    Not divided by kappa (method.md uses kappa = 1, where QR-DQN's /kappa convention agrees).
    """
    if not kappa > 0:
        raise ValueError(f"huber needs kappa > 0, got {kappa}")
    abs_x = x.abs()  # [...]
    return torch.where(abs_x <= kappa, 0.5 * x * x, kappa * (abs_x - 0.5 * kappa))  # [...]


def quantile_huber_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    tau: torch.Tensor,
    kappa: float = 1.0,
) -> torch.Tensor:
    """Quantile Huber loss of predicted quantiles against target samples (method.md section 5).

    loss = sum_k mean_j |tau_k - 1{target_j - pred_k < 0}| * Huber_kappa(target_j - pred_k).

    pred [..., K] are the quantile values at tau [K] (or [..., K], broadcastable to pred);
    target [..., J] are samples of the target distribution; leading dims of pred and target
    must broadcast. Returns [...] (the broadcast leading shape); reduce or mask it outside.
    Huber is not divided by kappa. Gradients flow into both inputs: detach the target first.
    """
    if pred.dim() == 0 or target.dim() == 0 or tau.dim() == 0:
        raise ValueError(
            f"quantile_huber_loss needs pred [..., K], target [..., J], tau [K]; got "
            f"{tuple(pred.shape)}, {tuple(target.shape)}, {tuple(tau.shape)}"
        )
    try:
        torch.broadcast_shapes(pred.shape[:-1], target.shape[:-1])
        torch.broadcast_shapes(pred.shape, tau.shape)
    except RuntimeError as error:
        raise ValueError(
            f"leading dims of pred {tuple(pred.shape)} and target {tuple(target.shape)} must "
            f"broadcast, and tau {tuple(tau.shape)} must broadcast to pred"
        ) from error
    if tau.shape[-1] != pred.shape[-1]:
        raise ValueError(f"tau {tuple(tau.shape)} must have K = {pred.shape[-1]} entries")
    td_error = target.unsqueeze(-2) - pred.unsqueeze(-1)  # [..., K, J]
    below = (td_error.detach() < 0).to(pred.dtype)  # [..., K, J]
    tau_weight = (tau.unsqueeze(-1) - below).abs()  # [..., K, J], tau indexed by predicted k
    return (tau_weight * huber(td_error, kappa)).mean(-1).sum(-1)  # [...]
