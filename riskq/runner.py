"""Episode collection: E env copies in lock-step, one batched agent forward per step.

Agents act epsilon-greedily on psi of their own quantiles among available actions, and greedily
at evaluation (CONVENTIONS.md section 5, "Acting"). Shapes: E env copies, T steps, N agents,
A actions, K quantiles, O observation, S state, F per-agent features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from envs.base import BatchedEnv, EnvObs
from riskq.buffer import EPISODE_FIELDS, EpisodeBatch, episode_tensors
from riskq.networks import RecurrentQuantileAgent, actions_onehot, build_agent_inputs
from riskq.risk import RiskMeasure


def linear_epsilon(t_env: int, *, start: float, finish: float, anneal_steps: int) -> float:
    """Epsilon annealed linearly from ``start`` to ``finish`` over ``anneal_steps`` env steps."""
    if anneal_steps <= 0:
        return finish
    fraction = min(t_env / anneal_steps, 1.0)
    return start + fraction * (finish - start)


def epsilon_greedy(
    values: np.ndarray, avail_actions: np.ndarray, epsilon: float, rng: np.random.Generator
) -> np.ndarray:
    """values [E, N, A], avail_actions [E, N, A] bool -> actions [E, N] int64.

    With probability epsilon an agent picks uniformly among its available actions.
    """
    greedy = np.where(avail_actions, values, -np.inf).argmax(axis=-1)  # [E, N]
    if epsilon <= 0.0:
        return greedy
    scores = np.where(avail_actions, rng.random(values.shape), -1.0)  # [E, N, A]
    uniform = scores.argmax(axis=-1)  # [E, N]
    explore = rng.random(greedy.shape) < epsilon  # [E, N]
    return np.where(explore, uniform, greedy)


@dataclass
class Rollout:
    """Collected episodes and their per-episode statistics."""

    batch: EpisodeBatch
    returns: np.ndarray  # [E] undiscounted team return
    lengths: np.ndarray  # [E] valid steps
    psi_chosen: float  # mean psi of the chosen actions over valid agent-steps
    env_metrics: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [E]

    @property
    def steps(self) -> int:
        return int(self.lengths.sum())


class EpisodeRecorder:
    """Preallocated arrays of every episode field (``EpisodeBatch``) for one lock-step
    collection of E episodes: ``arrays[name]`` [E, T(+1), ...] numpy views of zero tensors."""

    def __init__(self, env: BatchedEnv) -> None:
        self.tensors = episode_tensors(env.info, env.num_envs)  # CPU, padded to the limit
        self.arrays = {name: tensor.numpy() for name, tensor in self.tensors.items()}

    def observe(self, t: int, env_obs: EnvObs) -> None:
        """Observation entry ``t`` of every per-observation field, read from the ``EnvObs``
        attribute of the same name (a None one, e.g. no agent features, stays zero)."""
        for name, layout in EPISODE_FIELDS.items():
            value = getattr(env_obs, name) if layout.per_observation else None
            if value is not None:
                self.arrays[name][:, t] = value

    def record_step(self, t: int, **values: np.ndarray) -> None:
        """Step entry ``t`` of per-step fields, e.g. ``actions`` [E, N], ``reward`` [E]."""
        for name, value in values.items():
            self.arrays[name][:, t] = value

    def to_batch(self, steps: int, device: torch.device) -> EpisodeBatch:
        """The first ``steps`` steps of every episode, copied to ``device``."""
        return EpisodeBatch(
            **{
                name: tensor[:, : EPISODE_FIELDS[name].entries(steps)].clone().to(device)
                for name, tensor in self.tensors.items()
            }
        )


class Runner:
    """Collects whole episodes from every copy of ``env`` with the current agent network."""

    def __init__(
        self,
        *,
        env: BatchedEnv,
        agent: RecurrentQuantileAgent,
        risk_fn: RiskMeasure,
        rng: np.random.Generator,
        device: torch.device,
    ) -> None:
        self.env = env
        self.agent = agent
        self.risk_fn = risk_fn
        self.rng = rng
        self.device = device

    @torch.no_grad()
    def collect(self, *, epsilon: float, seed: int | None = None) -> Rollout:
        """Run one episode in every env copy (epsilon = 0 is greedy evaluation).

        ``seed`` re-seeds the env first (evaluation replays one fixed random stream).
        """
        env, info = self.env, self.env.info
        record = EpisodeRecorder(env)
        env_obs = env.reset(seed=seed)
        record.observe(0, env_obs)
        hidden = self.agent.initial_hidden(env.num_envs)  # [E, N, H]
        last_onehot = torch.zeros(env.num_envs, info.n_agents, info.n_actions, device=self.device)
        active = np.ones(env.num_envs, bool)  # [E]
        psi_sum, psi_count, t = 0.0, 0, 0
        for t in range(info.episode_limit):
            obs = torch.from_numpy(env_obs.obs).to(self.device)  # [E, N, O]
            quantiles, hidden = self.agent.step(build_agent_inputs(obs, last_onehot), hidden)
            values = self.risk_fn(quantiles).cpu().numpy()  # [E, N, A]
            actions = epsilon_greedy(values, env_obs.avail_actions, epsilon, self.rng)  # [E, N]
            chosen = np.take_along_axis(values, actions[..., None], axis=-1)[..., 0]  # [E, N]
            psi_sum += float(chosen[active].sum())
            psi_count += int(active.sum()) * info.n_agents
            step = env.step(actions)
            record.record_step(
                t,
                actions=actions,
                reward=step.reward,
                terminated=step.terminated & active,
                mask=active,
            )
            active = active & ~(step.terminated | step.truncated)
            env_obs = step.next_obs
            record.observe(t + 1, env_obs)
            last_onehot = actions_onehot(
                torch.from_numpy(actions).to(self.device), info.n_actions
            )  # [E, N, A]
            if not active.any():
                break
        reward, mask = record.arrays["reward"], record.arrays["mask"]  # [E, T]
        return Rollout(
            batch=record.to_batch(t + 1, self.device),
            returns=(reward * mask).sum(axis=1),
            lengths=mask.sum(axis=1),
            psi_chosen=psi_sum / max(psi_count, 1),
            env_metrics=env.episode_metrics(),
        )
