"""Episode batches and the episode replay buffer (CONVENTIONS.md section 5: replay buffer).

``EpisodeBatch`` declares every episode field once, with its layout (``FieldLayout``: shape
after [B, T(+1)] in terms of the env's ``EnvInfo``, dtype, one entry per observation or per
step); the runner's recorder and the replay buffer's storage are built from that declaration.
Adding a field is one line here plus filling it in ``riskq.run.runner`` (from ``EnvObs`` when the
field has the same name as an ``EnvObs`` attribute, automatically).

Shapes: B episodes, T time steps (T + 1 observations), N agents, A actions, O observation,
S state, F per-agent features (F = 0 when the env has none).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Annotated, get_type_hints

import numpy as np
import torch

from envs.base import EnvInfo


@dataclass(frozen=True)
class FieldLayout:
    """How one episode field is stored: [B, T+1, *dims] (per observation) or [B, T, *dims]."""

    dims: tuple[str, ...]  # EnvInfo attributes giving the sizes after the time axis
    dtype: torch.dtype
    per_observation: bool  # T + 1 entries (one per observation) or T (one per step)

    def shape(self, info: EnvInfo, episodes: int) -> tuple[int, ...]:
        """[episodes, episode_limit (+1), *dims] for the env described by ``info``."""
        steps = info.episode_limit + int(self.per_observation)
        return (episodes, steps, *(getattr(info, dim) for dim in self.dims))

    def entries(self, steps: int) -> int:
        """Time entries of an episode of ``steps`` steps: steps + 1 observations or steps."""
        return steps + int(self.per_observation)


def per_observation(*dims: str, dtype: torch.dtype = torch.float32) -> FieldLayout:
    """A field with one entry per observation: [B, T+1, *dims]."""
    return FieldLayout(dims, dtype, per_observation=True)


def per_step(*dims: str, dtype: torch.dtype = torch.float32) -> FieldLayout:
    """A field with one entry per step: [B, T, *dims]."""
    return FieldLayout(dims, dtype, per_observation=False)


@dataclass
class EpisodeBatch:
    """Padded episodes; step t is valid where mask[:, t] is true. Each field's annotation
    carries its layout: this class is the one declaration of the episode fields."""

    obs: Annotated[torch.Tensor, per_observation("n_agents", "obs_dim")]  # [B, T+1, N, O]
    state: Annotated[torch.Tensor, per_observation("state_dim")]  # [B, T+1, S]
    # [B, T+1, N, A]
    avail_actions: Annotated[
        torch.Tensor, per_observation("n_agents", "n_actions", dtype=torch.bool)
    ]
    # [B, T+1, N, F] (F = 0 when the env has no per-agent features)
    agent_features: Annotated[torch.Tensor, per_observation("n_agents", "agent_feature_dim")]
    actions: Annotated[torch.Tensor, per_step("n_agents", dtype=torch.long)]  # [B, T, N]
    reward: Annotated[torch.Tensor, per_step()]  # [B, T]
    terminated: Annotated[torch.Tensor, per_step(dtype=torch.bool)]  # [B, T]
    mask: Annotated[torch.Tensor, per_step(dtype=torch.bool)]  # [B, T]

    @property
    def batch_size(self) -> int:
        return self.reward.shape[0]

    @property
    def max_steps(self) -> int:
        return self.reward.shape[1]

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def select(self, episodes) -> EpisodeBatch:
        """The episodes ``episodes`` [b] (indices), cut to the longest of them."""
        index = torch.as_tensor(episodes, device=self.mask.device)
        picked = EpisodeBatch(**{name: value[index] for name, value in self.tensors().items()})
        return picked.truncate(int(picked.mask.sum(dim=1).max()))

    def truncate(self, steps: int) -> EpisodeBatch:
        """The first ``steps`` time steps (and ``steps + 1`` observations)."""
        return EpisodeBatch(
            **{
                name: value[:, : EPISODE_FIELDS[name].entries(steps)]
                for name, value in self.tensors().items()
            }
        )


# The episode fields in EpisodeBatch order, name -> layout, read from its annotations.
EPISODE_FIELDS: dict[str, FieldLayout] = {
    name: hint.__metadata__[0]
    for name, hint in get_type_hints(EpisodeBatch, include_extras=True).items()
}


def episode_tensors(
    info: EnvInfo, episodes: int, *, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """Zero tensors of every episode field for ``episodes`` episodes padded to the limit."""
    return {
        name: torch.zeros(layout.shape(info, episodes), dtype=layout.dtype, device=device)
        for name, layout in EPISODE_FIELDS.items()
    }


class ReplayBuffer:
    """A ring buffer of whole episodes, stored padded to the env's episode limit."""

    def __init__(self, *, capacity: int, info: EnvInfo, device: torch.device | str = "cpu") -> None:
        """Room for ``capacity`` episodes of at most ``info.episode_limit`` steps."""
        if capacity < 1:
            raise ValueError(f"algo.buffer_size must be >= 1, got {capacity}")
        self.capacity = capacity
        self.max_steps = info.episode_limit
        # every EpisodeBatch field, padded to the limit: [capacity, T(+1), ...]
        self.storage = episode_tensors(info, capacity, device=device)
        self.lengths = np.zeros(capacity, dtype=np.int64)  # valid steps of each stored episode
        # steps written for each stored episode: its batch's width (>= its length, since a
        # lock-step batch records every copy until the last one ends); zero beyond
        self.widths = np.zeros(capacity, dtype=np.int64)
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
        self.widths[slots] = batch.max_steps
        self.cursor = int((self.cursor + batch.batch_size) % self.capacity)
        self.size = min(self.size + batch.batch_size, self.capacity)

    def can_sample(self, batch_size: int) -> bool:
        return self.size >= batch_size

    def sample(self, batch_size: int, rng: np.random.Generator) -> EpisodeBatch:
        """``batch_size`` distinct stored episodes, cut to the longest of them."""
        slots = rng.choice(self.size, size=batch_size, replace=False)  # [B]
        return EpisodeBatch(**self.storage).select(slots)

    def written(self, name: str) -> torch.Tensor:
        """[size, T(+1)] bool: the entries of field ``name`` that ``add`` wrote for each stored
        episode (its batch's width); every other entry is zero."""
        layout = EPISODE_FIELDS[name]
        entries = torch.arange(layout.entries(self.max_steps))  # [T(+1)]
        widths = torch.as_tensor(self.widths[: self.size])  # [size]
        return (entries[None] < widths[:, None] + int(layout.per_observation)).to(
            self.storage[name].device
        )

    def state_dict(self) -> dict:
        """The stored episodes and counters, for exact resume. Each field keeps only the
        entries ``add`` wrote (``written``), packed as [sum of entries, *dims]: the padding up
        to the episode limit is zero and is not saved (a 3m SMAX run's full buffer had 19 of
        101 observation entries written per episode on average: a checkpoint ~5x smaller)."""
        packed = {
            name: value[: self.size][self.written(name)] for name, value in self.storage.items()
        }
        return {
            "packed": packed,  # name -> [sum of written entries, *dims]
            "widths": torch.from_numpy(self.widths[: self.size].copy()),  # [size]
            "lengths": torch.from_numpy(self.lengths[: self.size].copy()),  # [size]
            "cursor": self.cursor,
            "size": self.size,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict``'s output; also reads the unpacked layout of earlier releases
        (``storage``: every field padded to the limit, which holds the same episodes). A state
        that lacks a field, or has one this buffer does not, raises ValueError."""
        stored = state["packed"] if "packed" in state else state["storage"]
        if set(stored) != set(self.storage):
            expected = sorted(self.storage)
            raise ValueError(f"replay buffer fields {sorted(stored)} differ from {expected}")
        size = state["size"]
        self.size = size
        if "packed" in state:
            self.widths[:size] = torch.as_tensor(state["widths"]).numpy()
            for name, value in state["packed"].items():
                self.storage[name][:size] = 0
                self.storage[name][:size][self.written(name)] = value.to(self.storage[name].device)
        else:
            self.widths[:size] = self.max_steps
            for name, value in state["storage"].items():
                self.storage[name][:size] = value
        self.lengths[:size] = torch.as_tensor(state["lengths"]).numpy()
        self.cursor = state["cursor"]
