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
    if tau.shape[-1] != pred.shape[-1]:
        raise ValueError(f"tau {tuple(tau.shape)} must have K = {pred.shape[-1]} entries")
    try:
        torch.broadcast_shapes(pred.shape[:-1], target.shape[:-1], tau.shape[:-1])
    except RuntimeError as error:
        raise ValueError(
            f"leading dims of pred {tuple(pred.shape)}, target {tuple(target.shape)} and "
            f"tau {tuple(tau.shape)} must broadcast"
        ) from error
    if not kappa > 0:
        raise ValueError(f"huber needs kappa > 0, got {kappa}")
    return _QuantileHuber.apply(pred, target, tau, float(kappa))  # [...]


def _pairwise_terms(pred, target, tau, kappa):
    """td [..., K, J] = target_j - pred_k and the tau weight |tau_k - 1{td < 0}| [..., K, J]."""
    td_error = target.unsqueeze(-2) - pred.unsqueeze(-1)  # [..., K, J]
    tau_k = tau.unsqueeze(-1)  # [..., K, 1], indexed by the PREDICTED quantile k
    weight = torch.where(td_error < 0, 1.0 - tau_k, tau_k)  # [..., K, J]
    return td_error, weight


class _QuantileHuber(torch.autograd.Function):
    """The loss with a hand-written backward: d Huber / d td = clamp(td, -kappa, kappa).

    Autograd through the elementwise formula stores and revisits a dozen [..., K, J] tensors;
    this keeps only the inputs and makes two passes, about 2x faster for K = J = 32.
    """

    @staticmethod
    def forward(ctx, pred, target, tau, kappa):
        td_error, weight = _pairwise_terms(pred, target, tau, kappa)  # [..., K, J]
        abs_error = td_error.abs()  # [..., K, J]
        clipped = abs_error.clamp(max=kappa)  # [..., K, J]
        elementwise = weight * clipped * (abs_error - 0.5 * clipped)  # Huber_kappa(td) weighted
        ctx.save_for_backward(pred, target, tau)
        ctx.kappa = kappa
        return elementwise.mean(-1).sum(-1)  # [...]

    @staticmethod
    def backward(ctx, grad_loss):
        pred, target, tau = ctx.saved_tensors
        td_error, weight = _pairwise_terms(pred, target, tau, ctx.kappa)  # [..., K, J]
        slope = weight * td_error.clamp(-ctx.kappa, ctx.kappa)  # d loss_kj / d td_kj
        slope = slope * grad_loss[..., None, None] / target.shape[-1]  # [..., K, J]
        grad_pred = -slope.sum(-1) if ctx.needs_input_grad[0] else None  # [..., K]
        grad_target = slope.sum(-2) if ctx.needs_input_grad[1] else None  # [..., J]
        if grad_pred is not None:
            grad_pred = grad_pred.sum_to_size(pred.shape)
        if grad_target is not None:
            grad_target = grad_target.sum_to_size(target.shape)
        return grad_pred, grad_target, None, None
