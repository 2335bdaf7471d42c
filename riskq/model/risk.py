"""Risk measures psi over sorted quantile vectors (CONVENTIONS.md section 2).

RiskQ (Shen et al., NeurIPS 2023, arXiv:2311.01753) acts on psi[Z] of a K-atom return
distribution theta[..., K] (sorted ascending, each atom of mass 1/K). Every measure here is a
fixed weight vector over the atoms, psi(theta) = (theta * weights).sum(-1):

- distortion risk measures (neutral, cvar, wang, cpw, pow) use the exact atom weights
  w_k = g((k+1)/K) - g(k/K) of their distortion g;
- VaR_alpha = theta[ceil(alpha*K) - 1] is a one-hot weight vector.

A negative parameter selects the risk-seeking mirror psi_{-p}(theta) = -psi_p(-flip(theta)),
which is psi_p with its weights reversed along K.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

# alpha*K is rounded to the nearest integer when this close to it, so that e.g.
# 0.1 * 30 = 3.0000000000000004 selects theta[2] (the 3rd atom), not theta[3].
_VAR_TOLERANCE = 1e-9
# CPW's g is non-decreasing only for eta >= 0.27920 (found numerically; Ingersoll 2008, 0.279).
CPW_MIN_ETA = 0.28


def _drm_weights(distortion: Callable[[torch.Tensor], torch.Tensor], n_quantiles: int):
    """Exact atom weights g((k+1)/K) - g(k/K) of a distortion g, in float64: [K]."""
    grid = torch.arange(n_quantiles + 1, dtype=torch.float64) / n_quantiles  # [K+1]
    g = distortion(grid[1:-1])  # [K-1], interior points only
    g = torch.cat([g.new_zeros(1), g, g.new_ones(1)])  # [K+1], g(0) = 0, g(1) = 1 exactly
    return g.diff()  # [K]


def _neutral_weights(param: float, n_quantiles: int) -> torch.Tensor:
    return torch.full((n_quantiles,), 1.0 / n_quantiles, dtype=torch.float64)  # [K]


def _var_weights(alpha: float, n_quantiles: int) -> torch.Tensor:
    """One-hot at ceil(alpha*K) - 1: the lower alpha-quantile F^-1(alpha) of K atoms."""
    index = max(math.ceil(alpha * n_quantiles - _VAR_TOLERANCE) - 1, 0)
    weights = torch.zeros(n_quantiles, dtype=torch.float64)  # [K]
    weights[index] = 1.0
    return weights


def _cvar_weights(alpha: float, n_quantiles: int) -> torch.Tensor:
    """g(t) = min(t / alpha, 1): the mean of the worst alpha fraction."""
    return _drm_weights(lambda t: (t / alpha).clamp(max=1.0), n_quantiles)


def _wang_weights(eta: float, n_quantiles: int) -> torch.Tensor:
    """g(t) = Phi(Phi^-1(t) + eta); eta > 0 is risk-averse."""
    return _drm_weights(lambda t: torch.special.ndtr(torch.special.ndtri(t) + eta), n_quantiles)


def _cpw_weights(eta: float, n_quantiles: int) -> torch.Tensor:
    """Tversky-Kahneman g(t) = t^eta / (t^eta + (1-t)^eta)^(1/eta)."""
    return _drm_weights(
        lambda t: t**eta / (t**eta + (1 - t) ** eta) ** (1 / eta),
        n_quantiles,
    )


def _pow_weights(eta: float, n_quantiles: int) -> torch.Tensor:
    """g(t) = 1 - (1-t)^(1+eta) for eta >= 0 (risk-averse)."""
    return _drm_weights(lambda t: 1 - (1 - t) ** (1 + eta), n_quantiles)


@dataclass(frozen=True)
class RiskSpec:
    """How to build one measure: its risk-averse weights (param >= 0) and its valid range."""

    label: str  # display name, e.g. "CVaR"
    weights: Callable[[float, int], torch.Tensor]  # (|param|, K) -> float64 [K]
    valid: Callable[[float], bool]  # applied to |param|
    range_text: str  # shown in errors, e.g. "0 < |alpha| <= 1"
    uses_param: bool = True


RISK_MEASURES: dict[str, RiskSpec] = {
    "neutral": RiskSpec("Neutral", _neutral_weights, lambda p: True, "no parameter", False),
    "var": RiskSpec("VaR", _var_weights, lambda p: 0 < p <= 1, "0 < |alpha| <= 1"),
    "cvar": RiskSpec("CVaR", _cvar_weights, lambda p: 0 < p <= 1, "0 < |alpha| <= 1"),
    "wang": RiskSpec("Wang", _wang_weights, math.isfinite, "any finite eta"),
    "cpw": RiskSpec(
        "CPW", _cpw_weights, lambda p: CPW_MIN_ETA <= p <= 1, f"{CPW_MIN_ETA} <= |eta| <= 1"
    ),
    "pow": RiskSpec("Pow", _pow_weights, math.isfinite, "any finite eta"),
}


def _spec(name: str) -> RiskSpec:
    if name not in RISK_MEASURES:
        raise ValueError(f"unknown risk measure {name!r}; valid choices: {sorted(RISK_MEASURES)}")
    return RISK_MEASURES[name]


def _checked_param(name: str, param: float | None) -> float | None:
    """The validated parameter (None for measures without one); raises ValueError."""
    spec = _spec(name)
    if not spec.uses_param:
        return None
    if param is None:
        raise ValueError(f"risk {name!r} needs a parameter: {spec.range_text}")
    param = float(param)
    if math.isnan(param) or not spec.valid(abs(param)):
        raise ValueError(f"risk {name!r} needs {spec.range_text}, got {param:g}")
    return param


@functools.lru_cache(maxsize=512)
def _cached_weights(
    name: str, param: float | None, n_quantiles: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Read-only cached weights [K]; negative param reverses them (risk-seeking mirror).

    Built outside inference mode so that a first call made while acting still yields a
    tensor that autograd can save during training.
    """
    with torch.inference_mode(False):
        weights = _spec(name).weights(abs(param or 0.0), n_quantiles)  # [K] float64
        if param is not None and param < 0:
            weights = weights.flip(-1)  # [K]
        return weights.to(dtype=dtype, device=device)  # [K]


def distortion_weights(
    name: str,
    param: float | None,
    n_quantiles: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Atom weights w [K] with psi(theta) = (theta * w).sum(-1) (CONVENTIONS.md section 2).

    Non-negative and summing to 1 for every measure; VaR gives a one-hot vector.
    """
    if n_quantiles < 1:
        raise ValueError(f"n_quantiles must be >= 1, got {n_quantiles}")
    param = _checked_param(name, param)
    device = torch.device(device if device is not None else "cpu")
    return _cached_weights(name, param, n_quantiles, dtype, device).clone()  # [K]


@dataclass(frozen=True)
class RiskMeasure:
    """psi: sorted quantiles theta [..., K] -> risk values [...] (CONVENTIONS.md section 2).

    Build with ``make_risk_measure``; the parameter is validated on construction.
    """

    name: str
    param: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "param", _checked_param(self.name, self.param))

    @property
    def label(self) -> str:
        """Display label, e.g. "CVaR(0.2)" or "Neutral"."""
        spec = RISK_MEASURES[self.name]
        return spec.label if self.param is None else f"{spec.label}({self.param:g})"

    def weights(
        self, n_quantiles: int, *, dtype: torch.dtype = torch.float32, device=None
    ) -> torch.Tensor:
        """Atom weights [K] of this measure."""
        return distortion_weights(self.name, self.param, n_quantiles, dtype=dtype, device=device)

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """theta [..., K] sorted ascending along K -> psi(theta) [...]; differentiable."""
        if theta.dim() == 0 or not theta.is_floating_point():
            raise ValueError(
                f"risk measure needs a floating tensor [..., K], got {theta.dtype} "
                f"of shape {tuple(theta.shape)}"
            )
        weights = _cached_weights(
            self.name, self.param, theta.shape[-1], theta.dtype, theta.device
        )  # [K]
        return theta @ weights  # [...]; a matrix-vector product, no [..., K] temporary


def make_risk_measure(name: str, param: float | None = None) -> RiskMeasure:
    """The risk measure ``name`` of RISK_MEASURES at level ``param`` (ignored by neutral).

    Raises ValueError naming the valid choices or the valid range.
    """
    return RiskMeasure(name, param)


def empirical_risk(samples, name: str, param: float | None = None):
    """Risk of an empirical sample [..., M] (sorted here, then psi with K = M): [...].

    Takes a tensor (returns a tensor) or anything numpy accepts (returns numpy, a numpy
    scalar for 1-D input); used to report e.g. the CVaR of evaluation returns.
    """
    measure = make_risk_measure(name, param)
    if isinstance(samples, torch.Tensor):
        values = samples if samples.is_floating_point() else samples.double()  # [..., M]
        return measure(values.sort(dim=-1).values)  # [...]
    values = torch.as_tensor(np.asarray(samples, dtype=np.float64))  # [..., M]
    return measure(values.sort(dim=-1).values).numpy()[()]  # [...]
