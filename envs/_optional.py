"""Helpers shared by the adapters of external suites (``pettingzoo``, ``gym_ma``).

The suites are optional extras of the package (see ``pyproject.toml``): ``import_optional``
turns a missing package into a one-line error naming the extra to install. The other helpers
turn per-agent spaces, observations, masks and rewards into the padded arrays of a
``BatchedEnv`` (N agents, A actions, O observation).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np
from gymnasium import spaces

# module prefix -> (package to install, extra in pyproject.toml)
EXTRAS: dict[str, tuple[str, str]] = {
    "mpe2": ("mpe2", "mpe"),
    "pettingzoo.sisl": ("pettingzoo[sisl]", "sisl"),
    "lbforaging": ("lbforaging", "lbforaging"),
    "rware": ("rware", "rware"),
}

# team reward from the per-agent rewards of one step (an empty step gives 0)
REWARD_REDUCERS: dict[str, Callable[[np.ndarray], float]] = {
    "sum": lambda rewards: float(np.sum(rewards)),
    "mean": lambda rewards: float(np.mean(rewards)) if rewards.size else 0.0,
}


def missing_package_message(module: str, *, env: str, id: str) -> str:
    """The one-line hint for a module of env ``id`` that cannot be imported."""
    matches = [p for p in EXTRAS if module == p or module.startswith(p + ".")]
    if not matches:
        top = module.split(".")[0]
        return f"env '{env}' id '{id}' needs the package '{top}': pip install {top}"
    package, extra = EXTRAS[max(matches, key=len)]
    return (
        f"env '{env}' id '{id}' needs the optional package '{package}': pip install -e '.[{extra}]'"
    )


def _sibling_ids(module: str) -> list[str]:
    """Versioned modules next to ``module`` (``mpe2.simple_v3``, ...), for error messages."""
    parent_name = module.rpartition(".")[0]
    parent = importlib.import_module(parent_name)
    names = [m.name for m in pkgutil.iter_modules(getattr(parent, "__path__", []))]
    return sorted(f"{parent_name}.{name}" for name in names if re.search(r"_v\d+$", name))


def import_optional(module: str, *, env: str, id: str) -> ModuleType:
    """Import ``module``; a missing optional package becomes an ImportError naming its extra.

    A missing leaf module inside an installed package is a typo in the id: ValueError that lists
    the versioned modules of that package.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name == module and "." in module:
            valid = ", ".join(_sibling_ids(module))
            raise ValueError(f"env '{env}': unknown id '{id}'; valid choices: {valid}") from None
        raise ImportError(missing_package_message(module, env=env, id=id)) from err


def reward_reducer(name: str) -> Callable[[np.ndarray], float]:
    """The team-reward reducer registered under ``name``."""
    if name not in REWARD_REDUCERS:
        valid = ", ".join(sorted(REWARD_REDUCERS))
        raise ValueError(f"unknown reward mode '{name}'; valid choices: {valid}")
    return REWARD_REDUCERS[name]


def discrete_size(space: spaces.Space, *, env: str, id: str, agent: str) -> int:
    """Number of actions of a Discrete space starting at 0; any other space is refused."""
    if not isinstance(space, spaces.Discrete):
        raise ValueError(
            f"env '{env}' id '{id}' agent '{agent}' has action space {space}; "
            "valid choices: Discrete"
        )
    if int(space.start) != 0:
        raise ValueError(f"env '{env}' id '{id}' agent '{agent}': Discrete start must be 0")
    return int(space.n)


def split_obs(observation: Any) -> tuple[Any, Any]:
    """(observation, action mask or None) from a plain or ``{"observation", "action_mask"}`` obs."""
    if isinstance(observation, dict) and "observation" in observation:
        return observation["observation"], observation.get("action_mask")
    return observation, None


def obs_size(space: spaces.Space) -> int:
    """Flat size of one agent's observation (the ``observation`` entry of a Dict space)."""
    if isinstance(space, spaces.Dict) and "observation" in space.spaces:
        space = space["observation"]
    if space.shape is None:
        raise ValueError(f"observation space {space} has no shape; valid choices: Box, Discrete")
    return int(np.prod(space.shape))


def padded(values: Any, *, width: int) -> np.ndarray:
    """Flatten ``values`` to float32 and pad it with zeros to ``width``: [width]."""
    flat = np.asarray(values, dtype=np.float32).reshape(-1)  # [O_agent]
    row = np.zeros(width, dtype=np.float32)  # [width]
    row[: flat.size] = flat
    return row


def avail_row(mask: Any, *, n_actions: int, width: int) -> np.ndarray:
    """Available actions of one agent: its mask (all True if None), False beyond: [width]."""
    row = np.zeros(width, dtype=bool)  # [A]
    row[:n_actions] = True if mask is None else np.asarray(mask, dtype=bool).reshape(-1)
    return row


def noop_row(*, width: int) -> np.ndarray:
    """Avail row of an agent that has finished: only action 0 (a no-op it sends nowhere): [A]."""
    row = np.zeros(width, dtype=bool)  # [A]
    row[0] = True
    return row


def seeds_for(rng: np.random.Generator, count: int) -> Sequence[int]:
    """One reset seed per env copy, drawn from the adapter's generator."""
    return [int(s) for s in rng.integers(2**31 - 1, size=count)]  # [E]
