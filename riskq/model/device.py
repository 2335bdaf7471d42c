"""The device a config names, checked once where a command starts (``riskq-train``,
``riskq-rigm``); everything after takes the device from its input tensors."""

from __future__ import annotations

import torch


def usable_device(name: str) -> torch.device:
    """``torch.device(name)`` when a tensor can be allocated there; otherwise a one-line
    ValueError naming ``device``, the reason and the devices this machine has."""
    try:
        device = torch.device(name)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:  # AssertionError: a CPU-only torch's CUDA
        available = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(
            f"device: '{name}' is not usable here ({reason}); available: {', '.join(available)}"
        ) from None
    return device
