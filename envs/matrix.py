"""Stochastic matrix games: one-step cooperative games whose risk-optimal answers are exact.

CONVENTIONS.md section 8.1. A game is data: ``n_agents``, ``action_names``, the probabilities of m
world events drawn once per episode and shared by all agents (shared events make outcomes
comonotone), and the team payoff of every joint action under every event. The env exposes
each joint action's exact return distribution, so the psi-optimal joint action under any risk
measure psi (CONVENTIONS.md section 2) is a function call: ``exact_optimum(risk_fn)``.

Shapes: E env copies, N agents, A actions (max over agents), m events, K quantile atoms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from envs.base import BatchedEnv, EnvInfo, EnvObs, EnvStep

MAX_ATOMS = 10_000  # largest common denominator of event_probs for exact risk values
PROB_TOLERANCE = 1e-6


def _is_list(value: Any) -> bool:
    """A list-like config value (a list, a tuple or an OmegaConf ListConfig), not a string."""
    return isinstance(value, Sequence) and not isinstance(value, str)


def _action_names(action_names: Any, n_agents: int) -> list[tuple[str, ...]]:
    """One list of names shared by every agent, or one list per agent -> a tuple per agent."""
    if not _is_list(action_names) or not action_names:
        raise ValueError(f"action_names must be a non-empty list, got {action_names!r}")
    if all(isinstance(name, str) for name in action_names):
        per_agent = [tuple(action_names)] * n_agents
    elif all(_is_list(names) for names in action_names):
        per_agent = [tuple(str(name) for name in names) for names in action_names]
        if len(per_agent) != n_agents:
            raise ValueError(
                f"action_names has {len(per_agent)} per-agent lists, expected n_agents={n_agents}"
            )
    else:
        raise ValueError("action_names must be a list of names or a list of per-agent lists")
    for agent, names in enumerate(per_agent):
        if not names or len(set(names)) != len(names):
            raise ValueError(f"action_names of agent {agent} must be non-empty and unique: {names}")
    return per_agent


def _event_probs(event_probs: Any) -> np.ndarray:
    """Validated event probabilities [m], renormalised to sum to exactly 1."""
    probs = _as_array(event_probs, key="event_probs")  # [m]
    if probs.ndim != 1 or probs.size == 0:
        raise ValueError(f"event_probs must be a flat non-empty list, got shape {probs.shape}")
    if np.any(probs < 0):
        raise ValueError(f"event_probs must be non-negative, got {probs.tolist()}")
    if abs(probs.sum() - 1.0) > PROB_TOLERANCE:
        raise ValueError(f"event_probs must sum to 1 (within 1e-6), got sum {probs.sum():.9g}")
    return probs / probs.sum()  # [m]


def _as_array(nested: Any, *, key: str) -> np.ndarray:
    """A finite float64 array from a nested list; ragged or non-numeric input is refused."""
    try:
        array = np.asarray(nested, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a rectangular nested list of numbers") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{key} must contain only finite numbers")
    return array


def _check_shape(array: np.ndarray, expected: tuple[int, ...], *, key: str) -> None:
    if array.shape != expected:
        raise ValueError(f"{key} must have shape {list(expected)}, got {list(array.shape)}")


def _joint_payoffs(
    joint_payoffs: Any, agent_payoffs: Any, *, action_counts: list[int], n_events: int
) -> np.ndarray:
    """The team payoff of every joint action and event [A_1, ..., A_N, m] from either form."""
    if (joint_payoffs is None) == (agent_payoffs is None):
        raise ValueError("give exactly one of joint_payoffs and agent_payoffs")
    if joint_payoffs is not None:
        payoffs = _as_array(joint_payoffs, key="joint_payoffs")  # [A_1, ..., A_N, m]
        _check_shape(payoffs, (*action_counts, n_events), key="joint_payoffs")
        return payoffs
    n_agents = len(action_counts)
    if not _is_list(agent_payoffs) or len(agent_payoffs) != n_agents:
        raise ValueError(f"agent_payoffs must be a list of n_agents={n_agents} [A][m] tables")
    payoffs = np.zeros((*action_counts, n_events))  # [A_1, ..., A_N, m]
    for agent, table in enumerate(agent_payoffs):
        contribution = _as_array(table, key=f"agent_payoffs[{agent}]")  # [A_i, m]
        _check_shape(contribution, (action_counts[agent], n_events), key=f"agent_payoffs[{agent}]")
        axes = [1] * n_agents
        axes[agent] = action_counts[agent]
        payoffs = payoffs + contribution.reshape(*axes, n_events)  # [A_1, ..., A_N, m]
    return payoffs


def atom_counts(probs: np.ndarray, *, max_atoms: int = MAX_ATOMS) -> np.ndarray:
    """Equal-mass atoms per event [m] (int): event j gets counts[j] of K = counts.sum() atoms.

    Exact when every probability is a multiple of 1/K with K <= ``max_atoms``.
    """
    fractions = [Fraction(float(p)).limit_denominator(max_atoms) for p in probs]
    n_atoms = math.lcm(*(f.denominator for f in fractions))
    counts = np.array([int(f * n_atoms) for f in fractions])  # [m]
    close = np.max(np.abs(counts / n_atoms - probs)) <= PROB_TOLERANCE
    if n_atoms > max_atoms or counts.sum() != n_atoms or not close:
        raise ValueError(
            f"event_probs {np.round(probs, 9).tolist()} are not multiples of 1/K for a "
            f"K <= {max_atoms}; exact risk values need such a K"
        )
    return counts


def quantile_atoms(values: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """A discrete distribution as K sorted equal-mass atoms: values [..., m], probs [m] -> [..., K].

    The K-atom distribution equals the discrete one, so every risk measure of CONVENTIONS.md
    section 2 applied to it gives the exact value.
    """
    counts = atom_counts(probs)  # [m]
    return np.sort(np.repeat(values, counts, axis=-1), axis=-1)  # [..., K]


def load_game(path: str | Path) -> dict[str, Any]:
    """The MatrixGame keyword arguments of a game YAML under configs/env/.

    That is ``env.args``, with ``label`` (the game's name) defaulting to ``env.label``.
    """
    with open(path) as stream:
        config = yaml.safe_load(stream)
    env = config.get("env") if isinstance(config, dict) else None
    if not isinstance(env, dict) or not isinstance(env.get("args"), dict):
        raise ValueError(f"{path}: expected a mapping env: {{name: matrix, args: {{...}}}}")
    if env.get("name") != "matrix":
        raise ValueError(f"{path}: env.name must be 'matrix', got {env.get('name')!r}")
    args = dict(env["args"])
    args.setdefault("label", env.get("label", "matrix"))
    return args


class MatrixGame(BatchedEnv):
    """E copies of a one-step stochastic matrix game (CONVENTIONS.md section 8.1).

    Agents with fewer actions than the largest count see the extra actions as unavailable.
    Observation: ones [E, N, 1]; state: ones [E, 1]; every episode lasts one step and ends
    in a true termination with the team payoff of the joint action under one shared event.
    """

    has_exact_optimum = True  # exact_optimum, exact_risk_values, action_label below

    def __init__(
        self,
        *,
        num_envs: int = 1,
        seed: int | None = None,
        n_agents: int,
        action_names: list[str] | list[list[str]],
        event_probs: list[float],
        joint_payoffs: list | None = None,
        agent_payoffs: list | None = None,
        label: str = "matrix",
    ) -> None:
        super().__init__(num_envs=num_envs, seed=seed)
        if not isinstance(n_agents, int) or n_agents < 1:
            raise ValueError(f"n_agents must be an integer >= 1, got {n_agents!r}")
        self.label = label
        self.action_names = _action_names(action_names, n_agents)
        self.event_probs = _event_probs(event_probs)  # [m]
        action_counts = [len(names) for names in self.action_names]
        self.payoffs = _joint_payoffs(  # [A_1, ..., A_N, m]
            joint_payoffs,
            agent_payoffs,
            action_counts=action_counts,
            n_events=self.event_probs.size,
        )
        n_actions = max(action_counts)
        self._avail = np.arange(n_actions)[None, :] < np.array(action_counts)[:, None]  # [N, A]
        pad = [(0, n_actions - count) for count in action_counts] + [(0, 0)]
        self._padded_payoffs = np.pad(self.payoffs, pad)  # [A, ..., A, m]
        self.info = EnvInfo(
            n_agents=n_agents,
            n_actions=n_actions,
            obs_dim=1,
            state_dim=1,
            agent_feature_dim=0,
            episode_limit=1,
        )
        self._done: np.ndarray | None = None  # [E] bool, None before the first reset

    @classmethod
    def from_yaml(cls, path: str | Path, **kwargs: Any) -> MatrixGame:
        """The game of a YAML file (see ``load_game``); ``kwargs`` override its arguments."""
        return cls(**{**load_game(path), **kwargs})

    def _observe(self) -> EnvObs:
        E, N = self.num_envs, self.info.n_agents
        return EnvObs(
            obs=np.ones((E, N, 1), dtype=np.float32),  # [E, N, O=1]
            state=np.ones((E, 1), dtype=np.float32),  # [E, S=1]
            avail_actions=np.broadcast_to(self._avail, (E, *self._avail.shape)).copy(),  # [E, N, A]
        )

    def reset(self, seed: int | None = None) -> EnvObs:
        self.reseed(seed)
        self._done = np.zeros(self.num_envs, dtype=bool)  # [E]
        return self._observe()

    def step(self, actions: np.ndarray) -> EnvStep:
        if self._done is None:
            raise RuntimeError("call reset() before step()")
        avail = np.broadcast_to(self._avail, (self.num_envs, *self._avail.shape))  # [E, N, A]
        actions = self.validated_actions(actions, avail=avail, running=~self._done)  # [E, N]
        events = self.rng.choice(self.event_probs.size, size=self.num_envs, p=self.event_probs)
        payoff = self._padded_payoffs[(*actions.T, events)]  # [E]
        running = ~self._done  # [E]
        self._done = np.ones(self.num_envs, dtype=bool)  # [E]
        return EnvStep(
            next_obs=self._observe(),
            reward=np.where(running, payoff, 0.0).astype(np.float32),  # [E]
            terminated=running,  # [E]
            truncated=np.zeros(self.num_envs, dtype=bool),  # [E]
        )

    def return_distribution(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact team returns: values [A_1, ..., A_N, m] of each joint action, event probs [m]."""
        return self.payoffs.copy(), self.event_probs.copy()

    def exact_risk_values(self, risk_fn: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
        """psi of every joint action's return [A_1, ..., A_N].

        ``risk_fn`` maps sorted quantiles [..., K] (a float64 tensor) to [...], as the risk
        measures of ``riskq.model.risk`` do; it sees the exact distribution as K equal-mass atoms.
        """
        atoms = torch.from_numpy(quantile_atoms(self.payoffs, self.event_probs))  # [A_1.., K]
        return np.asarray(risk_fn(atoms), dtype=np.float64)  # [A_1, ..., A_N]

    def exact_optimum(
        self, risk_fn: Callable[[torch.Tensor], torch.Tensor]
    ) -> tuple[tuple[int, ...], float]:
        """The psi-optimal joint action (first in row-major order on ties) and its value."""
        values = self.exact_risk_values(risk_fn)  # [A_1, ..., A_N]
        joint = np.unravel_index(np.argmax(values), values.shape)
        return tuple(int(action) for action in joint), float(values[joint])

    def action_label(self, joint: tuple[int, ...] | np.ndarray) -> str:
        """A joint action by name, e.g. ``(M, M)``."""
        names = (self.action_names[agent][int(action)] for agent, action in enumerate(joint))
        return f"({', '.join(names)})"
