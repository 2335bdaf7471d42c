"""Hydra's side of the configs: the schemas in Hydra's ConfigStore and composition.

``configs/`` is installed as the package ``riskq.configs`` (pyproject.toml) and every command
composes from it by module name, so the commands work from any working directory, in editable
and regular installs alike. The schemas themselves are plain dataclasses (``riskq.config``,
``riskq.analysis.rigm.RigmConfig``); the YAML files name them in their defaults lists.
"""

from __future__ import annotations

from importlib.util import find_spec

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from riskq.analysis.rigm import RigmConfig
from riskq.config import TrainConfig

CONFIG_MODULE = "riskq.configs"  # the top-level configs/ folder, installed inside the package
CONFIG_PATH = f"pkg://{CONFIG_MODULE}"  # for @hydra.main(config_path=...)
SCHEMAS = {"train_schema": TrainConfig, "rigm_schema": RigmConfig}  # configs/{train,rigm}.yaml


def register_launchers() -> None:
    """riskq's submitit launchers (``hydra/launcher=slurm``, ``submitit_local_riskq``) in
    Hydra's plugin registry and ConfigStore. Hydra finds them by scanning ``hydra_plugins``
    in a regular install, but an editable install hides them from that scan."""
    if find_spec("hydra_plugins.riskq_launcher") is None:  # an install older than the package
        return
    from hydra.core.plugins import Plugins

    from hydra_plugins.riskq_launcher import LAUNCHERS

    for launcher in LAUNCHERS:
        Plugins.instance().register(launcher)


def register_configs() -> None:
    """Store the schemas so that YAML files can name them in their defaults lists, and riskq's
    sweep launchers with theirs (``register_launchers``)."""
    store = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        store.store(name=name, node=schema)
    register_launchers()


def compose_config(overrides: list[str] | None = None, *, config_name: str = "train"):
    """The composed, type-checked config of a command, as ``riskq-train`` would see it.

    For notebooks and tests: ``compose_config(["env=macn", "risk=cvar"])`` -> TrainConfig.
    """
    register_configs()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        raw = compose(config_name=config_name, overrides=overrides or [])
    return OmegaConf.to_object(raw)
