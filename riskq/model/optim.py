"""Optimisers for the learner's one flat parameter tensor, written out.

Speed machinery: an optimisation of ``riskq.model.reference``, whose update steps ``torch.optim``'s
RMSprop or Adam over the parameter list (``algo.update=reference``); the fast learner steps
these over one flat tensor with the same numbers (tests/test_learner_equivalence.py checks
both, and training runs under the two switches).

The learner steps a single flat parameter [P] (``riskq.model.learner.flatten_parameters``). torch's
``torch.optim`` classes do the same maths, but building one imports ``torch._dynamo`` (its
methods are wrapped to keep the compiler out), which costs seconds at every start-up: more
than a quarter of the default risk-ladder run's set-up. Each class here has torch's update (no
momentum, centring, amsgrad or weight decay), bit for bit, and its ``state_dict`` layout, so
checkpoints written with torch's optimiser load here and the other way round
(tests/test_learner_equivalence.py). ``OPTIMISERS`` maps ``algo.optimiser`` to a builder.

RMSprop (the reference's):

    square_avg <- alpha * square_avg + (1 - alpha) * grad^2
    param      <- param - lr * grad / (sqrt(square_avg) + eps)

Adam (Kingma and Ba 2015; PyMARL2's choice for QMIX on SMAC), after n steps:

    exp_avg    <- exp_avg + (1 - beta1) * (grad - exp_avg)
    exp_avg_sq <- beta2 * exp_avg_sq + (1 - beta2) * grad^2
    param      <- param - lr / (1 - beta1^n) * exp_avg / (sqrt(exp_avg_sq / (1 - beta2^n)) + eps)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from riskq.config import AlgoConfig


def flat_param_state(state_dict: dict, param: torch.nn.Parameter, tensors: tuple[str, ...]):
    """The saved state of the one flat parameter (None if saved before the first step). A
    ``state_dict`` of another layout raises ValueError rather than load in part: several
    parameter groups or tensors (torch's optimiser over the unflattened networks), or state
    tensors of another size."""
    (group,) = state_dict["param_groups"]
    if list(group["params"]) != [0] or not set(state_dict["state"]) <= {0}:
        raise ValueError(
            f"optimiser state for parameters {list(group['params'])}; this learner steps one "
            f"flat parameter tensor"
        )
    state = state_dict["state"].get(0)
    for name in tensors if state is not None else ():
        if tuple(state[name].shape) != tuple(param.shape):
            raise ValueError(
                f"optimiser {name} of shape {tuple(state[name].shape)} for a parameter of shape "
                f"{tuple(param.shape)}"
            )
    return state


class RMSprop:
    """RMSprop on one parameter tensor [P]; reads ``param.grad``."""

    def __init__(self, param: torch.nn.Parameter, *, lr: float, alpha: float, eps: float) -> None:
        self.param, self.lr, self.alpha, self.eps = param, lr, alpha, eps
        self.square_avg = torch.zeros_like(param, memory_format=torch.preserve_format)  # [P]
        self.steps = torch.tensor(0.0)  # torch keeps the step count as a float tensor

    @torch.no_grad()
    def step(self) -> None:
        grad = self.param.grad
        if grad is None:
            return
        self.steps += 1
        self.square_avg.mul_(self.alpha).addcmul_(grad, grad, value=1 - self.alpha)
        denominator = self.square_avg.sqrt().add_(self.eps)
        self.param.addcdiv_(grad, denominator, value=-self.lr)

    def state_dict(self) -> dict:
        """torch.optim.RMSprop's layout: ``state`` of parameter 0 and one ``param_groups`` entry."""
        group = {
            "lr": self.lr,
            "alpha": self.alpha,
            "eps": self.eps,
            "weight_decay": 0,
            "momentum": 0,
            "centered": False,
            "capturable": False,
            "foreach": None,
            "maximize": False,
            "differentiable": False,
            "params": [0],
        }
        state = {0: {"step": self.steps.clone(), "square_avg": self.square_avg.clone()}}
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a ``state_dict`` of this class or of torch.optim.RMSprop over one tensor."""
        state = flat_param_state(state_dict, self.param, ("square_avg",))
        (group,) = state_dict["param_groups"]
        self.lr, self.alpha, self.eps = group["lr"], group["alpha"], group["eps"]
        if state is None:  # saved before the first step
            self.square_avg.zero_()
            self.steps = torch.tensor(0.0)
            return
        square_avg = state["square_avg"]
        self.square_avg = square_avg.to(self.param.device, self.param.dtype).clone()
        self.steps = torch.as_tensor(state["step"], dtype=torch.float32).clone()


class Adam:
    """Adam on one parameter tensor [P]; reads ``param.grad``."""

    def __init__(
        self, param: torch.nn.Parameter, *, lr: float, betas: tuple[float, float], eps: float
    ) -> None:
        self.param, self.lr, self.betas, self.eps = param, lr, tuple(betas), eps
        self.exp_avg = torch.zeros_like(param, memory_format=torch.preserve_format)  # [P]
        self.exp_avg_sq = torch.zeros_like(param, memory_format=torch.preserve_format)  # [P]
        self.steps = torch.tensor(0.0)

    @torch.no_grad()
    def step(self) -> None:
        grad = self.param.grad
        if grad is None:
            return
        beta1, beta2 = self.betas
        self.steps += 1
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        n = float(self.steps)
        step_size = self.lr / (1 - beta1**n)
        denominator = (self.exp_avg_sq.sqrt() / (1 - beta2**n) ** 0.5).add_(self.eps)
        self.param.addcdiv_(self.exp_avg, denominator, value=-step_size)

    def state_dict(self) -> dict:
        """torch.optim.Adam's layout: ``state`` of parameter 0 and one ``param_groups`` entry."""
        group = {
            "lr": self.lr,
            "betas": self.betas,
            "eps": self.eps,
            "weight_decay": 0,
            "amsgrad": False,
            "maximize": False,
            "foreach": None,
            "capturable": False,
            "differentiable": False,
            "fused": None,
            "decoupled_weight_decay": False,
            "params": [0],
        }
        state = {
            0: {
                "step": self.steps.clone(),
                "exp_avg": self.exp_avg.clone(),
                "exp_avg_sq": self.exp_avg_sq.clone(),
            }
        }
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a ``state_dict`` of this class or of torch.optim.Adam over one tensor."""
        state = flat_param_state(state_dict, self.param, ("exp_avg", "exp_avg_sq"))
        (group,) = state_dict["param_groups"]
        self.lr, self.betas, self.eps = group["lr"], tuple(group["betas"]), group["eps"]
        if state is None:  # saved before the first step
            self.exp_avg.zero_()
            self.exp_avg_sq.zero_()
            self.steps = torch.tensor(0.0)
            return
        for name in ("exp_avg", "exp_avg_sq"):
            setattr(self, name, state[name].to(self.param.device, self.param.dtype).clone())
        self.steps = torch.as_tensor(state["step"], dtype=torch.float32).clone()


Optimiser = RMSprop | Adam

# algo.optimiser -> builder from the flat parameter and the algo config (each reads its own keys)
OPTIMISERS: dict[str, Callable[[torch.nn.Parameter, AlgoConfig], Optimiser]] = {
    "rmsprop": lambda param, cfg: RMSprop(
        param, lr=cfg.lr, alpha=cfg.optim_alpha, eps=cfg.optim_eps
    ),
    "adam": lambda param, cfg: Adam(param, lr=cfg.lr, betas=cfg.optim_betas, eps=cfg.optim_eps),
}


def build_optimiser(param: torch.nn.Parameter, cfg: AlgoConfig) -> Optimiser:
    """The optimiser ``cfg.optimiser`` names (a key of ``OPTIMISERS``, checked at start-up by
    ``riskq.run.experiment.validate``) over ``param``."""
    return OPTIMISERS[cfg.optimiser](param, cfg)
