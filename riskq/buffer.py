"""Episode batches and the episode replay buffer (CONVENTIONS.md section 5: replay buffer).

Shapes: B episodes, T time steps (T + 1 observations), N agents, A actions, O observation,
S state, F per-agent features (F = 0 when the env has none).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from envs.base import EnvInfo

# Fields recorded once per observation (T + 1 entries); the others once per step (T entries).
OBSERVATION_FIELDS = frozenset({"obs", "state", "avail_actions", "agent_features"})


@dataclass
class EpisodeBatch:
    """Padded episodes; step t is valid where mask[:, t] is true."""

    obs: torch.Tensor  # [B, T+1, N, O] float
    state: torch.Tensor  # [B, T+1, S] float
    avail_actions: torch.Tensor  # [B, T+1, N, A] bool
    agent_features: torch.Tensor  # [B, T+1, N, F] float (F may be 0)
    actions: torch.Tensor  # [B, T, N] long
    reward: torch.Tensor  # [B, T] float
    terminated: torch.Tensor  # [B, T] bool
    mask: torch.Tensor  # [B, T] bool

    @property
    def batch_size(self) -> int:
        return self.reward.shape[0]

    @property
    def max_steps(self) -> int:
        return self.reward.shape[1]

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def truncate(self, steps: int) -> EpisodeBatch:
        """The first ``steps`` time steps (and ``steps + 1`` observations)."""
        return EpisodeBatch(
            **{
                name: value[:, : steps + 1] if name in OBSERVATION_FIELDS else value[:, :steps]
                for name, value in self.tensors().items()
            }
        )


class ReplayBuffer:
    """A ring buffer of whole episodes, stored padded to the env's episode limit."""

    def __init__(self, *, capacity: int, info: EnvInfo, device: torch.device | str = "cpu") -> None:
        """Room for ``capacity`` episodes of at most ``info.episode_limit`` steps."""
        if capacity < 1:
            raise ValueError(f"algo.buffer_size must be >= 1, got {capacity}")
        self.capacity = capacity
        self.max_steps = limit = info.episode_limit
        n, a, f = info.n_agents, info.n_actions, info.agent_feature_dim
        self.storage: dict[str, torch.Tensor] = {
            "obs": torch.zeros(capacity, limit + 1, n, info.obs_dim),  # [B, T+1, N, O]
            "state": torch.zeros(capacity, limit + 1, info.state_dim),  # [B, T+1, S]
            "avail_actions": torch.zeros(capacity, limit + 1, n, a, dtype=torch.bool),
            "agent_features": torch.zeros(capacity, limit + 1, n, f),  # [B, T+1, N, F]
            "actions": torch.zeros(capacity, limit, n, dtype=torch.long),  # [B, T, N]
            "reward": torch.zeros(capacity, limit),  # [B, T]
            "terminated": torch.zeros(capacity, limit, dtype=torch.bool),  # [B, T]
            "mask": torch.zeros(capacity, limit, dtype=torch.bool),  # [B, T]
        }
        self.storage = {name: value.to(device) for name, value in self.storage.items()}
        self.lengths = np.zeros(capacity, dtype=np.int64)  # valid steps of each stored episode
        self.cursor = 0
        self.size = 0

    def add(self, batch: EpisodeBatch) -> None:
        """Store every episode of ``batch`` (oldest episodes are overwritten first)."""
        if batch.max_steps > self.max_steps:
            raise ValueError(f"episodes of {batch.max_steps} steps exceed limit {self.max_steps}")
        slots = (self.cursor + np.arange(batch.batch_size)) % self.capacity  # [B]
        index = torch.as_tensor(slots)
        for name, value in batch.tensors().items():
            target = self.storage[name]
            target[index] = 0
            target[index, : value.shape[1]] = value.to(target.device)
        self.lengths[slots] = batch.mask.sum(dim=1).cpu().numpy()
        self.cursor = int((self.cursor + batch.batch_size) % self.capacity)
        self.size = min(self.size + batch.batch_size, self.capacity)

    def can_sample(self, batch_size: int) -> bool:
        return self.size >= batch_size

    def sample(self, batch_size: int, rng: np.random.Generator) -> EpisodeBatch:
        """``batch_size`` distinct stored episodes, cut to the longest of them."""
        slots = rng.choice(self.size, size=batch_size, replace=False)  # [B]
        steps = int(self.lengths[slots].max())
        index = torch.as_tensor(slots)
        batch = EpisodeBatch(**{name: value[index] for name, value in self.storage.items()})
        return batch.truncate(steps)

    def state_dict(self) -> dict:
        """The stored episodes and counters, for exact resume."""
        return {
            "storage": {name: value[: self.size].clone() for name, value in self.storage.items()},
            "lengths": self.lengths[: self.size].copy(),
            "cursor": self.cursor,
            "size": self.size,
        }

    def load_state_dict(self, state: dict) -> None:
        size = state["size"]
        for name, value in state["storage"].items():
            self.storage[name][:size] = value
        self.lengths[:size] = state["lengths"]
        self.cursor = state["cursor"]
        self.size = size
