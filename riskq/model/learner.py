"""The fast learner: ``riskq.model.reference``'s update, optimised (CONVENTIONS.md section 5).

One update = targets, loss, optimiser step, target sync, as in ``riskq.model.reference``, which
writes the update out plainly and which ``algo.update=reference`` trains with. ``Learner`` is
``ReferenceLearner`` with faster steps and the same numbers: both networks' GRUs in one time
loop with a hand-written backward (``riskq.model.kernels``), the head evaluated for the taken
actions only, a vectorised TD(lambda) (``riskq.model.targets``), a fused quantile Huber loss
(``riskq.model.quantiles``), one target sample for one-step games, and one flat parameter tensor
for the clip and the optimiser (``riskq.model.optim``). tests/test_learner_equivalence.py checks it
against ``riskq.model.reference``: targets, loss and every gradient, and short training runs.

Distributional mixers are trained with the quantile Huber loss between the predicted joint
quantiles and TD(lambda) target samples built with double-Q risk-greedy selection;
expected-value mixers (VDN, QMIX) use the same loop with a squared TD error.
Shapes: B batch, T steps, N agents, A actions, K quantiles, K' joint quantiles (K or 1).
"""

from __future__ import annotations

import numpy as np
import torch

from riskq.model.buckets import length_buckets
from riskq.model.buffer import EpisodeBatch
from riskq.model.kernels import retain_freed_memory, sort_quantiles, sort_quantiles_
from riskq.model.networks import sequence_features
from riskq.model.optim import Optimiser, build_optimiser
from riskq.model.quantiles import quantile_huber_loss, quantile_midpoints
from riskq.model.reference import (
    ReferenceLearner,
    agent_inputs,
    masked_mean,
    scale_rewards,
    step_weights,
)
from riskq.model.targets import masked_argmax, td_lambda_targets

__all__ = ["Learner", "agent_inputs", "flatten_parameters"]


def flatten_parameters(params: list[torch.nn.Parameter]) -> torch.nn.Parameter:
    """One flat parameter [P] whose storage holds ``params`` as views.

    Gradient clipping and the optimisers (riskq.model.optim) are elementwise over all parameters, so
    stepping one flat tensor is the same maths in a handful of ops instead of several per
    parameter (for the one-step matrix games, most of the optimiser's cost).
    ``Learner.gather_gradients`` copies the parameters' gradients into its ``.grad``.
    """
    flat = torch.nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))  # [P]
    offset = 0
    for param in params:
        size = param.numel()
        param.data = flat.data[offset : offset + size].view_as(param)
        offset += size
    return flat


def pad_steps(values: torch.Tensor, steps: int) -> torch.Tensor:
    """values [b, t, ...] zero-padded along time to [b, steps, ...]."""
    padded = values.new_zeros(values.shape[0], steps, *values.shape[2:])
    padded[:, : values.shape[1]] = values
    return padded


class Learner(ReferenceLearner):
    """``ReferenceLearner`` with the fast steps (module docstring); ``algo.update=fast``."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._tau: dict[tuple, torch.Tensor] = {}  # quantile_fractions' cache
        if self.params[0].device.type == "cpu":
            retain_freed_memory()  # big per-update temporaries: no page faults after the first

    def build_optimiser(self) -> Optimiser:
        """``riskq.model.optim``'s optimiser over one flat tensor holding every parameter."""
        self.flat_params = flatten_parameters(self.params)  # one tensor for clip and optimiser
        return build_optimiser(self.flat_params, self.cfg)  # algo.optimiser

    def mix(self, mixer: torch.nn.Module, quantiles: torch.Tensor, batch: EpisodeBatch, steps):
        """Joint quantiles of chosen-action quantiles [B, T', N, K] at time slice ``steps``."""
        features = batch.agent_features[:, steps]  # [B, T', N, F]
        features = features if features.shape[-1] > 0 else None
        return mixer(quantiles, batch.state[:, steps], features)  # [B, T', K'] or [B, T', N, K]

    @torch.no_grad()
    def targets(
        self, batch: EpisodeBatch, next_features: torch.Tensor, target_features: torch.Tensor
    ) -> torch.Tensor:
        """TD(lambda) target samples G [B, T, K'] from risk-greedy double-Q selection.

        next_features, target_features: GRU features [B, T, N, H] of the online and the target
        network at steps 1..T. The online network picks the risk-greedy action (psi of every
        action's sorted quantiles); the target network evaluates only that action.
        """
        next_online = sort_quantiles_(self.agent.quantiles(next_features))  # [B, T, N, A, K]
        greedy = masked_argmax(self.risk_fn(next_online), batch.avail_actions[:, 1:])  # [B, T, N]
        target_quantiles = self.target_agent.action_quantiles(target_features, greedy)
        target_quantiles = sort_quantiles_(target_quantiles)  # [B, T, N, K]
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
            tau = self.quantile_fractions(predicted)  # [K]
            per_step = quantile_huber_loss(predicted, targets, tau, kappa=self.cfg.huber_kappa)
        else:
            per_step = (predicted - targets).pow(2).squeeze(-1)  # [B, T]
        return masked_mean(per_step, mask)

    def quantile_fractions(self, predicted: torch.Tensor) -> torch.Tensor:
        """tau [K] for predicted [..., K], built once per (K, dtype, device)."""
        key = (predicted.shape[-1], predicted.dtype, predicted.device)
        if key not in self._tau:
            self._tau[key] = quantile_midpoints(key[0], dtype=key[1], device=key[2])  # [K]
        return self._tau[key]

    def features(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """GRU features [B, T+1, N, H] of the online (differentiable) and the target network,
        from agent inputs [B, T+1, N, I], in one time loop."""
        online, target = sequence_features([self.agent, self.target_agent], inputs)
        return online, target.detach()

    def predict(self, batch: EpisodeBatch, features: torch.Tensor) -> torch.Tensor:
        """Joint quantiles [B, T, K'] of the taken actions from GRU features [B, T, N, H].

        The head runs only for the taken actions, then sorts (sorting commutes with picking).
        """
        chosen = self.agent.action_quantiles(features, batch.actions)  # [B, T, N, K] unsorted
        return self.mix(self.mixer, sort_quantiles(chosen), batch, slice(None, -1))

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None  # backward then hands its gradients over without a copy

    def gather_gradients(self) -> torch.Tensor:
        """The parameters' gradients as one flat tensor [P], set as ``flat_params.grad``."""
        if self.params[0].data_ptr() != self.flat_params.data_ptr():
            raise RuntimeError("the learner's networks were moved after it was built")
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        self.flat_params.grad = torch.cat([g.reshape(-1) for g in grads])  # [P]
        return self.flat_params.grad

    def apply_gradients(self) -> torch.Tensor:
        """Clip the gradients to a global norm and take an optimiser step; returns the norm.

        The clip is ``torch.nn.utils.clip_grad_norm_``'s, written out for the one flat tensor
        (its generic version costs more than the rest of a matrix-game update's optimiser step).
        """
        grad = self.gather_gradients()  # [P]
        grad_norm = torch.linalg.vector_norm(grad)
        grad.mul_((self.cfg.grad_clip / (grad_norm + 1e-6)).clamp(max=1.0))
        self.optimiser.step()
        return grad_norm

    def objective(self, batch: EpisodeBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Steps 1 and 2 of an update: (loss, predicted [B, T, K'], targets [B, T, K' or 1]).

        With ``algo.length_buckets`` > 1 the batch is split into sub-batches of similar episode
        length (``riskq.model.buckets``), each padded only to its own longest episode; their
        losses are recombined as one mean over the batch's valid steps, the same loss.
        """
        groups = self.buckets(batch)
        if len(groups) == 1:
            return self.padded_objective(batch)
        parts = [self.padded_objective(batch.select(episodes)) for episodes in groups]
        valid = [float(batch.mask[episodes].sum()) for episodes in groups]
        loss = sum(part[0] * (count / sum(valid)) for part, count in zip(parts, valid, strict=True))
        order = torch.as_tensor(np.argsort(np.concatenate(groups)), device=batch.mask.device)
        predicted = torch.cat([pad_steps(part[1], batch.max_steps) for part in parts])[order]
        targets = torch.cat([pad_steps(part[2], batch.max_steps) for part in parts])[order]
        return loss, predicted, targets  # predicted, targets: [B, T, ...] in the batch's order

    def buckets(self, batch: EpisodeBatch) -> list[np.ndarray]:
        """Episode indices of the sub-batches ``objective`` computes separately: one group
        (the whole batch) unless ``algo.length_buckets`` > 1 and episodes last several steps."""
        everything = [np.arange(batch.batch_size)]
        if self.cfg.length_buckets <= 1 or batch.max_steps <= 1:
            return everything
        lengths = batch.mask.sum(dim=1).cpu().numpy()  # [B]
        return length_buckets(lengths, max_buckets=self.cfg.length_buckets)

    def padded_objective(
        self, batch: EpisodeBatch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``objective`` on the whole batch as padded: (loss, predicted, targets).

        Targets are samples of the target distribution; one-step games need one (J = 1).
        Rewards enter multiplied by ``algo.reward_scale``, so all three are in those units.
        """
        batch = scale_rewards(batch, self.cfg.reward_scale)
        if (batch.mask & ~batch.terminated).any():
            inputs = agent_inputs(batch, self.n_actions)  # [B, T+1, N, I]
            # 1. targets
            features, target_features = self.features(inputs)  # [B, T+1, N, H] each
            targets = self.targets(batch, features[:, 1:].detach(), target_features[:, 1:])
            # 2. prediction
            predicted = self.predict(batch, features[:, :-1])  # [B, T, K']
        else:  # every valid step ends its episode (one-step games): G_t = r_t, nothing at T
            targets = self.terminal_targets(batch)
            predicted = self.online_prediction(batch)
        return self.loss(predicted, targets, batch.mask), predicted, targets

    def online_prediction(self, batch: EpisodeBatch) -> torch.Tensor:
        """``predict`` from the online network's features at steps 0..T-1 alone (no target
        network, no step T): joint quantiles [B, T, K'] of the taken actions."""
        inputs = agent_inputs(batch, self.n_actions)[:, : batch.max_steps]  # [B, T, N, I]
        return self.predict(batch, self.agent.features(inputs))

    def terminal_targets(self, batch: EpisodeBatch) -> torch.Tensor:
        """``targets`` when every valid step terminates: G_t = r_t (TD(lambda)'s discount
        1 - terminated is 0 there), as one target sample, [B, T, (N,) 1]. All K' samples would
        be r_t, and the quantile loss averages over samples, so one is the same loss."""
        trailing = () if self.mixer.joint else (self.agent.n_agents,)
        return batch.reward.view(*batch.reward.shape, *(1,) * len(trailing), 1)  # [B, T, (N,) 1]

    def metrics(self, loss, grad_norm, predicted, targets, mask) -> dict[str, float]:
        """``ReferenceLearner.metrics`` in one copy from the tensors (targets may be one
        sample, [B, T, (N,) 1])."""
        pair = torch.stack([predicted, targets.expand_as(predicted)])  # [2, B, T, ...]
        weights = step_weights(mask, pair.dtype)  # [B, T]
        means = (pair.flatten(3).mean(-1) * weights).sum((1, 2))  # joint, target: [2]
        means = means / self.cfg.reward_scale  # in the env's reward units
        metrics = torch.cat([torch.stack([loss.detach(), grad_norm]), means]).tolist()  # one copy
        return dict(zip(("loss", "grad_norm", "joint_mean", "target_mean"), metrics, strict=True))

    def step(self, loss: torch.Tensor) -> torch.Tensor:
        """Backward of ``loss``, clip and optimiser step (counted in ``updates``); the grad norm."""
        self.zero_grad()
        loss.backward()
        grad_norm = self.apply_gradients()
        self.updates += 1
        return grad_norm

    def set_learning_rate(self, lr: float) -> None:
        """The optimiser's step size from the next update on (a schedule's value)."""
        self.optimiser.lr = lr
