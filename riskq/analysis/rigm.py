"""RIGM checker (CONVENTIONS.md section 1): do the agents' own risk-greedy actions maximise psi of
the joint return?

For each trial (a table of per-agent quantiles theta_i[a] and a state), every one of the A^N
joint actions is fed through the mixer, psi is applied to the joint output and the
centralised best joint action is compared with the decentralised choice
(argmax_a psi(theta_i[a]) per agent). regret = psi(best) - psi(decentralised); a trial
violates RIGM when regret > tol (ties are not violations).

``check_rigm`` works on any mixer, trained or freshly initialised; ``run_rigm`` runs it on
random inputs for several mixers and risk measures (``RigmConfig``, the schema of
configs/rigm.yaml), and ``riskq.analysis.rigm_trained`` on the states a trained run meets.
The command ``riskq-rigm`` is ``riskq.cli.rigm``. Reference: Shen et al., NeurIPS 2023,
arXiv:2311.01753.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from riskq.config import MixerConfig, RiskConfig
from riskq.model.device import usable_device
from riskq.model.mixers import MIXERS, Mixer, RiskFn, make_mixer
from riskq.model.risk import RiskMeasure, make_risk_measure

MAX_JOINT_ACTIONS = 4096  # A^N above this is refused: the check enumerates every joint action


@dataclass
class RigmResult:
    """Outcome of ``check_rigm`` over M trials."""

    trials: int
    violations: int
    violation_rate: float
    max_regret: float
    distributional: bool  # False: the joint output is an expected value (vdn, qmix)
    regret: torch.Tensor  # [M] psi(centralised best) - psi(decentralised choice), >= 0
    central_actions: torch.Tensor  # [M, N] argmax over joint actions of psi(joint)
    decentral_actions: torch.Tensor  # [M, N] per-agent argmax of psi(theta_i)

    def summary(self) -> dict[str, int | float | bool]:
        """The scalar fields, for tables and JSON."""
        return {
            "trials": self.trials,
            "violations": self.violations,
            "violation_rate": self.violation_rate,
            "max_regret": self.max_regret,
            "distributional": self.distributional,
        }


def joint_actions(*, n_agents: int, n_actions: int, device: torch.device) -> torch.Tensor:
    """All A^N joint actions [A^N, N], lexicographic (agent 0 varies slowest)."""
    grids = torch.meshgrid(
        *[torch.arange(n_actions, device=device)] * n_agents, indexing="ij"
    )  # N x [A, ..., A]
    return torch.stack(grids, dim=-1).reshape(-1, n_agents)  # [A^N, N]


def joint_action_index(actions: torch.Tensor, *, n_actions: int) -> torch.Tensor:
    """Row of ``joint_actions`` for per-agent actions [..., N] -> [...]."""
    n_agents = actions.shape[-1]
    powers = n_actions ** torch.arange(n_agents - 1, -1, -1, device=actions.device)  # [N]
    return (actions * powers).sum(dim=-1)  # [...]


def _check_shapes(agent_quantiles, state, agent_features) -> None:
    if agent_quantiles.dim() != 4:
        raise ValueError(f"agent_quantiles {tuple(agent_quantiles.shape)} must be [M, N, A, K]")
    trials, n_agents = agent_quantiles.shape[:2]
    if state.dim() != 2 or state.shape[0] != trials:
        raise ValueError(
            f"state {tuple(state.shape)} must be [M={trials}, S] for agent_quantiles "
            f"{tuple(agent_quantiles.shape)}"
        )
    if agent_features is not None and tuple(agent_features.shape[:2]) != (trials, n_agents):
        raise ValueError(
            f"agent_features {tuple(agent_features.shape)} must be [M={trials}, N={n_agents}, F]"
        )


def check_rigm(
    *,
    mixer: Mixer,
    risk_fn: RiskFn,
    agent_quantiles: torch.Tensor,
    state: torch.Tensor,
    agent_features: torch.Tensor | None = None,
    tol: float = 1e-5,
) -> RigmResult:
    """Check RIGM on M trials by enumerating every joint action.

    Args:
        mixer: a joint mixer of MIXERS (``none`` is refused: no joint distribution).
        risk_fn: psi, sorted quantiles [..., K] -> values [...].
        agent_quantiles: [M, N, A, K] sorted per-agent quantiles of every action.
        state: [M, S]; agent_features: [M, N, F] or None.
    For expected-value mixers (vdn, qmix) the joint output is a single number per joint
    action, used as is: psi cannot act on it, which is exactly why they cannot express RIGM.
    Distributional joint outputs are sorted before psi (a no-op for every mixer here).
    """
    if not mixer.joint:
        raise ValueError(
            f"{type(mixer).__name__} has no joint return distribution: RIGM is undefined "
            f"(independent learners)"
        )
    _check_shapes(agent_quantiles, state, agent_features)
    trials, n_agents, n_actions, _ = agent_quantiles.shape
    if n_actions**n_agents > MAX_JOINT_ACTIONS:
        raise ValueError(f"A^N = {n_actions}^{n_agents} exceeds {MAX_JOINT_ACTIONS} joint actions")
    actions = joint_actions(n_agents=n_agents, n_actions=n_actions, device=state.device)  # [J, N]
    agent_index = torch.arange(n_agents, device=state.device)  # [N]
    chosen = agent_quantiles[:, agent_index, actions]  # [M, J, N, K]
    n_joint = actions.shape[0]
    states = state.unsqueeze(1).expand(trials, n_joint, -1)  # [M, J, S]
    features = None
    if agent_features is not None:
        features = agent_features.unsqueeze(1).expand(trials, n_joint, -1, -1)  # [M, J, N, F]
    with torch.no_grad():
        joint = mixer(chosen, states, features)  # [M, J, K_out]
        if mixer.distributional:
            joint_values = risk_fn(torch.sort(joint, dim=-1).values)  # [M, J]
        else:
            joint_values = joint.squeeze(-1)  # [M, J]
        best_values, central = joint_values.max(dim=-1)  # [M], [M]
        decentral = risk_fn(agent_quantiles).argmax(dim=-1)  # [M, N]
        chosen_index = joint_action_index(decentral, n_actions=n_actions)  # [M]
        chosen_values = joint_values.gather(-1, chosen_index.unsqueeze(-1)).squeeze(-1)  # [M]
    regret = (best_values - chosen_values).clamp_min(0.0)  # [M]
    violations = int((regret > tol).sum())
    return RigmResult(
        trials=trials,
        violations=violations,
        violation_rate=violations / trials,
        max_regret=float(regret.max()),
        distributional=mixer.distributional,
        regret=regret,
        central_actions=actions[central],  # [M, N]
        decentral_actions=decentral,
    )


def merge_results(results: list[RigmResult]) -> RigmResult:
    """Concatenate the trials of several checks (e.g. one per fresh mixer initialisation)."""
    regret = torch.cat([r.regret for r in results])  # [M]
    trials = regret.numel()
    violations = sum(r.violations for r in results)
    return RigmResult(
        trials=trials,
        violations=violations,
        violation_rate=violations / trials,
        max_regret=max(r.max_regret for r in results),
        distributional=results[0].distributional,
        regret=regret,
        central_actions=torch.cat([r.central_actions for r in results]),  # [M, N]
        decentral_actions=torch.cat([r.decentral_actions for r in results]),  # [M, N]
    )


def random_inputs(
    generator: torch.Generator,
    *,
    trials: int,
    n_agents: int,
    n_actions: int,
    n_quantiles: int,
    state_dim: int,
    feature_dim: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Random sorted quantile tables and unit-scale states (CPU, float32).

    Each action's distribution is a two-piece normal with its own location, left (bad-tail)
    scale and right scale, plus small sorted jitter, so risk-neutral and risk-averse greedy
    actions often differ.
    Returns:
        (agent_quantiles [M, N, A, K] sorted along K, state [M, S],
         agent_features [M, N, F] or None when feature_dim == 0).
    """
    size = (trials, n_agents, n_actions)
    tau = (2 * torch.arange(n_quantiles) + 1) / (2 * n_quantiles)  # [K]
    z = torch.special.ndtri(tau)  # [K] standard normal quantiles
    location = torch.randn(*size, 1, generator=generator)  # [M, N, A, 1]
    left, right = torch.exp(0.75 * torch.randn(2, *size, 1, generator=generator))  # [M, N, A, 1]
    quantiles = location + torch.where(z < 0, left * z, right * z)  # [M, N, A, K]
    jitter = 0.1 * torch.randn(*size, n_quantiles, generator=generator)  # [M, N, A, K]
    quantiles = torch.sort(quantiles + jitter, dim=-1).values  # [M, N, A, K]
    state = torch.randn(trials, state_dim, generator=generator)  # [M, S]
    features = None
    if feature_dim > 0:
        features = torch.randn(trials, n_agents, feature_dim, generator=generator)  # [M, N, F]
    return quantiles, state, features


def _default_mixers() -> list[str]:
    return [name for name, mixer_class in MIXERS.items() if mixer_class.joint]


def _default_risks() -> list[RiskConfig]:
    return [
        RiskConfig(name="neutral", param=0.0),
        RiskConfig(name="var", param=0.2),  # averse
        RiskConfig(name="cvar", param=0.2),  # averse
        RiskConfig(name="wang", param=0.75),  # averse, reference configuration
        RiskConfig(name="cpw", param=0.71),  # Tversky-Kahneman
        RiskConfig(name="pow", param=-0.5),  # seeking
        RiskConfig(name="cvar", param=-0.2),  # seeking: mean of the best 20%
    ]


@dataclass
class RigmConfig:
    """``riskq-rigm``: RIGM violation rates of mixers x risk measures on random inputs."""

    mixers: list[str] = field(default_factory=_default_mixers)  # keys of MIXERS (joint only)
    risks: list[RiskConfig] = field(default_factory=_default_risks)
    n_agents: int = 2
    n_actions: int = 3
    n_quantiles: int = 8
    state_dim: int = 4
    feature_dim: int = 2  # per-agent features f_i; 0: riskq uses learned agent embeddings
    trials: int = 2000  # random quantile tables, shared by every mixer and risk
    trials_per_init: int = 200  # a fresh random mixer initialisation every this many trials
    tol: float = 1e-5  # regret above this counts as a violation
    seed: int = 0
    threads: int = 1
    device: str = "cpu"
    output: str | None = None  # JSON file for the rows, or null
    mixer: MixerConfig = field(default_factory=MixerConfig)
    run: str | None = None  # a trained run directory: check its mixer on evaluation states
    episodes: int = 32  # evaluation episodes whose states the trained-model check uses


def validate(cfg: RigmConfig) -> list[RiskMeasure]:
    """Raise ValueError naming the bad key; return the risk measures."""
    for key in ("n_agents", "n_actions", "n_quantiles", "state_dim", "trials", "trials_per_init"):
        if getattr(cfg, key) < 1:
            raise ValueError(f"{key} must be >= 1, got {getattr(cfg, key)}")
    if cfg.feature_dim < 0:
        raise ValueError(
            f"feature_dim must be >= 0 (0: learned agent embeddings), got {cfg.feature_dim}"
        )
    if not (math.isfinite(cfg.tol) and cfg.tol >= 0.0):
        raise ValueError(f"tol must be finite and >= 0, got {cfg.tol}")
    if not cfg.mixers or not cfg.risks:
        raise ValueError("mixers and risks must each name at least one entry")
    if cfg.n_actions**cfg.n_agents > MAX_JOINT_ACTIONS:
        raise ValueError(f"n_actions^n_agents must be <= {MAX_JOINT_ACTIONS}")
    joint = _default_mixers()
    for name in cfg.mixers:
        if name not in joint:
            raise ValueError(f"mixers: {name!r} is not a joint mixer; valid choices: {joint}")
    risks = []
    for index, risk in enumerate(cfg.risks):
        try:
            risks.append(make_risk_measure(risk.name, risk.level()))
        except ValueError as error:
            raise ValueError(f"risks[{index}]: {error}") from None
    usable_device(cfg.device)
    return risks


def _check_one(cfg: RigmConfig, *, mixer_name: str, risk_fn: RiskMeasure, inputs) -> RigmResult:
    """One mixer x one risk measure over all trials, a fresh mixer every trials_per_init."""
    quantiles, state, features = inputs
    results = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # the same sequence of mixer inits for every risk measure
        for start in range(0, cfg.trials, cfg.trials_per_init):
            part = slice(start, start + cfg.trials_per_init)
            mixer = make_mixer(
                mixer_name,
                n_agents=cfg.n_agents,
                state_dim=cfg.state_dim,
                n_quantiles=cfg.n_quantiles,
                agent_feature_dim=cfg.feature_dim,
                risk_fn=risk_fn,
                cfg=cfg.mixer,
            ).to(cfg.device)
            results.append(
                check_rigm(
                    mixer=mixer,
                    risk_fn=risk_fn,
                    agent_quantiles=quantiles[part],
                    state=state[part],
                    agent_features=None if features is None else features[part],
                    tol=cfg.tol,
                )
            )
    return merge_results(results)


def run_rigm(cfg: RigmConfig) -> list[dict]:
    """Evaluate every mixer x risk measure; return one row (dict) per pair."""
    risks = validate(cfg)
    torch.set_num_threads(cfg.threads)
    generator = torch.Generator().manual_seed(cfg.seed)
    inputs = random_inputs(
        generator,
        trials=cfg.trials,
        n_agents=cfg.n_agents,
        n_actions=cfg.n_actions,
        n_quantiles=cfg.n_quantiles,
        state_dim=cfg.state_dim,
        feature_dim=cfg.feature_dim,
    )
    inputs = tuple(None if x is None else x.to(cfg.device) for x in inputs)
    rows = []
    for mixer_name in cfg.mixers:
        for risk_fn in risks:
            result = _check_one(cfg, mixer_name=mixer_name, risk_fn=risk_fn, inputs=inputs)
            row = {"mixer": mixer_name, "risk": risk_fn.name, "param": risk_fn.param}
            rows.append({**row, "label": risk_fn.label, **result.summary()})
    return rows


def format_table(rows: list[dict]) -> str:
    """A fixed-width table: mixer, joint kind, risk, trials, violations, rate, max regret."""
    header = f"{'mixer':<13}{'joint':<7}{'risk':<16}{'trials':>7}{'violations':>11}"
    lines = [f"{header}{'rate':>8}{'max regret':>12}"]
    for row in rows:
        kind = "dist" if row["distributional"] else "mean"
        lines.append(
            f"{row['mixer']:<13}{kind:<7}{row['label']:<16}{row['trials']:>7}"
            f"{row['violations']:>11}{row['violation_rate']:>8.3f}{row['max_regret']:>12.2e}"
        )
    return "\n".join(lines)
