"""RMSprop for the learner's one flat parameter tensor, written out.

The learner steps a single flat parameter [P] (``riskq.learner.flatten_parameters``). torch's
``torch.optim.RMSprop`` does the same maths, but building one imports ``torch._dynamo`` (its
methods are wrapped to keep the compiler out), which costs seconds at every start-up: more
than a quarter of the default risk-ladder run's set-up. This class has torch's update (no
momentum, centring or weight decay), bit for bit, and its ``state_dict`` layout, so checkpoints
written with torch's optimiser load here and the other way round
(tests/test_learner_equivalence.py).

    square_avg <- alpha * square_avg + (1 - alpha) * grad^2
    param      <- param - lr * grad / (sqrt(square_avg) + eps)
"""

from __future__ import annotations

import torch


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
        (group,) = state_dict["param_groups"]
        self.lr, self.alpha, self.eps = group["lr"], group["alpha"], group["eps"]
        state = state_dict["state"].get(0)
        if state is None:  # saved before the first step
            self.square_avg.zero_()
            self.steps = torch.tensor(0.0)
            return
        square_avg = state["square_avg"]
        self.square_avg = square_avg.to(self.param.device, self.param.dtype).clone()
        self.steps = torch.as_tensor(state["step"], dtype=torch.float32).clone()
