"""The one risk-measure label of the package: run directory names, ``riskq-plot`` groups,
``riskq-table`` rows and ``riskq-eval`` output files all come from ``risk_label``.

A measure's level is ``risk.param`` unless the alias ``risk.alpha`` or ``risk.eta`` is set
(``RiskConfig.level``). ``riskq-train`` stores the canonical form in ``config.yaml``: the level
in ``param`` and both aliases null, so every reader sees one number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from omegaconf import OmegaConf

from riskq.config import RiskConfig

RUN_DIR_RESOLVER = "riskq_risk_dir"  # configs/train.yaml: hydra.run.dir uses it


def risk_level(risk: RiskConfig | Mapping) -> float | None:
    """The level of a risk config (a RiskConfig or the ``risk`` mapping of a config.yaml)."""
    if isinstance(risk, Mapping):
        risk = RiskConfig(
            name=str(risk.get("name")),
            param=risk.get("param"),
            alpha=risk.get("alpha"),
            eta=risk.get("eta"),
        )
    return risk.level()


def canonical_risk(risk: RiskConfig) -> RiskConfig:
    """``risk`` with its level in ``param`` and the aliases cleared."""
    return replace(risk, param=risk_level(risk), alpha=None, eta=None)


def risk_label(name: str, level: float | None, *, for_path: bool = False) -> str:
    """``cvar(0.1)`` (``cvar_0.1`` for paths); ``neutral`` has no level (it ignores it)."""
    if level is None or name == "neutral":
        return name
    return f"{name}_{float(level):g}" if for_path else f"{name}({float(level):g})"


def eval_file_name(name: str, level: float | None) -> str:
    """The file ``riskq-eval`` writes into a run for acting measure ``name`` at ``level``,
    e.g. ``eval_cvar_0.2.json`` (``riskq-table baselines --scores eval`` reads it)."""
    return f"eval_{risk_label(name, level, for_path=True)}.json"


def _run_dir_part(name: str, param: float, alpha: float | None, eta: float | None) -> str:
    level = risk_level({"name": name, "param": param, "alpha": alpha, "eta": eta})
    return risk_label(name, level, for_path=True)


def register_resolvers() -> None:
    """Register ``${riskq_risk_dir:name,param,alpha,eta}`` (once per process)."""
    if not OmegaConf.has_resolver(RUN_DIR_RESOLVER):
        OmegaConf.register_new_resolver(RUN_DIR_RESOLVER, _run_dir_part)
