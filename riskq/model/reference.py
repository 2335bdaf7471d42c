"""The reference update: one learning step of RiskQ and its baselines, written to be read.

RiskQ (Shen et al., "RiskQ: Risk-sensitive Multi-Agent Reinforcement Learning Value
Factorization", NeurIPS 2023, arXiv:2311.01753) trains per-agent return distributions whose
state-weighted mixture is the joint one (CONVENTIONS.md sections 3-5). This module is that
update with plain torch ops, top to bottom:

1. agent quantiles: every action's sorted quantiles from the GRU agent network (``nn.GRU``);
2. joint quantiles: the mixer (RiskQ's weighted mixture written out, every other mixer of
   ``riskq.model.mixers.MIXERS`` as it is);
3. targets: risk-greedy double-Q selection and TD(lambda) per quantile index, a loop over time;
4. loss: the quantile Huber loss from its formula (squared TD error for expected-value mixers);

then ``ReferenceLearner.update``: targets, loss, optimiser step (``torch.optim``), target sync.

``algo.update=reference`` trains with it; the default ``algo.update=fast`` trains with
``riskq.model.learner.Learner``, an optimisation of this module (hand-written GRU backward, a head
evaluated for the taken actions only, a vectorised TD(lambda), a fused loss, one flat optimiser
tensor) that gives the same numbers: tests/test_learner_equivalence.py checks the loss, the
targets, every gradient and short training runs of the two against each other.

Shapes (CONVENTIONS.md): B batch (episodes), T steps, N agents, A actions, K quantiles,
K' joint quantiles (K, or 1 for expected-value mixers), I agent input, H hidden units.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import torch

from riskq.config import AlgoConfig
from riskq.model.buffer import EpisodeBatch
from riskq.model.mixers import Mixer, RiskQMixer
from riskq.model.networks import RecurrentQuantileAgent, build_agent_inputs, previous_actions_onehot
from riskq.model.quantiles import huber, quantile_midpoints
from riskq.model.risk import RiskMeasure
from riskq.model.targets import gather_actions  # [..., N, A, K] at actions [..., N] -> [..., N, K]


# ----------------------------------------------------------------- 1. agent quantiles
def agent_inputs(batch: EpisodeBatch, n_actions: int) -> torch.Tensor:
    """Per-step agent inputs of a batch: [B, T+1, N, O + A + N] (last action zero at t = 0)."""
    last = previous_actions_onehot(batch.actions, n_actions)  # [B, T+1, N, A]
    return build_agent_inputs(batch.obs, last)  # [B, T+1, N, I]


def agent_quantiles(agent: RecurrentQuantileAgent, inputs: torch.Tensor) -> torch.Tensor:
    """Every action's quantiles [B, T, N, A, K], sorted along K, from inputs [B, T, N, I].

    Linear -> ReLU -> GRU -> Linear(H, A K) per agent (CONVENTIONS.md section 3), from the zero
    hidden state; with ``shared`` agents one core serves them all. The sort is stable: equal
    quantiles (an untrained zero head) keep their order, so gradients reach the same outputs
    as in the fast path.
    """
    batch_size, steps, n_agents, _ = inputs.shape
    outputs = []
    for i in range(n_agents):
        core = agent.cores[0 if agent.shared else i]
        encoded = torch.relu(core.encoder(inputs[:, :, i]))  # [B, T, H]
        start = encoded.new_zeros(1, batch_size, agent.hidden_dim)  # [1, B, H]
        sequence, _ = core.gru(encoded.transpose(0, 1), start)  # time-major: [T, B, H]
        outputs.append(core.head(sequence.transpose(0, 1)))  # [B, T, A*K]
    stacked = torch.stack(outputs, dim=2)  # [B, T, N, A*K]
    quantiles = stacked.view(batch_size, steps, n_agents, agent.n_actions, agent.n_quantiles)
    return torch.sort(quantiles, dim=-1, stable=True).values  # [B, T, N, A, K], non-crossing


# ----------------------------------------------------------------- 2. joint quantiles
def riskq_mixture(
    mixer: RiskQMixer,
    agent_quantiles: torch.Tensor,
    state: torch.Tensor,
    agent_features: torch.Tensor | None,
) -> torch.Tensor:
    """RiskQ's joint quantiles theta_jt[k] = sum_i kappa_i(s) theta_i[k] + c(s) (CONVENTIONS.md
    section 4): agent_quantiles [B, T, N, K], state [B, T, S] -> [B, T, K].

    kappa_i(s) >= 0 (attention over agents, scaled by |w_h(s)|) does not depend on the actions,
    and the same kappa weighs every k, so psi(theta_jt) = sum_i kappa_i psi(theta_i) + c: RIGM.
    """
    state = mixer.state_transform(state)  # [B, T, S]
    if agent_features is not None:
        agent_features = mixer.state_transform(agent_features)  # [B, T, N, F]
    kappa = mixer.mixing_weights(state, agent_features)  # [B, T, N], >= 0
    mixed = (kappa.unsqueeze(-1) * agent_quantiles).sum(dim=-2)  # [B, T, K]
    return mixed + mixer.bias(state)  # [B, T, K]


def registered_mixer(
    mixer: Mixer,
    agent_quantiles: torch.Tensor,
    state: torch.Tensor,
    agent_features: torch.Tensor | None,
) -> torch.Tensor:
    """Any mixer of ``riskq.model.mixers.MIXERS`` as it is: [B, T, N, K] -> [B, T, K'] ([B, T, N, K]
    for independent learners, which have no joint return)."""
    return mixer(agent_quantiles, state, agent_features)


MixFn = Callable[[Mixer, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
WRITTEN_OUT: dict[type[Mixer], MixFn] = {RiskQMixer: riskq_mixture}  # the others: their own


def joint_quantiles(
    mixer: Mixer, agent_quantiles: torch.Tensor, batch: EpisodeBatch, steps: slice
) -> torch.Tensor:
    """Joint quantiles [B, T', K'] of chosen-action quantiles [B, T', N, K], with the state and
    the agent features of the batch's observation steps ``steps`` (T' of them)."""
    features = batch.agent_features[:, steps]  # [B, T', N, F]
    features = features if features.shape[-1] > 0 else None  # F = 0: the env has none
    mix = WRITTEN_OUT.get(type(mixer), registered_mixer)
    return mix(mixer, agent_quantiles, batch.state[:, steps], features)  # [B, T', K']


# ----------------------------------------------------------------- 3. targets
def risk_greedy_actions(
    risk_fn: RiskMeasure, quantiles: torch.Tensor, avail_actions: torch.Tensor
) -> torch.Tensor:
    """Each agent's available action of highest psi: quantiles [B, T, N, A, K] sorted, avail
    [B, T, N, A] bool -> actions [B, T, N] (ties and padded rows: the lowest index)."""
    psi = risk_fn(quantiles)  # [B, T, N, A]
    psi = psi.masked_fill(~avail_actions, float("-inf"))  # [B, T, N, A]
    return psi.argmax(dim=-1)  # [B, T, N]


def td_lambda_targets(*, reward, terminated, mask, next_values, gamma: float, td_lambda: float):
    """TD(lambda) targets per trailing index j (each quantile on its own), backwards in time:

        G_t = r_t + gamma (1 - terminated_t) ((1 - lambda) Z_{t+1} + lambda G'_{t+1}),

    G'_{t+1} = G_{t+1} while step t+1 is valid, else Z_{t+1} (a truncated episode bootstraps
    from its last state). reward, terminated, mask [B, T]; next_values Z [B, T, ...] holds
    Z(s_{t+1}) at index t. Returns G [B, T, ...], meaningless where mask is false.
    """
    extra = (1,) * (next_values.dim() - 2)  # trailing dims of Z: (K',) or (N, K)
    targets = torch.empty_like(next_values)  # [B, T, ...]
    following = next_values[:, -1]  # G'_T = Z_T: nothing after the last step, [B, ...]
    for t in reversed(range(reward.shape[1])):
        discount = gamma * (1.0 - terminated[:, t].to(next_values.dtype))  # [B]
        blended = (1.0 - td_lambda) * next_values[:, t] + td_lambda * following  # [B, ...]
        targets[:, t] = reward[:, t].view(-1, *extra) + discount.view(-1, *extra) * blended
        if t > 0:  # G'_t for step t - 1
            valid = mask[:, t].view(-1, *extra)  # [B, 1...]
            following = torch.where(valid, targets[:, t], next_values[:, t - 1])  # [B, ...]
    return targets


@dataclasses.dataclass(frozen=True)
class Networks:
    """The online networks (trained) and their target copies (held fixed, synced by copy)."""

    agent: RecurrentQuantileAgent
    mixer: Mixer
    target_agent: RecurrentQuantileAgent
    target_mixer: Mixer


@torch.no_grad()
def td_targets(
    batch: EpisodeBatch,
    inputs: torch.Tensor,
    online: torch.Tensor,
    *,
    networks: Networks,
    risk_fn: RiskMeasure,
    cfg: AlgoConfig,
) -> torch.Tensor:
    """Target samples G [B, T, K'] (CONVENTIONS.md section 5): the online network's quantiles
    online [B, T+1, N, A, K] pick each agent's risk-greedy action at steps 1..T (double Q), the
    target agent network and the target mixer evaluate it, TD(lambda) blends the returns."""
    greedy = risk_greedy_actions(risk_fn, online[:, 1:], batch.avail_actions[:, 1:])  # [B,T,N]
    target_all = agent_quantiles(networks.target_agent, inputs)[:, 1:]  # [B, T, N, A, K]
    target_chosen = gather_actions(target_all, greedy)  # [B, T, N, K]
    next_values = joint_quantiles(networks.target_mixer, target_chosen, batch, slice(1, None))
    return td_lambda_targets(
        reward=batch.reward,
        terminated=batch.terminated,
        mask=batch.mask,
        next_values=next_values,  # [B, T, K']
        gamma=cfg.gamma,
        td_lambda=cfg.td_lambda,
    )  # [B, T, K']


# ----------------------------------------------------------------- 4. loss
def quantile_huber_loss(
    predicted: torch.Tensor, targets: torch.Tensor, kappa: float
) -> torch.Tensor:
    """sum_k mean_j |tau_k - 1{u_kj < 0}| Huber_kappa(u_kj), u_kj = G_j - theta_k
    (CONVENTIONS.md section 5): predicted [..., K] at tau_k, targets [..., J] -> [...].

    tau_k weighs the PREDICTED quantile k: each output is pulled to its own quantile of G.
    """
    tau = quantile_midpoints(predicted.shape[-1], dtype=predicted.dtype, device=predicted.device)
    td_error = targets.unsqueeze(-2) - predicted.unsqueeze(-1)  # u: [..., K, J]
    below = (td_error < 0).to(td_error.dtype)  # 1{u < 0}: [..., K, J]
    weight = (tau.unsqueeze(-1) - below).abs()  # [..., K, J]
    return (weight * huber(td_error, kappa)).mean(dim=-1).sum(dim=-1)  # [...]


def step_weights(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Weights [B, T] of a mean over the valid steps of mask [B, T]: 1 / (valid steps) or 0."""
    weights = mask.to(dtype)  # [B, T]
    return weights / weights.sum().clamp(min=1.0)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of values [B, T, ...] over valid steps mask [B, T] (trailing dims averaged)."""
    per_step = values.flatten(2).mean(-1) if values.dim() > 2 else values  # [B, T]
    return (per_step * step_weights(mask, per_step.dtype)).sum()


def td_loss(
    predicted: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    *,
    mixer: Mixer,
    cfg: AlgoConfig,
) -> torch.Tensor:
    """The loss of predicted [B, T, K'] against targets [B, T, K'] over the valid steps: the
    quantile Huber loss (distributional mixers) or the squared TD error (vdn, qmix; K' = 1)."""
    if mixer.distributional:
        per_step = quantile_huber_loss(predicted, targets, cfg.huber_kappa)  # [B, T(, N)]
    else:
        per_step = (predicted - targets).pow(2).squeeze(-1)  # [B, T]
    return masked_mean(per_step, mask)


def scale_rewards(batch: EpisodeBatch, scale: float) -> EpisodeBatch:
    """The batch with rewards [B, T] multiplied by ``scale`` (the same batch when it is 1)."""
    return batch if scale == 1.0 else dataclasses.replace(batch, reward=batch.reward * scale)


def objective(
    batch: EpisodeBatch, *, networks: Networks, risk_fn: RiskMeasure, cfg: AlgoConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targets and loss of one update: (loss, predicted [B, T, K'], targets [B, T, K']), all in
    the learner's units (rewards x ``algo.reward_scale``)."""
    batch = scale_rewards(batch, cfg.reward_scale)
    inputs = agent_inputs(batch, networks.agent.n_actions)  # [B, T+1, N, I]
    online = agent_quantiles(networks.agent, inputs)  # [B, T+1, N, A, K], differentiable
    targets = td_targets(
        batch, inputs, online.detach(), networks=networks, risk_fn=risk_fn, cfg=cfg
    )  # [B, T, K']
    taken = gather_actions(online[:, :-1], batch.actions)  # [B, T, N, K]
    predicted = joint_quantiles(networks.mixer, taken, batch, slice(None, -1))  # [B, T, K']
    loss = td_loss(predicted, targets, batch.mask, mixer=networks.mixer, cfg=cfg)  # scalar
    return loss, predicted, targets


# ----------------------------------------------------------------- the update
# algo.optimiser -> torch's optimiser over the parameter list
# (the keys of riskq.model.optim.OPTIMISERS)
TORCH_OPTIMISERS: dict[str, Callable[[list, AlgoConfig], torch.optim.Optimizer]] = {
    "rmsprop": lambda params, cfg: torch.optim.RMSprop(
        params, lr=cfg.lr, alpha=cfg.optim_alpha, eps=cfg.optim_eps
    ),
    "adam": lambda params, cfg: torch.optim.Adam(
        params, lr=cfg.lr, betas=cfg.optim_betas, eps=cfg.optim_eps
    ),
}


class ReferenceLearner:
    """The learner of ``algo.update=reference``: owns the online and target networks and
    ``torch.optim``'s optimiser over their parameters; its checkpoints hold torch's optimiser
    state. ``riskq.model.learner.Learner`` (``algo.update=fast``) is this class with faster
    steps."""

    flat_params: torch.nn.Parameter | None = None  # separate tensors: the trainer checks each

    def __init__(
        self,
        *,
        agent: RecurrentQuantileAgent,
        mixer: Mixer,
        risk_fn: RiskMeasure,
        cfg: AlgoConfig,
        n_actions: int,
    ) -> None:
        self.agent, self.mixer, self.risk_fn, self.cfg = agent, mixer, risk_fn, cfg
        self.n_actions = n_actions
        self.target_agent = copy.deepcopy(agent).requires_grad_(False)
        self.target_mixer = copy.deepcopy(mixer).requires_grad_(False)
        self.params = [*agent.parameters(), *mixer.parameters()]
        self.optimiser = self.build_optimiser()  # algo.optimiser
        self.episodes_at_sync = 0
        self.updates = 0

    def build_optimiser(self) -> torch.optim.Optimizer:
        """``algo.optimiser`` of ``TORCH_OPTIMISERS`` over the parameter list."""
        return TORCH_OPTIMISERS[self.cfg.optimiser](self.params, self.cfg)

    @property
    def networks(self) -> Networks:
        return Networks(self.agent, self.mixer, self.target_agent, self.target_mixer)

    def objective(self, batch: EpisodeBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, predicted, targets) of ``objective`` with this learner's networks."""
        return objective(batch, networks=self.networks, risk_fn=self.risk_fn, cfg=self.cfg)

    def update(self, batch: EpisodeBatch, *, episodes_seen: int) -> dict[str, float]:
        """One gradient step on ``batch``; returns scalar metrics for the logger (loss and grad
        norm in the learner's units, ``joint_mean`` and ``target_mean`` in the env's)."""
        loss, predicted, targets = self.objective(batch)  # 1. targets, 2. loss
        grad_norm = self.step(loss)  # 3. optimiser step
        if episodes_seen - self.episodes_at_sync >= self.cfg.target_update_interval:
            self.sync_targets(episodes_seen)  # 4. target sync (hard copy)
        return self.metrics(loss, grad_norm, predicted.detach(), targets, batch.mask)

    def step(self, loss: torch.Tensor) -> torch.Tensor:
        """Backward, clip to the global norm ``algo.grad_clip``, optimiser step (counted in
        ``updates``); returns the norm before the clip."""
        self.optimiser.zero_grad()
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.optimiser.step()
        self.updates += 1
        return grad_norm

    def metrics(
        self,
        loss: torch.Tensor,
        grad_norm: torch.Tensor,
        predicted: torch.Tensor,
        targets: torch.Tensor,
        mask: torch.Tensor,
    ) -> dict[str, float]:
        """The logged scalars: loss and grad norm, and the mean joint value and target over the
        valid steps of mask [B, T], in the env's reward units."""
        scale = self.cfg.reward_scale
        return {
            "loss": loss.item(),
            "grad_norm": grad_norm.item(),
            "joint_mean": masked_mean(predicted, mask).item() / scale,
            "target_mean": masked_mean(targets, mask).item() / scale,
        }

    def set_learning_rate(self, lr: float) -> None:
        """The optimiser's step size from the next update on (a schedule's value)."""
        for group in self.optimiser.param_groups:
            group["lr"] = lr

    def sync_targets(self, episodes_seen: int) -> None:
        self.target_agent.load_state_dict(self.agent.state_dict())
        self.target_mixer.load_state_dict(self.mixer.state_dict())
        self.episodes_at_sync = episodes_seen

    def state_dict(self) -> dict:
        return {
            "agent": self.agent.state_dict(),
            "mixer": self.mixer.state_dict(),
            "target_agent": self.target_agent.state_dict(),
            "target_mixer": self.target_mixer.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "episodes_at_sync": self.episodes_at_sync,
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict) -> None:
        self.agent.load_state_dict(state["agent"])
        self.mixer.load_state_dict(state["mixer"])
        self.target_agent.load_state_dict(state["target_agent"])
        self.target_mixer.load_state_dict(state["target_mixer"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.episodes_at_sync = state["episodes_at_sync"]
        self.updates = state["updates"]
