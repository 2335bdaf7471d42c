"""Environments for riskq: toy games with known answers and adapters for external suites.

``ENVS`` maps a config name to the class implementing it (imported lazily, so that optional
packages are only needed for the envs that use them). Every env is available as a batched
env for fast collection (``make_batched_env``) and as a PettingZoo ``ParallelEnv``
(``make_parallel_env``); the two share one definition of the dynamics.
"""

from __future__ import annotations

import importlib
from typing import Any

from envs.base import BatchedEnv, EnvInfo, EnvObs, EnvStep

ENVS: dict[str, str] = {
    "matrix": "envs.matrix:MatrixGame",
    "macf": "envs.macf:CarFollowing",
    "macn": "envs.macn:CliffNavigation",
    "pettingzoo": "envs.pettingzoo_adapter:PettingZooEnv",
    "gym_ma": "envs.gym_adapter:GymMultiAgentEnv",
    "smax": "envs.smax:SmaxEnv",
}

__all__ = [
    "ENVS",
    "BatchedEnv",
    "EnvInfo",
    "EnvObs",
    "EnvStep",
    "env_class",
    "make_batched_env",
    "make_parallel_env",
]


def env_class(name: str) -> type[BatchedEnv]:
    """The class registered under ``name``; unknown names list the valid ones."""
    if name not in ENVS:
        raise ValueError(f"unknown env '{name}'; valid choices: {', '.join(sorted(ENVS))}")
    module_name, class_name = ENVS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def make_batched_env(name: str, /, *, num_envs: int = 1, seed: int | None = None, **kwargs: Any):
    """A ``BatchedEnv`` with ``num_envs`` copies of env ``name`` built from ``kwargs``."""
    return env_class(name)(num_envs=num_envs, seed=seed, **kwargs)


def make_parallel_env(name: str, /, *, seed: int | None = None, **kwargs: Any):
    """A PettingZoo ``ParallelEnv`` over one copy of env ``name``."""
    from envs.parallel import BatchedParallelEnv

    return BatchedParallelEnv(make_batched_env(name, num_envs=1, seed=seed, **kwargs))
