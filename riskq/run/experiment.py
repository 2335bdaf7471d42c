"""Builds a run's components from its config: env -> agent + mixer -> runner, buffer, learner.

Data flows one way: config -> env + agents + mixer -> runner (collects episodes) ->
buffer -> learner -> logger/checkpoint. The trainer (``riskq.run.trainer``), the evaluation of a
saved run (``riskq.run.evaluate``) and the trained-model check
(``riskq.analysis.rigm_trained``) all build their pieces here, so they cannot drift apart.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from envs import BatchedEnv, env_class
from riskq.config import TrainConfig
from riskq.model.buffer import ReplayBuffer
from riskq.model.device import usable_device
from riskq.model.learner import Learner
from riskq.model.mixers import MIXERS, make_mixer
from riskq.model.networks import RecurrentQuantileAgent, agent_input_dim
from riskq.model.reference import TORCH_OPTIMISERS, ReferenceLearner
from riskq.model.risk import RiskMeasure, empirical_risk, make_risk_measure
from riskq.run.runner import RUNNERS, Rollout, Runner

# algo.update -> the learner class: the fast update or the plain one it optimises (same numbers)
LEARNERS: dict[str, type[ReferenceLearner]] = {"fast": Learner, "reference": ReferenceLearner}
# Config keys whose values the schema's types cannot check (validate_numbers).
COUNTS = (  # each >= 1
    "t_max", "num_envs", "threads", "eval_interval", "eval_episodes", "log_interval",
    "checkpoint_interval", "algo.batch_size", "algo.buffer_size", "algo.target_update_interval",
    "algo.epsilon_anneal_steps", "algo.length_buckets", "algo.agent.hidden_dim",
    "algo.agent.n_quantiles",
    *(f"algo.mixer_args.{size}" for size in ("n_heads", "query_hidden", "key_dim", "head_hidden",
                                             "bias_hidden", "embed_dim", "hypernet_hidden")),
)  # fmt: skip
POSITIVE_REALS = ("algo.lr", "algo.grad_clip", "algo.huber_kappa", "algo.updates_per_episode",
                  "algo.optim_eps", "algo.reward_scale")  # fmt: skip
PROBABILITIES = ("algo.gamma", "algo.td_lambda", "algo.epsilon_start", "algo.epsilon_finish",
                 "algo.optim_alpha")  # fmt: skip
EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes use their own, fixed random stream
RETURN_RISKS = (("cvar", 0.1), ("cvar", 0.2), ("var", 0.1), ("var", 0.2))


def make_env(cfg: TrainConfig, *, num_envs: int, seed: int) -> BatchedEnv:
    """The configured env; bad names or arguments raise one-line ValueErrors."""
    cls = env_class(cfg.env.name)
    try:
        return cls(num_envs=num_envs, seed=seed, **cfg.env.args)
    except TypeError as error:
        raise ValueError(f"env '{cfg.env.name}' (env.args): {error}") from error


def config_value(cfg: TrainConfig, key: str):
    """The value at a dotted config key, e.g. ``algo.agent.hidden_dim``."""
    return functools.reduce(getattr, key.split("."), cfg)


def validate_numbers(cfg: TrainConfig) -> None:
    """Counts >= 1, rates finite and > 0, probabilities in [0, 1], and how they relate."""
    if cfg.seed < 0:
        raise ValueError(f"seed must be >= 0, got {cfg.seed}")
    for key in COUNTS:
        if (value := config_value(cfg, key)) < 1:
            raise ValueError(f"{key} must be >= 1, got {value}")
    for key in POSITIVE_REALS:
        if not (math.isfinite(value := config_value(cfg, key)) and value > 0.0):
            raise ValueError(f"{key} must be finite and > 0, got {value}")
    for key in PROBABILITIES:
        if not 0.0 <= (value := config_value(cfg, key)) <= 1.0:
            raise ValueError(f"{key} must lie in [0, 1], got {value}")
    algo = cfg.algo
    if algo.batch_size > algo.buffer_size:
        raise ValueError(
            f"algo.batch_size ({algo.batch_size}) must be <= algo.buffer_size "
            f"({algo.buffer_size}): a batch is drawn from the stored episodes"
        )
    betas = list(algo.optim_betas)
    if len(betas) != 2 or not all(0.0 <= beta < 1.0 for beta in betas):
        raise ValueError(f"algo.optim_betas must be two values that lie in [0, 1), got {betas}")
    if algo.lr_finish is not None and not 0.0 <= algo.lr_finish <= algo.lr:
        raise ValueError(f"algo.lr_finish must lie in [0, algo.lr], got {algo.lr_finish}")
    if algo.lr_anneal_steps is not None and algo.lr_anneal_steps < 1:
        raise ValueError(f"algo.lr_anneal_steps must be >= 1, got {algo.lr_anneal_steps}")


def validate(cfg: TrainConfig) -> None:
    """Start-up checks of values the schema cannot express."""
    validate_numbers(cfg)
    registries = {
        "collection": (cfg.collection, RUNNERS),
        "algo.mixer": (cfg.algo.mixer, MIXERS),
        "algo.update": (cfg.algo.update, LEARNERS),
        "algo.optimiser": (cfg.algo.optimiser, TORCH_OPTIMISERS),  # riskq.model.optim's keys
    }
    for key, (name, registry) in registries.items():
        if name not in registry:
            raise ValueError(f"{key}: unknown '{name}'; valid choices: {', '.join(registry)}")
    usable_device(cfg.device)


@dataclass
class Experiment:
    env: BatchedEnv
    eval_env: BatchedEnv
    risk_fn: RiskMeasure
    runner: Runner
    eval_runner: Runner
    buffer: ReplayBuffer | None
    learner: ReferenceLearner  # LEARNERS[algo.update]
    sample_rng: np.random.Generator


def build_networks(cfg: TrainConfig, env: BatchedEnv, risk_fn: RiskMeasure, device):
    info = env.info
    agent = RecurrentQuantileAgent(
        input_dim=agent_input_dim(
            obs_dim=info.obs_dim, n_actions=info.n_actions, n_agents=info.n_agents
        ),
        n_agents=info.n_agents,
        n_actions=info.n_actions,
        n_quantiles=cfg.algo.agent.n_quantiles,
        hidden_dim=cfg.algo.agent.hidden_dim,
        shared=cfg.algo.agent.shared,
        zero_head=cfg.algo.agent.zero_head,
    ).to(device)
    mixer = make_mixer(
        cfg.algo.mixer,
        n_agents=info.n_agents,
        state_dim=info.state_dim,
        n_quantiles=cfg.algo.agent.n_quantiles,
        agent_feature_dim=info.agent_feature_dim,
        risk_fn=risk_fn,
        cfg=cfg.algo.mixer_args,
    ).to(device)
    return agent, mixer


def build_experiment(cfg: TrainConfig, *, with_buffer: bool = True) -> Experiment:
    """Everything a run needs, seeded from ``cfg.seed``."""
    validate(cfg)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    risk_fn = make_risk_measure(cfg.risk.name, cfg.risk.level())
    env = make_env(cfg, num_envs=cfg.num_envs, seed=cfg.seed)
    eval_env = make_env(cfg, num_envs=cfg.eval_episodes, seed=cfg.seed + EVAL_SEED_OFFSET)
    agent, mixer = build_networks(cfg, env, risk_fn, device)
    learner = LEARNERS[cfg.algo.update](
        agent=agent, mixer=mixer, risk_fn=risk_fn, cfg=cfg.algo, n_actions=env.info.n_actions
    )
    runner = RUNNERS[cfg.collection](
        env=env,
        agent=agent,
        risk_fn=risk_fn,
        device=device,
        rng=np.random.default_rng([cfg.seed, 1]),
    )
    eval_runner = Runner(
        env=eval_env,
        agent=agent,
        risk_fn=risk_fn,
        device=device,
        rng=np.random.default_rng([cfg.seed, 2]),
    )
    buffer = None
    if with_buffer:
        buffer = ReplayBuffer(capacity=cfg.algo.buffer_size, info=env.info, device=device)
    return Experiment(
        env=env,
        eval_env=eval_env,
        risk_fn=risk_fn,
        runner=runner,
        eval_runner=eval_runner,
        buffer=buffer,
        learner=learner,
        sample_rng=np.random.default_rng([cfg.seed, 3]),
    )


def rollout_statistics(
    rollout: Rollout,
    prefix: str,
    *,
    return_risks: tuple[tuple[str, float], ...] = RETURN_RISKS,
    extra: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """The scalars of a rollout, each named ``<prefix>/<name>``: mean return and episode length,
    the return risks (CVaR/VaR at 0.1 and 0.2 by default), ``extra``, then the env metrics.

    Evaluation logs the defaults; training passes no return risks and its epsilon, psi of the
    chosen actions and learner metrics as ``extra``.
    """
    returns = rollout.returns.astype(np.float64)  # [E]
    stats = {
        f"{prefix}/return_mean": float(returns.mean()),
        f"{prefix}/episode_length": float(rollout.lengths.mean()),
    }
    for name, level in return_risks:
        stats[f"{prefix}/return_{name}_{level}"] = float(empirical_risk(returns, name, level))
    for name, value in (extra or {}).items():
        stats[f"{prefix}/{name}"] = value
    for name, values in rollout.env_metrics.items():
        stats[f"{prefix}/{name}"] = float(np.mean(values))
    return stats


def evaluate(runner: Runner, *, seed: int) -> tuple[Rollout, dict[str, float]]:
    """Greedy episodes on a re-seeded env copy batch (the same random stream every time)."""
    rollout = runner.collect(epsilon=0.0, seed=seed)
    return rollout, rollout_statistics(rollout, "eval")
