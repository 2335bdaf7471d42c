"""Per-agent recurrent quantile network (CONVENTIONS.md section 3).

Each agent maps (observation, one-hot last action, one-hot agent id) through
Linear(in, H) -> ReLU -> GRU(H) -> Linear(H, A*K), viewed as [..., A, K] and sorted ascending
along K, so every action's quantile vector is a valid, non-crossing quantile function
(RiskQ, Shen et al., NeurIPS 2023, arXiv:2311.01753). Parameters are shared by all agents by
default; ``shared=False`` gives every agent its own copy (same API). ``zero_head=True`` starts
the output layer at zero: every action's quantiles are 0 before the first update, so the
untrained greedy action is each agent's first one (a known starting point for demos).

``riskq.model.reference.agent_quantiles`` runs this network plainly (``nn.GRU`` over each agent's
sequence, the full head, ``torch.sort``); the GRU paths below (``sequence_features``, the
kernels of ``riskq.model.kernels``) are an optimisation of it, checked against it by
tests/test_learner_equivalence.py.

Entry points with identical maths:
- ``step`` for acting, one time step with an explicit hidden state;
- ``forward`` for whole padded episodes [B, T, ...] from a zero hidden state;
- ``features`` then ``quantiles`` / ``action_quantiles`` for the learner, which needs every
  action's quantiles without gradient (risk-greedy selection) but only the taken action's with
  it (riskq.model.kernels: a hand-written GRU backward and a per-action head).
"""

from __future__ import annotations

import torch
from torch import nn

from riskq.model.kernels import (
    SHORT_SEQUENCE_STEPS,
    action_head,
    gru_sequences,
    gru_steps,
    sort_quantiles,
)

__all__ = ["RecurrentQuantileAgent", "agent_input_dim", "build_agent_inputs", "sort_quantiles"]


def agent_input_dim(*, obs_dim: int, n_actions: int, n_agents: int) -> int:
    """Width I of the per-agent input: observation, one-hot last action, one-hot agent id."""
    return obs_dim + n_actions + n_agents


def build_agent_inputs(obs: torch.Tensor, last_actions_onehot: torch.Tensor) -> torch.Tensor:
    """Concatenate observation, one-hot last action and one-hot agent id.

    Args:
        obs: [..., N, O] observations.
        last_actions_onehot: [..., N, A] one-hot previous actions (zeros at episode start).
    Returns:
        [..., N, O + A + N] agent inputs (dtype and device of ``obs``).
    """
    if obs.shape[:-1] != last_actions_onehot.shape[:-1]:
        raise ValueError(
            f"obs {tuple(obs.shape)} and last_actions_onehot "
            f"{tuple(last_actions_onehot.shape)} must agree on [..., N]"
        )
    n_agents = obs.shape[-2]
    agent_ids = torch.eye(n_agents, dtype=obs.dtype, device=obs.device)  # [N, N]
    agent_ids = agent_ids.expand(*obs.shape[:-1], n_agents)  # [..., N, N]
    last_actions = last_actions_onehot.to(obs.dtype)  # [..., N, A]
    return torch.cat([obs, last_actions, agent_ids], dim=-1)  # [..., N, O + A + N]


def actions_onehot(actions: torch.Tensor, n_actions: int) -> torch.Tensor:
    """actions [..., N] long -> one-hot [..., N, A] float: the last-action part of agent inputs."""
    return torch.nn.functional.one_hot(actions, n_actions).float()  # [..., N, A]


def previous_actions_onehot(actions: torch.Tensor, n_actions: int) -> torch.Tensor:
    """Last-action inputs of whole episodes: actions [B, T, N] -> [B, T+1, N, A].

    Step t sees the one-hot of the action taken at t - 1 and zeros at t = 0 (nothing precedes
    an episode's start), as the runner feeds them one step at a time.
    """
    onehot = actions_onehot(actions, n_actions)  # [B, T, N, A]
    return torch.cat([torch.zeros_like(onehot[:, :1]), onehot], dim=1)  # [B, T+1, N, A]


class _QuantileCore(nn.Module):
    """One parameter set: Linear -> ReLU -> GRU (``encoder``, ``gru``), then Linear(H, A*K)
    (``head``). Run by ``sequence_features`` (all cores of one or more agents in one time loop).
    """

    def __init__(self, *, input_dim: int, hidden_dim: int, n_outputs: int) -> None:
        super().__init__()
        self.encoder = nn.Linear(input_dim, hidden_dim)
        self.gru = nn.GRU(hidden_dim, hidden_dim)
        self.head = nn.Linear(hidden_dim, n_outputs)


def sequence_features(
    agents: list[RecurrentQuantileAgent], inputs: torch.Tensor, hidden: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """GRU features [B, T, N, H] of each of ``agents`` (one architecture) on the same inputs.

    inputs [B, T, N, I], hidden [B, N, H] (default 0). Every core of every agent runs in one
    time loop (riskq.model.kernels.gru_sequences): the learner's online and target networks cost
    little more than one. Agents with trainable parameters must come first. Sequences of at
    most ``SHORT_SEQUENCE_STEPS`` steps (acting steps, one-step games) take plain autograd ops
    instead (riskq.model.kernels.gru_steps): fewer ops than the kernel's set-up or ``nn.GRU``'s.
    """
    first = agents[0]
    first._check(inputs, leading=2)
    batch, steps, n_agents, _ = inputs.shape
    if steps <= SHORT_SEQUENCE_STEPS:  # also every acting step
        return [_short_features(agent, inputs, hidden) for agent in agents]
    if hidden is None:
        hidden = first.initial_hidden(batch).to(inputs.dtype)  # [B, N, H]
    time_major = inputs.transpose(0, 1)  # [T, B, N, I]
    if first.shared:  # one core: the agents are rows of one batch
        core_inputs = time_major.reshape(1, steps, batch * n_agents, -1)  # [1, T, B*N, I]
        core_hidden = hidden.reshape(1, batch * n_agents, -1)  # [1, B*N, H]
    else:  # one core per agent
        core_inputs = time_major.permute(2, 0, 1, 3)  # [N, T, B, I]
        core_hidden = hidden.transpose(0, 1)  # [N, B, H]
    cores = [core for agent in agents for core in agent.cores]  # S = len(agents) * C
    trainable = [core for core in cores if core.gru.weight_hh_l0.requires_grad]
    if torch.is_grad_enabled() and trainable:  # one time loop, gradients into ``trainable``
        frozen = cores[len(trainable) :]
        sequence = gru_sequences(
            [core.gru for core in trainable],
            _encode(trainable, core_inputs),  # [G, T, B', H]
            core_hidden.repeat(len(agents), 1, 1),  # [S, B', H]
            [core.gru for core in frozen],
            _encode(frozen, core_inputs),  # [S - G, T, B', H]
        )  # [S, T, B', H]
    else:  # acting and evaluation: nn.GRU's own loop, core by core
        sequence = torch.stack(
            [
                core.gru(torch.relu(core.encoder(x)), h.unsqueeze(0).contiguous())[0]
                for core, x, h in zip(
                    cores,
                    core_inputs.repeat(len(agents), 1, 1, 1),
                    core_hidden.repeat(len(agents), 1, 1),
                    strict=True,
                )
            ]
        )  # [S, T, B', H]
    per_agent = sequence.split(len(first.cores))  # [C, T, B', H] per agent
    if first.shared:  # [1, T, B*N, H] -> [B, T, N, H]
        return [s[0].unflatten(1, (batch, n_agents)).transpose(0, 1) for s in per_agent]
    return [s.permute(2, 1, 0, 3) for s in per_agent]  # [N, T, B, H] -> [B, T, N, H]


def _short_features(
    agent: RecurrentQuantileAgent, inputs: torch.Tensor, hidden: torch.Tensor | None
) -> torch.Tensor:
    """``sequence_features`` of one agent for a sequence of a few steps
    (riskq.model.kernels.gru_steps, plain autograd ops): inputs [B, T, N, I], hidden [B, N, H] or
    None (zero) -> [B, T, N, H]."""
    batch, steps, n_agents, _ = inputs.shape
    time_major = inputs.transpose(0, 1)  # [T, B, N, I]
    if agent.shared:  # the agents are rows of one batch
        core = agent.cores[0]
        rows = time_major.reshape(steps, batch * n_agents, -1)  # [T, B*N, I]
        start = None if hidden is None else hidden.reshape(batch * n_agents, -1)  # [B*N, H]
        outputs = gru_steps(core.gru, torch.relu(core.encoder(rows)), start)  # [T, B*N, H]
        return outputs.view(steps, batch, n_agents, -1).transpose(0, 1)  # [B, T, N, H]
    outputs = [
        gru_steps(
            core.gru,
            torch.relu(core.encoder(time_major[:, :, i])),  # [T, B, H]
            None if hidden is None else hidden[:, i],  # [B, H]
        )
        for i, core in enumerate(agent.cores)
    ]  # N x [T, B, H]
    return torch.stack(outputs, dim=2).transpose(0, 1)  # [B, T, N, H]


def _encode(cores: list[_QuantileCore], core_inputs: torch.Tensor) -> torch.Tensor:
    """ReLU(encoder) of whole agents' cores: core_inputs [C, T, B', I] (one agent's worth,
    repeated for each agent in ``cores``) -> [len(cores), T, B', H], one batched product."""
    if not cores:
        return core_inputs.new_empty(0, *core_inputs.shape[1:-1], 0)  # [0, T, B', 0]
    copies = len(cores) // core_inputs.shape[0]  # whole agents
    inputs = core_inputs.repeat(copies, 1, 1, 1) if copies > 1 else core_inputs  # [S', T, B', I]
    flat = inputs.reshape(len(cores), -1, inputs.shape[-1])  # [S', T*B', I]
    weight = torch.stack([core.encoder.weight for core in cores])  # [S', H, I]
    bias = torch.stack([core.encoder.bias for core in cores]).unsqueeze(1)  # [S', 1, H]
    encoded = torch.relu(torch.baddbmm(bias, flat, weight.mT))  # [S', T*B', H]
    return encoded.view(*inputs.shape[:-1], -1)  # [S', T, B', H]


class RecurrentQuantileAgent(nn.Module):
    """GRU agent network producing sorted quantiles per action (CONVENTIONS.md section 3)."""

    def __init__(
        self,
        *,
        input_dim: int,
        n_agents: int,
        n_actions: int,
        n_quantiles: int,
        hidden_dim: int = 64,
        shared: bool = True,
        zero_head: bool = False,
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.n_agents = n_agents
        self.n_actions = n_actions
        self.n_quantiles = n_quantiles
        self.hidden_dim = hidden_dim
        self.shared = shared
        n_cores = 1 if shared else n_agents
        self.cores = nn.ModuleList(
            _QuantileCore(
                input_dim=input_dim, hidden_dim=hidden_dim, n_outputs=n_actions * n_quantiles
            )
            for _ in range(n_cores)
        )
        if zero_head:  # after the default init, so the torch random stream is the same
            for core in self.cores:
                nn.init.zeros_(core.head.weight)
                nn.init.zeros_(core.head.bias)

    def initial_hidden(self, batch_size: int) -> torch.Tensor:
        """Zero hidden state [B, N, H] on the parameters' device (start of every episode)."""
        weight = self.cores[0].head.weight
        return weight.new_zeros(batch_size, self.n_agents, self.hidden_dim)  # [B, N, H]

    def step(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One acting step.

        Args:
            inputs: [B, N, I] agent inputs (see ``build_agent_inputs``).
            hidden: [B, N, H] hidden state (``initial_hidden`` at episode start).
        Returns:
            (quantiles [B, N, A, K] sorted along K, next hidden [B, N, H]).
        """
        self._check(inputs, leading=1)
        expected = (*inputs.shape[:-1], self.hidden_dim)
        if tuple(hidden.shape) != expected:
            raise ValueError(
                f"hidden {tuple(hidden.shape)} must be {expected} for inputs {tuple(inputs.shape)}"
            )
        next_hidden = self.features(inputs.unsqueeze(1), hidden)[:, 0]  # [B, N, H]
        return sort_quantiles(self.quantiles(next_hidden)), next_hidden  # [B, N, A, K]

    def forward(self, inputs: torch.Tensor, *, sort: bool = True) -> torch.Tensor:
        """Whole padded episodes from a zero hidden state.

        Args:
            inputs: [B, T, N, I] agent inputs.
            sort: False skips the sort along K (sorting commutes with picking actions).
        Returns:
            quantiles [B, T, N, A, K], sorted ascending along K unless ``sort`` is False.
        """
        quantiles = self.quantiles(self.features(inputs))  # [B, T, N, A, K]
        return sort_quantiles(quantiles) if sort else quantiles

    def features(self, inputs: torch.Tensor, hidden: torch.Tensor | None = None) -> torch.Tensor:
        """GRU outputs [B, T, N, H] for inputs [B, T, N, I] from hidden [B, N, H] (default 0).

        The learner applies the head to them with ``quantiles`` (every action) or
        ``action_quantiles`` (one action per row); see also ``sequence_features``.
        """
        return sequence_features([self], inputs, hidden)[0]

    def quantiles(self, features: torch.Tensor) -> torch.Tensor:
        """Unsorted quantiles of every action: features [..., N, H] -> [..., N, A, K]."""
        if self.shared:
            outputs = self.cores[0].head(features)  # [..., N, A*K]
        else:
            outputs = torch.stack(
                [core.head(features[..., i, :]) for i, core in enumerate(self.cores)], dim=-2
            )  # [..., N, A*K]
        return outputs.view(*features.shape[:-1], self.n_actions, self.n_quantiles)

    def action_quantiles(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Unsorted quantiles of one action per agent: features [..., N, H], actions [..., N]
        -> [..., N, K], equal to ``quantiles(features)`` gathered at ``actions`` (1/A the cost).
        """
        if self.shared:
            return action_head(self.cores[0].head, features, actions, self.n_actions)
        return torch.stack(
            [
                action_head(core.head, features[..., i, :], actions[..., i], self.n_actions)
                for i, core in enumerate(self.cores)
            ],
            dim=-2,
        )  # [..., N, K]

    def _check(self, inputs: torch.Tensor, *, leading: int) -> None:
        """Raise when inputs are not [<leading dims>, N, I]."""
        ok = inputs.dim() == leading + 2 and tuple(inputs.shape[-2:]) == (
            self.n_agents,
            self.input_dim,
        )
        if not ok:
            dims = ", ".join(["B", "T"][:leading])
            raise ValueError(
                f"inputs {tuple(inputs.shape)} must be [{dims}, N={self.n_agents}, "
                f"I={self.input_dim}]"
            )
