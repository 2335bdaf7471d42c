"""Divergence check run by the trainer after every learner update: the first update whose loss,
gradient norm or parameters are not finite stops the run (docs/guide/run-directory.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch.nn.utils import get_total_norm

CHECKED_METRICS = {"loss": "loss", "grad_norm": "gradient norm"}  # update() metric -> name


def non_finite(
    metrics: Mapping[str, float | torch.Tensor],
    modules: Mapping[str, torch.nn.Module],
    *,
    flat_params: torch.Tensor | None = None,
) -> str | None:
    """What is not finite after an update, e.g. ``loss (nan)`` or ``parameter mixer.w``;
    None when everything is finite.

    metrics: the learner's update metrics (scalars); modules: the trained networks by name;
    flat_params [P]: the same parameters as one tensor when the learner keeps them so (one
    check per update instead of one per parameter tensor). Otherwise parameters are checked
    with one fused max-abs norm (it cannot overflow on finite values); only a failing check
    looks for the parameter to name.
    """
    for key, name in CHECKED_METRICS.items():
        if key in metrics and not math.isfinite(float(metrics[key])):
            return f"{name} ({float(metrics[key])})"
    if flat_params is not None:
        if torch.isfinite(flat_params).all():
            return None
    else:
        params = [param for module in modules.values() for param in module.parameters()]
        if not params or torch.isfinite(get_total_norm(params, norm_type=math.inf)):
            return None
    for prefix, module in modules.items():
        for name, param in module.named_parameters():
            if not torch.isfinite(param).all():
                return f"parameter {prefix}.{name}"
    return "parameters"
