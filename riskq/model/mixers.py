"""Mixers: per-agent quantiles of the chosen actions -> joint return (CONVENTIONS.md sections 4, 6).

Every mixer has one interface::

    mixer(agent_quantiles [B, T, N, K], state [B, T, S], agent_features [B, T, N, F] | None)
        -> [B, T, K_out]

Any leading shape works in place of [B, T]. ``distributional`` mixers keep K_out = K; the
expected-value ones (vdn, qmix) return K_out = 1. ``none`` (independent learners) has no joint
output and returns the agent quantiles unchanged, [B, T, N, K].

Whether a mixer satisfies RIGM (CONVENTIONS.md section 1) is stated in its docstring and checked
numerically by ``riskq.analysis.rigm``. Reference: Shen et al., NeurIPS 2023, arXiv:2311.01753.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from riskq.config import MixerConfig

RiskFn = Callable[[torch.Tensor], torch.Tensor]  # sorted quantiles [..., K] -> values [...]
StateTransform = Callable[[torch.Tensor], torch.Tensor]  # elementwise, [...] -> [...]


def symlog(x: torch.Tensor) -> torch.Tensor:
    """sign(x) log(1 + |x|), elementwise: odd, monotone, ~x near 0, log-sized for large |x|."""
    return torch.sign(x) * torch.log1p(x.abs())


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


# What every mixer applies to its state and agent features before reading them
# (MixerConfig.state_transform).
STATE_TRANSFORMS: dict[str, StateTransform] = {"none": identity, "symlog": symlog}


def _mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))


class MonotoneHypernet(nn.Module):
    """QMIX's monotone mixing network (PyMARL sizes), mixing over agents for each column.

    values [..., N, C], state [..., S] -> [..., C]: per column c,
    y_c = |W2(s)| . elu(|W1(s)|^T v_c + b1(s)) + V(s), non-decreasing in every v_{i,c}.
    The same state-conditioned weights serve every column (C = 1 for QMIX on means).
    """

    def __init__(self, *, n_agents: int, state_dim: int, embed_dim: int, hidden_dim: int):
        super().__init__()
        self.n_agents = n_agents
        self.embed_dim = embed_dim
        self.hyper_w1 = _mlp(state_dim, hidden_dim, n_agents * embed_dim)
        self.hyper_b1 = nn.Linear(state_dim, embed_dim)
        self.hyper_w2 = _mlp(state_dim, hidden_dim, embed_dim)
        self.value = _mlp(state_dim, embed_dim, 1)

    def forward(self, values: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        w1 = self.hyper_w1(state).abs()  # [..., N*E]
        w1 = w1.view(*state.shape[:-1], self.n_agents, self.embed_dim)  # [..., N, E]
        b1 = self.hyper_b1(state).unsqueeze(-2)  # [..., 1, E]
        mixed = b1  # sum over agents of v_{n,c} |W1|_{n,e}, one agent at a time: [..., C, E]
        for agent in range(self.n_agents):  # (einsum runs batched tiny matmuls, ~3x slower)
            mixed = torch.addcmul(mixed, values[..., agent, :, None], w1[..., agent, None, :])
        hidden = nn.functional.elu(mixed)  # [..., C, E]
        w2 = self.hyper_w2(state).abs().unsqueeze(-2)  # [..., 1, E]
        return torch.linalg.vecdot(hidden, w2) + self.value(state)  # [..., C]


class Mixer(nn.Module):
    """Base class: checks shapes at the boundary, subclasses implement ``mix``."""

    distributional: bool = True  # the joint output keeps the K quantiles
    joint: bool = True  # False only for independent learners (no joint output)
    uses_risk_fn: bool = False  # True: make_mixer passes the run's risk measure (risk-mix)

    def __init__(
        self,
        *,
        n_agents: int,
        state_dim: int,
        n_quantiles: int,
        agent_feature_dim: int = 0,
        cfg: MixerConfig | None = None,
    ) -> None:
        super().__init__()
        self.n_agents = n_agents
        self.state_dim = state_dim
        self.n_quantiles = n_quantiles
        self.agent_feature_dim = agent_feature_dim
        self.cfg = cfg if cfg is not None else MixerConfig()
        if self.cfg.state_transform not in STATE_TRANSFORMS:
            raise ValueError(
                f"algo.mixer_args.state_transform: unknown {self.cfg.state_transform!r}; "
                f"valid choices: {sorted(STATE_TRANSFORMS)}"
            )
        self.state_transform = STATE_TRANSFORMS[self.cfg.state_transform]

    def forward(
        self,
        agent_quantiles: torch.Tensor,
        state: torch.Tensor,
        agent_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """agent_quantiles [B, T, N, K], state [B, T, S], agent_features [B, T, N, F] | None
        -> joint [B, T, K_out] ([B, T, N, K] for ``none``)."""
        lead = tuple(agent_quantiles.shape[:-2])
        if agent_quantiles.dim() < 3 or agent_quantiles.shape[-2] != self.n_agents:
            shape = tuple(agent_quantiles.shape)
            raise ValueError(f"agent_quantiles {shape} must be [B, T, N={self.n_agents}, K]")
        if tuple(state.shape) != (*lead, self.state_dim):
            raise ValueError(
                f"state {tuple(state.shape)} must be {(*lead, self.state_dim)} for "
                f"agent_quantiles {tuple(agent_quantiles.shape)}"
            )
        rows = agent_quantiles.reshape(-1, *agent_quantiles.shape[-2:])  # [R, N, K], R = B*T
        if agent_features is not None:
            if agent_features.shape[:-1] == agent_quantiles.shape[:-1]:
                agent_features = agent_features.reshape(-1, *agent_features.shape[-2:])  # [R, N, F]
            agent_features = self.state_transform(agent_features)
        state = self.state_transform(state.reshape(-1, self.state_dim))  # [R, S]
        # one row per (b, t): the MLPs' products are plain 2-D ones (fewer autograd nodes)
        joint = self.mix(rows, state, agent_features)  # [R, ...]
        return joint.view(*lead, *joint.shape[1:])  # [B, T, K_out] ([B, T, N, K] for none)

    def mix(
        self,
        agent_quantiles: torch.Tensor,
        state: torch.Tensor,
        agent_features: torch.Tensor | None,
    ) -> torch.Tensor:
        raise NotImplementedError


class RiskQMixer(Mixer):
    """RiskQ (CONVENTIONS.md section 4): theta_jt[k] = sum_i kappa_i(s) theta_i[k] + c(s).

    kappa_i(s) = sum_h |w_h(s)| lambda_{i,h}(s) >= 0, with lambda_{.,h} an attention softmax
    over agents of q_h(s) . e_{i,h} / sqrt(d). e_{i,h} = Linear(f_i) on the agents' own
    features when agent_feature_dim > 0, else a learned per-agent embedding [H, N, d].
    Satisfies RIGM for VaR and every distortion risk measure: kappa is non-negative and
    action-independent, so psi(theta_jt) = sum_i kappa_i psi(theta_i) + c.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        cfg = self.cfg
        self.queries = nn.ModuleList(
            _mlp(self.state_dim, cfg.query_hidden, cfg.key_dim) for _ in range(cfg.n_heads)
        )
        if self.agent_feature_dim > 0:
            self.key_layer = nn.Linear(self.agent_feature_dim, cfg.n_heads * cfg.key_dim)
        else:
            embedding = torch.randn(cfg.n_heads, self.n_agents, cfg.key_dim)  # [H, N, d]
            self.key_embedding = nn.Parameter(embedding)
        self.head_weights = _mlp(self.state_dim, cfg.head_hidden, cfg.n_heads)
        self.bias = _mlp(self.state_dim, cfg.bias_hidden, 1)

    def _keys(self, state: torch.Tensor, agent_features: torch.Tensor | None) -> torch.Tensor:
        """Per-agent keys [..., H, N, d]."""
        cfg = self.cfg
        if self.agent_feature_dim == 0:
            return self.key_embedding.expand(*state.shape[:-1], -1, -1, -1)  # [..., H, N, d]
        expected = (*state.shape[:-1], self.n_agents, self.agent_feature_dim)
        if agent_features is None or tuple(agent_features.shape) != expected:
            got = None if agent_features is None else tuple(agent_features.shape)
            raise ValueError(f"agent_features {got} must be {expected}")
        keys = self.key_layer(agent_features)  # [..., N, H*d]
        keys = keys.view(*expected[:-1], cfg.n_heads, cfg.key_dim)  # [..., N, H, d]
        return keys.transpose(-3, -2)  # [..., H, N, d]

    def mixing_weights(
        self, state: torch.Tensor, agent_features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """kappa [B, T, N] >= 0 from state [B, T, S] and agent_features [B, T, N, F] | None."""
        query = torch.stack([q(state) for q in self.queries], dim=-2)  # [..., H, d]
        keys = self._keys(state, agent_features)  # [..., H, N, d]
        logits = torch.linalg.vecdot(query.unsqueeze(-2), keys)  # [..., H, N]
        attention = torch.softmax(logits / math.sqrt(self.cfg.key_dim), dim=-1)  # [..., H, N]
        head_weights = self.head_weights(state).abs().unsqueeze(-1)  # [..., H, 1]
        return (head_weights * attention).sum(dim=-2)  # [..., N]

    def mix(self, agent_quantiles, state, agent_features):
        kappa = self.mixing_weights(state, agent_features)  # [..., N]
        mixed = (kappa.unsqueeze(-1) * agent_quantiles).sum(-2)  # [..., K]
        return mixed + self.bias(state)  # [..., K]


class VDNMixer(Mixer):
    """VDN on expected values: Q_jt = sum_i E[theta_i] -> [..., 1].

    Satisfies IGM/DIGM (risk-neutral) only; its joint output is an expectation, so it cannot
    express RIGM for a non-mean psi.
    """

    distributional = False

    def mix(self, agent_quantiles, state, agent_features):
        return agent_quantiles.mean(dim=-1).sum(dim=-1, keepdim=True)  # [..., 1]


class QMixer(Mixer):
    """QMIX on expected values: Q_jt = QMIX(E[theta_1], ..., E[theta_n]; s) -> [..., 1].

    Monotone, so it satisfies IGM/DIGM; its joint output is an expectation, so it cannot
    express RIGM for a non-mean psi.
    """

    distributional = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.hypernet = MonotoneHypernet(
            n_agents=self.n_agents,
            state_dim=self.state_dim,
            embed_dim=self.cfg.embed_dim,
            hidden_dim=self.cfg.hypernet_hidden,
        )

    def mix(self, agent_quantiles, state, agent_features):
        means = agent_quantiles.mean(dim=-1, keepdim=True)  # [..., N, 1]
        return self.hypernet(means, state)  # [..., 1]


class DDNMixer(Mixer):
    """DDN (CONVENTIONS.md section 6): theta_jt[k] = sum_i theta_i[k] + V(s).

    Satisfies RIGM (kappa_i = 1 for every agent): psi(theta_jt) = sum_i psi(theta_i) + V(s).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.value = _mlp(self.state_dim, self.cfg.embed_dim, 1)

    def mix(self, agent_quantiles, state, agent_features):
        return agent_quantiles.sum(dim=-2) + self.value(state)  # [..., K]


class DMixer(QMixer):
    """DMIX (CONVENTIONS.md section 6): QMIX(E[theta_1..n]; s) + sum_i (theta_i[k] - E[theta_i]).

    Satisfies DIGM (the joint mean is QMIX of the agent means) but violates RIGM: the mean
    and the shape are mixed with different weights, so psi(theta_jt) for a non-mean psi is
    not maximised by the agents' own risk-greedy actions.
    """

    distributional = True

    def agent_values(self, agent_quantiles: torch.Tensor) -> torch.Tensor:
        """Per-agent values fed to the monotone network: [..., N, K] -> [..., N]."""
        return agent_quantiles.mean(dim=-1)  # [..., N]

    def mix(self, agent_quantiles, state, agent_features):
        means = agent_quantiles.mean(dim=-1, keepdim=True)  # [..., N, 1]
        shape = (agent_quantiles - means).sum(dim=-2)  # [..., K]
        values = self.agent_values(agent_quantiles).unsqueeze(-1)  # [..., N, 1]
        return self.hypernet(values, state) + shape  # [..., K]


class RiskMixer(DMixer):
    """RMIX-like counter-example: QMIX(psi(theta_1), ..., psi(theta_n); s) + centred shapes.

    Mixes per-agent risk values with a monotone network and takes the joint's shape from the
    centred agent quantiles. psi of this joint is QMIX(psi_i) + sum_i (psi(theta_i) - E[theta_i]),
    not a function of the per-agent risk values: RIGM fails for non-mean psi (with psi = mean
    it is DMIX, which satisfies DIGM).
    """

    uses_risk_fn = True

    def __init__(self, *, risk_fn: RiskFn | None = None, **kwargs) -> None:
        if risk_fn is None:
            raise ValueError("mixer 'risk-mix' needs a risk measure (risk_fn)")
        super().__init__(**kwargs)
        self.risk_fn = risk_fn

    def agent_values(self, agent_quantiles: torch.Tensor) -> torch.Tensor:
        return self.risk_fn(agent_quantiles)  # [..., N]


class QuantileMixer(QMixer):
    """Counter-example, per-quantile QMIX: theta_jt[k] = QMIX(theta_1[k], ..., theta_n[k]; s).

    One hypernetwork for every k, so theta_jt stays sorted and is monotone in every agent
    quantile, yet the ELU makes psi(theta_jt) a non-separable function of the agents'
    distributions: RIGM fails for distortion measures (even DIGM for psi = mean). It holds for
    VaR only: VaR_alpha(theta_jt) = QMIX(theta_1[k*], ..., theta_n[k*]; s) is monotone in each
    agent's own VaR_alpha = theta_i[k*].
    """

    distributional = True

    def mix(self, agent_quantiles, state, agent_features):
        return self.hypernet(agent_quantiles, state)  # [..., K]


class NoMixer(Mixer):
    """Independent learners: no joint distribution; returns agent_quantiles [..., N, K].

    RIGM is not defined (there is no joint return to apply psi to).
    """

    joint = False

    def mix(self, agent_quantiles, state, agent_features):
        return agent_quantiles  # [..., N, K]


MIXERS: dict[str, type[Mixer]] = {
    "riskq": RiskQMixer,
    "vdn": VDNMixer,
    "qmix": QMixer,
    "ddn": DDNMixer,
    "dmix": DMixer,
    "risk-mix": RiskMixer,
    "quantile-mix": QuantileMixer,
    "none": NoMixer,
}


def make_mixer(
    name: str,
    *,
    n_agents: int,
    state_dim: int,
    n_quantiles: int,
    agent_feature_dim: int = 0,
    risk_fn: RiskFn | None = None,
    cfg: MixerConfig | None = None,
) -> Mixer:
    """Build the mixer registered as ``name`` in MIXERS (ValueError listing the choices)."""
    if name not in MIXERS:
        raise ValueError(f"unknown mixer {name!r}; valid choices: {sorted(MIXERS)}")
    cls = MIXERS[name]
    extra = {"risk_fn": risk_fn} if cls.uses_risk_fn else {}
    return cls(
        n_agents=n_agents,
        state_dim=state_dim,
        n_quantiles=n_quantiles,
        agent_feature_dim=agent_feature_dim,
        cfg=cfg,
        **extra,
    )
