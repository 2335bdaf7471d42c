"""Typed configuration schemas shared by every command (plain dataclasses, no Hydra).

YAML files under ``configs/`` hold values; these dataclasses are their schemas, so a typo in a
key or a value of the wrong type stops a run at start-up. Values in brackets come from the
reference implementation's configuration (CONVENTIONS.md section 5). The commands store them
in Hydra's ConfigStore and compose the YAML files into them (``riskq.cli.compose``); library
code, the model modules included, imports only these dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


@dataclass
class RiskConfig:
    """A risk measure psi (CONVENTIONS.md section 2): ``name`` of RISK_MEASURES, ``param``."""

    name: str = "wang"
    param: float = 0.75  # Wang eta; alpha for var/cvar; eta for cpw/pow; ignored by neutral
    alpha: float | None = None  # alias of param (the name papers use for VaR/CVaR levels)
    eta: float | None = None  # alias of param (the name papers use for Wang/CPW/Pow)

    def level(self) -> float:
        """The measure's parameter: ``alpha`` or ``eta`` when given, else ``param``."""
        aliases = [value for value in (self.alpha, self.eta) if value is not None]
        if len(aliases) > 1:
            raise ValueError("risk: set at most one of risk.alpha and risk.eta")
        return aliases[0] if aliases else self.param


@dataclass
class AgentNetConfig:
    """The shared recurrent quantile network (CONVENTIONS.md section 3)."""

    hidden_dim: int = 64  # Linear(in, 64) -> GRU(64), reference
    n_quantiles: int = 32  # K, reference
    shared: bool = True  # parameter sharing across agents (agent id one-hot in the input)
    # Zero output layer: the untrained network gives every action the same quantiles, so its
    # greedy choice is each agent's first action (argmax ties); off: PyTorch's default init.
    zero_head: bool = False


@dataclass
class MixerConfig:
    """Sizes of every mixer of the registry; each mixer reads only its own fields."""

    # RiskQ attention mixer (CONVENTIONS.md section 4, reference sizes)
    n_heads: int = 1  # H
    query_hidden: int = 32  # q_h(s): S -> 32 -> ReLU -> key_dim
    key_dim: int = 16  # e_{i,h} = Linear(f_i) -> 16
    head_hidden: int = 32  # w(s): S -> 32 -> ReLU -> H
    bias_hidden: int = 16  # c(s): S -> 16 -> ReLU -> 1
    # QMIX-style monotone hypernetwork mixers (qmix, dmix, risk-mix)
    embed_dim: int = 32  # mixing layer width, PyMARL default
    hypernet_hidden: int = 64  # hypernetwork hidden width, PyMARL default
    # Key of riskq.model.mixers.STATE_TRANSFORMS, applied elementwise to the state and the agent
    # features every mixer reads ("none" [the reference]; "symlog": sign(x) log(1 + |x|), which
    # keeps unit-scale inputs about as they are and compresses unbounded ones such as MACF's
    # positions and speeds of reversing cars). Actions never pass through it, so RIGM is kept.
    state_transform: str = "none"


@dataclass
class AlgoConfig:
    """One algorithm: a mixer of the registry plus the learning rule of CONVENTIONS.md section 5."""

    name: str = "riskq"
    mixer: str = "riskq"  # key of riskq.model.mixers.MIXERS
    agent: AgentNetConfig = field(default_factory=AgentNetConfig)
    mixer_args: MixerConfig = field(default_factory=MixerConfig)
    gamma: float = 0.99  # [0.99]
    td_lambda: float = 0.6  # [0.6], per quantile index across time
    lr: float = 1e-3  # [1e-3]
    # Learning-rate annealing (not in the reference): with lr_finish set, the learning rate
    # falls linearly from lr to lr_finish over lr_anneal_steps env steps (None: the run's
    # t_max), then stays there. None [the reference]: lr throughout.
    lr_finish: float | None = None
    lr_anneal_steps: int | None = None
    # Key of riskq.model.optim.OPTIMISERS: "rmsprop" [the reference] or "adam" (PyMARL2's choice for
    # QMIX on SMAC); either steps the learner's one flat parameter tensor after the clip.
    optimiser: str = "rmsprop"
    optim_alpha: float = 0.99  # RMSprop smoothing [0.99]
    optim_betas: tuple[float, float] = (0.9, 0.999)  # Adam's moment decays (torch's default)
    optim_eps: float = 1e-5  # both optimisers [1e-5]; torch's Adam default is 1e-8
    grad_clip: float = 10.0  # global grad-norm clip [10]
    batch_size: int = 32  # episodes per update [32]
    buffer_size: int = 5000  # episodes [5000]
    target_update_interval: int = 200  # episodes between hard target updates [200]
    updates_per_episode: float = 1.0  # learner updates per collected episode [1]
    # The fast learner computes each update on at most this many sub-batches of similar
    # episode length, each padded only to its own longest episode (riskq.model.buckets): the
    # same loss and gradient with less padding where lengths vary (SMAX). 1 [the reference]:
    # the whole batch padded to its longest episode.
    length_buckets: int = 1
    epsilon_start: float = 1.0  # [1.0]
    epsilon_finish: float = 0.05  # [0.05]
    epsilon_anneal_steps: int = 100_000  # env steps [100k]
    huber_kappa: float = 1.0  # quantile Huber threshold [1]
    # The learner trains on rewards x reward_scale (> 0; [1]): its values, loss and psi are in
    # those units, logged returns stay in the env's. A positive scale leaves every risk measure's
    # greedy choice unchanged (they are positively homogeneous) but brings MACF's values, which
    # span -60 .. -2e4, towards the range the Huber threshold (1) and the clip (10) are set for.
    reward_scale: float = 1.0
    # Key of riskq.run.experiment.LEARNERS: "fast" (riskq.model.learner, the default) or "reference"
    # (riskq.model.reference: the same update written plainly, slower; the same numbers).
    update: str = "fast"


@dataclass
class EnvConfig:
    """An env of ``envs.ENVS``: ``args`` are the keyword arguments of its class."""

    name: str = "matrix"
    label: str = "risk_ladder"  # display name used in logs, plots and tables
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoggerConfig:
    """Experiment tracking beside TensorBoard and metrics.jsonl (``riskq.run.tracking``)."""

    wandb: bool = False  # every scalar to Weights & Biases too (extra: wandb)
    project: str = "riskq"  # W&B project
    entity: str | None = None  # W&B team or user; None: the API key's default
    group: str | None = None  # W&B group, e.g. one per sweep
    tags: list[str] = field(default_factory=list)  # W&B tags, e.g. [cvar, macn]


@dataclass
class TrainConfig:
    """``riskq-train``: one run of one algorithm on one env under one risk measure."""

    algo: AlgoConfig = field(default_factory=AlgoConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    seed: int = 0
    t_max: int = 20_000  # env steps to train for
    num_envs: int = 8  # env copies collected in lock-step (episodes per collection)
    # lockstep: one episode per copy per collection; streaming: a copy restarts as soon as its
    # episode ends (riskq.run.runner.RUNNERS; envs with reset_copies, e.g. smax)
    collection: str = "lockstep"
    eval_interval: int = 2_000  # env steps between greedy evaluations
    eval_episodes: int = 64
    log_interval: int = 1_000  # env steps between training-scalar logs
    checkpoint_interval: int = 10_000  # env steps between checkpoints (and one at the end)
    device: str = "cpu"
    threads: int = 1  # torch threads (default chosen by measurement: configs/train.yaml)
    resume: str | None = None  # a run directory (or checkpoint file) to continue exactly; auto:
    # the run directory's own run if it has a checkpoint, else a new run there
    progress: bool = True  # console progress bar with ETA and the latest evaluation
    logger: LoggerConfig = field(default_factory=LoggerConfig)


def load_train_config(path: str | Path) -> TrainConfig:
    """A run's saved ``config.yaml`` merged into the TrainConfig schema (keys it lacks keep
    their defaults); OmegaConf errors name a key that does not fit."""
    merged = OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.load(path))
    return OmegaConf.to_object(merged)
