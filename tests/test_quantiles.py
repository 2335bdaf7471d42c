"""Quantile midpoints and the quantile Huber loss (CONVENTIONS.md sections 2 and 5)."""

import pytest
import torch

from riskq.model.quantiles import huber, quantile_huber_loss, quantile_midpoints

K = 32
# Bimodal target 0.3 N(-2, 1) + 0.7 N(2, 1): (weights, means, stds). The modes are 4 sd
# apart; a deeper gap would leave a midpoint quantile at near-zero density, where any
# estimate from samples is noisy (its error scales as 1 / density).
MIXTURE = ((0.3, 0.7), (-2.0, 2.0), (1.0, 1.0))


def test_midpoints():
    torch.testing.assert_close(quantile_midpoints(4), torch.tensor([1, 3, 5, 7]) / 8)
    tau = quantile_midpoints(32, dtype=torch.float64, device="cpu")  # [K]
    assert tau.dtype == torch.float64 and tau[0].item() == 1 / 64 and tau[-1].item() == 63 / 64
    with pytest.raises(ValueError, match="n_quantiles"):
        quantile_midpoints(0)


def test_huber_values():
    x = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])
    torch.testing.assert_close(huber(x), torch.tensor([2.5, 0.5, 0.125, 0, 0.125, 0.5, 2.5]))
    torch.testing.assert_close(
        huber(x, kappa=2.0), torch.tensor([4.0, 0.5, 0.125, 0, 0.125, 0.5, 4])
    )
    with pytest.raises(ValueError, match="kappa > 0"):
        huber(x, kappa=0.0)


def test_loss_hand_computed():
    """tau weights the PREDICTED quantile: k=0 (tau .25) and k=1 (tau .75) differ."""
    pred = torch.tensor([0.0, 1.0], requires_grad=True)  # [K]
    target = torch.tensor([3.0, 0.5])  # [J]
    loss = quantile_huber_loss(pred, target, torch.tensor([0.25, 0.75]))
    # k=0: (.25 * 2.5 + .25 * .125) / 2;  k=1: (.75 * 1.5 + .25 * .125) / 2
    assert loss.item() == pytest.approx(0.328125 + 0.578125)
    loss.backward()
    # d/dpred_k = -mean_j w_kj * clip(u_kj): k=0: -(.25 + .25 * .5) / 2; k=1: -(.75 - .25 * .5) / 2
    torch.testing.assert_close(pred.grad, torch.tensor([-0.1875, -0.3125]))


def _loop_loss(pred, target, tau, kappa):
    """The formula of CONVENTIONS.md section 5 written with scalar loops."""
    total = 0.0
    for k in range(len(pred)):
        terms = []
        for y in target:
            u = float(y - pred[k])
            h = 0.5 * u * u if abs(u) <= kappa else kappa * (abs(u) - 0.5 * kappa)
            terms.append(abs(float(tau[k]) - (u < 0)) * h)
        total += sum(terms) / len(terms)
    return total


@pytest.mark.parametrize("kappa", [1.0, 0.3])
def test_loss_matches_the_formula_with_broadcast_leading_dims(kappa):
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 2, 5, generator=gen, dtype=torch.float64).sort(-1).values  # [B, T, K]
    target = 2 * torch.randn(3, 1, 7, generator=gen, dtype=torch.float64)  # [B, 1, J]
    tau = quantile_midpoints(5, dtype=torch.float64)  # [K]
    loss = quantile_huber_loss(pred, target, tau, kappa)  # [B, T]
    assert loss.shape == (3, 2)
    for b in range(3):
        for t in range(2):
            expected = _loop_loss(pred[b, t], target[b, 0], tau, kappa)
            assert loss[b, t].item() == pytest.approx(expected, rel=1e-12)


def test_shape_errors_print_both_shapes():
    tau = quantile_midpoints(4)  # [K]
    with pytest.raises(ValueError, match=r"pred \(3, 4\), target \(5, 6\)"):
        quantile_huber_loss(torch.zeros(3, 4), torch.zeros(5, 6), tau)
    with pytest.raises(ValueError, match=r"tau \(5,\) must have K = 4"):
        quantile_huber_loss(torch.zeros(3, 4), torch.zeros(3, 6), quantile_midpoints(5))


# ----------------------------------------------------------------------- loss recovery


def _sample_mixture(n, gen):
    (w_low, _), means, stds = MIXTURE
    low = torch.rand(n, generator=gen, dtype=torch.float64) < w_low  # [J]
    noise = torch.randn(n, generator=gen, dtype=torch.float64)  # [J]
    return torch.where(low, means[0] + stds[0] * noise, means[1] + stds[1] * noise)  # [J]


def _mixture_quantiles(tau):
    """True quantiles at tau [K] by bisection on the mixture CDF: [K]."""
    weights, means, stds = MIXTURE
    low, high = torch.full_like(tau, -20.0), torch.full_like(tau, 20.0)  # [K], [K]
    for _ in range(100):
        mid = (low + high) / 2  # [K]
        cdf = sum(
            w * torch.special.ndtr((mid - m) / s)
            for w, m, s in zip(weights, means, stds, strict=True)
        )
        below = cdf < tau  # [K]
        low, high = torch.where(below, mid, low), torch.where(below, high, mid)
    return (low + high) / 2  # [K]


def _mixture_huber_quantiles(tau, kappa):
    """Exact minimisers of E[quantile Huber loss] per tau_k, by bisection on the expected
    gradient -E[|tau_k - 1{Y < x}| clip(Y - x, -kappa, kappa)] (trapezoid quadrature): [K]."""
    weights, means, stds = MIXTURE
    y = torch.linspace(-15, 15, 30001, dtype=torch.float64)  # [Y]
    pdf = sum(
        w * torch.exp(-0.5 * ((y - m) / s) ** 2) / (s * (2 * torch.pi) ** 0.5)
        for w, m, s in zip(weights, means, stds, strict=True)
    )  # [Y]
    low, high = torch.full_like(tau, -15.0), torch.full_like(tau, 15.0)  # [K], [K]
    for _ in range(60):
        mid = (low + high) / 2  # [K]
        u = y - mid.unsqueeze(-1)  # [K, Y]
        weight = (tau.unsqueeze(-1) - (u < 0).double()).abs()  # [K, Y]
        grad = -torch.trapezoid(weight * u.clamp(-kappa, kappa) * pdf, y, dim=-1)  # [K]
        low, high = torch.where(grad < 0, mid, low), torch.where(grad < 0, high, mid)
    return (low + high) / 2  # [K]


def _reference_bug_loss(pred, target, tau, kappa):
    """The reference code's variant: the tau weight follows the TARGET sample j (the fraction
    of the j-th sorted target atom) instead of the predicted quantile k."""
    target_tau = quantile_midpoints(target.shape[-1], dtype=target.dtype)  # [J]
    td_error = target.sort(-1).values.unsqueeze(-2) - pred.unsqueeze(-1)  # [K, J]
    tau_weight = (target_tau - (td_error.detach() < 0).double()).abs()  # [K, J]
    return (tau_weight * huber(td_error, kappa)).mean(-1).sum(-1)  # []


def _fit_free_quantiles(loss_fn, *, kappa, steps=1000, batch=64, lr=0.05, seed=0):
    """K free quantile values from zeros, Adam on fresh mixture samples each step: [K]."""
    gen = torch.Generator().manual_seed(seed)
    tau = quantile_midpoints(K, dtype=torch.float64)  # [K]
    theta = torch.zeros(K, dtype=torch.float64, requires_grad=True)  # [K]
    optimiser = torch.optim.Adam([theta], lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: max(1 - s / steps, 0.02))
    for _ in range(steps):
        loss = loss_fn(theta, _sample_mixture(batch, gen), tau, kappa)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    return theta.detach()  # [K]


TOLERANCE = 0.15  # max abs error over all 32 quantiles (spread of the target: about 8)


def test_free_quantiles_recover_the_true_quantiles():
    """kappa << spread: the quantile Huber minimiser is the quantile (within 0.03 here)."""
    tau = quantile_midpoints(K, dtype=torch.float64)  # [K]
    theta = _fit_free_quantiles(quantile_huber_loss, kappa=0.05)  # [K]
    assert (theta - _mixture_quantiles(tau)).abs().max() < TOLERANCE


def test_kappa_one_recovers_the_huber_quantiles():
    """With kappa = 1 (CONVENTIONS.md) on a unit-scale target the fixed point is the minimiser of
    the expected quantile Huber loss, which is pulled towards the expectile: here up to
    0.4 away from the true quantile (it shrinks with kappa / spread of the returns)."""
    tau = quantile_midpoints(K, dtype=torch.float64)  # [K]
    huber_quantiles = _mixture_huber_quantiles(tau, 1.0)  # [K]
    assert (huber_quantiles - _mixture_quantiles(tau)).abs().max() > 0.3
    theta = _fit_free_quantiles(quantile_huber_loss, kappa=1.0)  # [K]
    assert (theta - huber_quantiles).abs().max() < TOLERANCE


def test_reference_tau_bug_collapses_to_a_point():
    tau = quantile_midpoints(K, dtype=torch.float64)  # [K]
    theta = _fit_free_quantiles(_reference_bug_loss, kappa=0.05)  # [K]
    assert (theta - _mixture_quantiles(tau)).abs().max() > 10 * TOLERANCE
    assert theta.max() - theta.min() < 1e-6  # every quantile got the same loss


@pytest.mark.parametrize("kappa", [1.0, 0.3])
def test_hand_written_backward_matches_autograd_of_the_formula(kappa):
    generator = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 4, 8, dtype=torch.float64, generator=generator, requires_grad=True)
    target = (2 * torch.randn(3, 1, 5, dtype=torch.float64, generator=generator)).requires_grad_()
    tau = quantile_midpoints(8, dtype=torch.float64)

    def formula(pred, target):
        td_error = target.unsqueeze(-2) - pred.unsqueeze(-1)  # [..., K, J]
        weight = (tau.unsqueeze(-1) - (td_error.detach() < 0).to(pred.dtype)).abs()
        return (weight * huber(td_error, kappa)).mean(-1).sum(-1)

    fast = quantile_huber_loss(pred, target, tau, kappa)
    assert torch.allclose(fast, formula(pred, target))
    upstream = torch.randn(fast.shape, dtype=torch.float64, generator=generator)
    fast_grads = torch.autograd.grad(fast, (pred, target), upstream)
    formula_grads = torch.autograd.grad(formula(pred, target), (pred, target), upstream)
    for got, expected in zip(fast_grads, formula_grads, strict=True):
        assert torch.allclose(got, expected)
    assert torch.autograd.gradcheck(
        lambda p, t: quantile_huber_loss(p, t, tau, kappa), (pred, target)
    )
