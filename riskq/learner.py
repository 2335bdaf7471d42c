"""The learner: one update = targets, loss, optimiser step, target sync (method.md section 5).

Distributional mixers are trained with the quantile Huber loss between the predicted joint
quantiles and TD(lambda) target samples built with double-Q risk-greedy selection;
expected-value mixers (VDN, QMIX) use the same loop with a squared TD error.
Shapes: B batch, T steps, N agents, A actions, K quantiles, K' joint quantiles (K or 1).
"""

from __future__ import annotations

import copy

import torch

from riskq.buffer import EpisodeBatch
from riskq.config import AlgoConfig
from riskq.networks import RecurrentQuantileAgent, build_agent_inputs, sort_quantiles
from riskq.quantiles import quantile_huber_loss, quantile_midpoints
from riskq.risk import RiskMeasure
from riskq.targets import gather_actions, masked_argmax, td_lambda_targets


def agent_inputs(batch: EpisodeBatch, n_actions: int) -> torch.Tensor:
    """Per-step agent inputs of a batch: [B, T+1, N, O + A + N] (last action zero at t = 0)."""
    onehot = torch.nn.functional.one_hot(batch.actions, n_actions).float()  # [B, T, N, A]
    last = torch.cat([torch.zeros_like(onehot[:, :1]), onehot], dim=1)  # [B, T+1, N, A]
    return build_agent_inputs(batch.obs, last)  # [B, T+1, N, I]


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of values [B, T, ...] over valid steps mask [B, T] (trailing dims averaged)."""
    per_step = values.flatten(2).mean(-1) if values.dim() > 2 else values  # [B, T]
    weights = mask.to(per_step.dtype)  # [B, T]
    return (per_step * weights).sum() / weights.sum().clamp(min=1.0)


class Learner:
    """Owns the online and target networks and their optimiser."""

    def __init__(
        self,
        *,
        agent: RecurrentQuantileAgent,
        mixer: torch.nn.Module,
        risk_fn: RiskMeasure,
        cfg: AlgoConfig,
        n_actions: int,
    ) -> None:
        self.agent, self.mixer, self.risk_fn, self.cfg = agent, mixer, risk_fn, cfg
        self.n_actions = n_actions
        self.target_agent = copy.deepcopy(agent).requires_grad_(False)
        self.target_mixer = copy.deepcopy(mixer).requires_grad_(False)
        self.params = [*agent.parameters(), *mixer.parameters()]
        self.optimiser = torch.optim.RMSprop(
            self.params, lr=cfg.lr, alpha=cfg.optim_alpha, eps=cfg.optim_eps, foreach=True
        )
        self.episodes_at_sync = 0
        self.updates = 0

    def mix(self, mixer: torch.nn.Module, quantiles: torch.Tensor, batch: EpisodeBatch, steps):
        """Joint quantiles of chosen-action quantiles [B, T', N, K] at time slice ``steps``."""
        features = batch.agent_features[:, steps]  # [B, T', N, F]
        features = features if features.shape[-1] > 0 else None
        return mixer(quantiles, batch.state[:, steps], features)  # [B, T', K'] or [B, T', N, K]

    @torch.no_grad()
    def targets(self, batch: EpisodeBatch, inputs: torch.Tensor, online: torch.Tensor):
        """TD(lambda) target samples G [B, T, K'] from risk-greedy double-Q selection.

        online: unsorted online quantiles [B, T+1, N, A, K] (detached).
        """
        next_online = sort_quantiles(online[:, 1:])  # [B, T, N, A, K]
        greedy = masked_argmax(self.risk_fn(next_online), batch.avail_actions[:, 1:])  # [B, T, N]
        target_all = self.target_agent(inputs, sort=False)[:, 1:]  # [B, T, N, A, K]
        target_quantiles = sort_quantiles(gather_actions(target_all, greedy))  # [B, T, N, K]
        next_values = self.mix(self.target_mixer, target_quantiles, batch, slice(1, None))
        return td_lambda_targets(
            reward=batch.reward,
            terminated=batch.terminated,
            mask=batch.mask,
            next_values=next_values,  # [B, T, K']
            gamma=self.cfg.gamma,
            td_lambda=self.cfg.td_lambda,
        )

    def loss(self, predicted: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor):
        """Quantile Huber loss (distributional) or squared TD error (expected value)."""
        if self.mixer.distributional:
            tau = quantile_midpoints(
                predicted.shape[-1], dtype=predicted.dtype, device=predicted.device
            )  # [K]
            per_step = quantile_huber_loss(predicted, targets, tau, kappa=self.cfg.huber_kappa)
        else:
            per_step = (predicted - targets).pow(2).squeeze(-1)  # [B, T]
        return masked_mean(per_step, mask)

    def update(self, batch: EpisodeBatch, *, episodes_seen: int) -> dict[str, float]:
        """One gradient step on ``batch``; returns scalar metrics for the logger."""
        inputs = agent_inputs(batch, self.n_actions)  # [B, T+1, N, I]
        online = self.agent(inputs, sort=False)  # [B, T+1, N, A, K] unsorted
        # 1. targets
        targets = self.targets(batch, inputs, online.detach())  # [B, T, K']
        # 2. loss
        chosen = sort_quantiles(gather_actions(online[:, :-1], batch.actions))  # [B, T, N, K]
        predicted = self.mix(self.mixer, chosen, batch, slice(None, -1))  # [B, T, K']
        loss = self.loss(predicted, targets, batch.mask)
        # 3. optimiser step
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.optimiser.step()
        self.updates += 1
        # 4. target sync (hard, every target_update_interval episodes)
        if episodes_seen - self.episodes_at_sync >= self.cfg.target_update_interval:
            self.sync_targets(episodes_seen)
        return {
            "loss": loss.item(),
            "grad_norm": grad_norm.item(),
            "joint_mean": masked_mean(predicted.detach().mean(-1), batch.mask).item(),
            "target_mean": masked_mean(targets.mean(-1), batch.mask).item(),
        }

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
