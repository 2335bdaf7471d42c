"""``resume=<run dir>``: which directory a resumed run writes to, which config it continues
with, and whether it is the same experiment (docs/guide/run-directory.md). Every check here only
reads; nothing is written."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from envs import env_class
from riskq.config import TrainConfig, load_train_config
from riskq.errors import UsageError
from riskq.run.checkpoint import CHECKPOINT_DIR, LATEST, CheckpointError, resolve_checkpoint
from riskq.run.labels import canonical_risk
from riskq.run.run_dir import RESUMABLE_KEYS, config_differences, keyword_defaults

AUTO = "auto"  # resume=auto: continue the run in the run directory if it has one, else start it


def auto_resume(cfg: TrainConfig, run_dir: Path) -> TrainConfig:
    """``resume=auto``: continue the run in ``run_dir`` when it holds a checkpoint, otherwise
    start it there (``resume`` unset). Re-issuing a sweep with a fixed ``hydra.sweep.dir`` and
    ``resume=auto`` continues its interrupted runs, starts the missing ones and leaves the
    complete ones as they are."""
    if cfg.resume != AUTO:
        return cfg
    has_checkpoint = (run_dir / CHECKPOINT_DIR / LATEST).is_file()
    return replace(cfg, resume=str(run_dir) if has_checkpoint else None)


def resume_dir(cfg: TrainConfig, hydra_cfg) -> Path:
    """The run directory of ``resume=``: it continues in place; another explicit
    ``hydra.run.dir`` is refused (nothing is copied, moved or deleted)."""
    run_dir = Path(cfg.resume)
    run_dir = run_dir.parent.parent if run_dir.suffix == ".pt" else run_dir
    explicit = [o for o in hydra_cfg.overrides.hydra if o.startswith("hydra.run.dir=")]
    if explicit and Path(hydra_cfg.runtime.output_dir).resolve() != run_dir.resolve():
        raise UsageError(
            f"resume={cfg.resume} continues the run in {run_dir} itself; drop "
            f"{explicit[-1]} (or set hydra.run.dir={run_dir})"
        )
    return run_dir


def saved_config(run_dir: Path) -> TrainConfig:
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise UsageError(f"resume: {path} not found (resume takes a riskq-train run directory)")
    try:
        return load_train_config(path)
    except OmegaConfBaseException as error:
        raise UsageError(f"resume: {path} does not fit the config schema ({error})") from None


def override_key(override: str) -> str:
    """The config key a command-line override sets: ``t_max=10`` -> ``t_max``,
    ``+env.args.x=1`` -> ``env.args.x``, ``env=macn`` -> ``env`` (a group choice)."""
    return override.split("=", 1)[0].lstrip("+~")


def saved_experiment(run_dir: Path) -> TrainConfig:
    """The run's saved config, its risk measure in the canonical form cfg has."""
    saved = saved_config(run_dir)
    return replace(saved, risk=canonical_risk(saved.risk))


def resumed_config(cfg: TrainConfig, run_dir: Path, overrides: list[str]) -> TrainConfig:
    """The config a resume continues with. When the command line sets only keys a resumed run
    may change (``resume=<dir> t_max=2000000``), it is the run's saved config with those keys
    taken from the command line; otherwise ``cfg`` as composed, which check_same_experiment
    then compares with the saved one (so repeating the run's overrides still works)."""
    given = {override_key(override) for override in overrides}
    if not given <= RESUMABLE_KEYS:
        return cfg
    resumed, current = OmegaConf.structured(saved_experiment(run_dir)), OmegaConf.structured(cfg)
    for key in given:
        OmegaConf.update(resumed, key, OmegaConf.select(current, key), merge=False)
    return OmegaConf.to_object(resumed)


def check_same_experiment(cfg: TrainConfig, run_dir: Path) -> None:
    """Refuse a resume whose config differs from the run's beyond RESUMABLE_KEYS. An env arg
    at the env class's default is the same whether a config writes it out or leaves it out
    (runs saved before an env file wrote out a default resume as they are)."""
    saved = saved_experiment(run_dir)
    env_defaults = keyword_defaults(env_class(cfg.env.name))  # an unknown name: one-line error
    differing = config_differences(asdict(saved), asdict(cfg), env_defaults)
    if differing:
        shown = ", ".join(differing)
        allowed = ", ".join(sorted(RESUMABLE_KEYS - {"resume"}))
        raise UsageError(
            f"resume={cfg.resume}: the config differs from {run_dir / 'config.yaml'} in {shown} "
            f"(a resumed run may change only {allowed}: give only those with resume=, or repeat "
            f"the run's overrides, see {run_dir / 'overrides.yaml'})"
        )


def checkpoint_step(state: dict, location: str | Path) -> int:
    """The env step a checkpoint was saved at (read from ``location``)."""
    try:
        return int(state["counters"]["t_env"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {resolve_checkpoint(location)} lacks its counters ({error!r}); is it a "
            f"riskq-train checkpoint?"
        ) from None
