"""Typed configuration schemas (stored in Hydra's ConfigStore) shared by every command.

YAML files under ``configs/`` hold values; these dataclasses are their schemas, so a typo in a
key or a value of the wrong type stops a run at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RiskConfig:
    """A risk measure psi (method.md section 2): ``name`` in RISK_MEASURES, ``param`` its level."""

    name: str = "wang"
    param: float = 0.75  # Wang eta; alpha for var/cvar; eta for cpw/pow; ignored by neutral


@dataclass
class AgentNetConfig:
    """The shared recurrent quantile network (method.md section 3)."""

    hidden_dim: int = 64  # Linear(in, 64) -> GRU(64), reference
    n_quantiles: int = 32  # K, reference
    shared: bool = True  # parameter sharing across agents (agent id one-hot in the input)


@dataclass
class MixerConfig:
    """Sizes of every mixer of the registry; each mixer reads only its own fields."""

    # RiskQ attention mixer (method.md section 4, reference sizes)
    n_heads: int = 1  # H
    query_hidden: int = 32  # q_h(s): S -> 32 -> ReLU -> key_dim
    key_dim: int = 16  # e_{i,h} = Linear(f_i) -> 16
    head_hidden: int = 32  # w(s): S -> 32 -> ReLU -> H
    bias_hidden: int = 16  # c(s): S -> 16 -> ReLU -> 1
    # QMIX-style monotone hypernetwork mixers (qmix, dmix, risk-mix)
    embed_dim: int = 32  # mixing layer width, PyMARL default
    hypernet_hidden: int = 64  # hypernetwork hidden width, PyMARL default
