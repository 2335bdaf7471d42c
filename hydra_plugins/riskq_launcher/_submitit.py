"""Hydra's submitit launchers (Slurm and local), as riskq sweeps use them.

They submit exactly as Hydra's do (one job per run, a job array on Slurm) and differ in how a
sweep ends:

- **Every run is waited for, and each failed one gets one line** on stderr (``run 1 (seed=1)
  failed: ...``), then the sweep fails with one error (``RunFailed``: exit 1). Hydra's launcher
  stops at the first failed run and shows only that one; a job that ended without a result
  (cancelled, out of time or memory) stopped it with submitit's many-line report.
- **Slurm's job states are polled every ``poll_interval_s`` seconds.** A run that finishes is
  seen within a second from its result file either way; a job that ends without one is seen
  only when ``sacct`` reports it, and submitit spaces those calls out to 10 minutes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import (
    BaseQueueConf,
    LocalQueueConf,
    SlurmQueueConf,
)
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    LocalLauncher,
    SlurmLauncher,
)
from omegaconf import OmegaConf

from riskq.errors import RunFailed

log = logging.getLogger(__name__)
INIT_KEYS = {"submitit_folder", "max_num_timeout"}  # arguments of the executor, not of its jobs


@dataclass
class RiskqLocalConf(LocalQueueConf):
    _target_: str = "hydra_plugins.riskq_launcher._submitit.RiskqLocalLauncher"


@dataclass
class RiskqSlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.riskq_launcher._submitit.RiskqSlurmLauncher"
    # seconds between two sacct calls for the states of the sweep's jobs (submitit: up to 600)
    poll_interval_s: int = 15


def executor_for(launcher: LocalLauncher | SlurmLauncher) -> Any:
    """A submitit executor with the launcher's parameters, as Hydra's launcher builds it: the
    keys of BaseQueueConf keep their names, the others get the executor's prefix."""
    import submitit

    name, params = launcher._EXECUTOR, launcher.params
    init = {}
    if "max_num_timeout" in params:  # Slurm's requeues after a time limit
        init[f"{name}_max_num_timeout"] = params["max_num_timeout"]
    executor = submitit.AutoExecutor(cluster=name, folder=params["submitit_folder"], **init)
    shared = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(
        **{
            key if key in shared else f"{name}_{key}": value
            for key, value in params.items()
            if key not in INIT_KEYS
        }
    )
    return executor


def varying(job_overrides: Sequence[Sequence[str]]) -> list[list[str]]:
    """Each run's overrides without the hydra ones and those every run of the sweep shares."""
    runs = [list(filter_overrides(overrides)) for overrides in job_overrides]
    shared = set.intersection(*(set(run) for run in runs)) if len(runs) > 1 else set()
    return [[item for item in run if item not in shared] for run in runs]


def job_return(job: Any, overrides: Sequence[str]) -> JobReturn:
    """The run's JobReturn from the job's result file; a job that ended without one becomes a
    failed JobReturn that says how it ended and where its log is."""
    from submitit.core.utils import UncompletedJobError

    try:
        return job.results()[0]
    except UncompletedJobError:
        failed = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
        failed.return_value = RunFailed(
            f"job {job.job_id} ended without a result (state {job.state}); its log: "
            f"{job.paths.stderr}"
        )
        return failed


def failure_lines(returns: Sequence[JobReturn], shown: Sequence[Sequence[str]], first: int):
    """One line per failed run: its number, the overrides that set it apart, its error."""
    return [
        f"run {number} ({' '.join(items)}) failed: {' '.join(str(ret._return_value).split())}"
        for number, (ret, items) in enumerate(zip(returns, shown, strict=True), first)
        if ret.status == JobStatus.FAILED
    ]


class SweepEnd:
    """``launch`` of riskq's launchers: submit like Hydra's, wait for every run, report each
    failed one."""

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> list[JobReturn]:
        executor = executor_for(self)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        numbers = range(initial_job_idx, initial_job_idx + len(job_overrides))
        for number, overrides in zip(numbers, job_overrides, strict=True):
            log.info(f"\t#{number} : {' '.join(filter_overrides(overrides))}")
        calls = [
            (list(o), "hydra.sweep.dir", n, f"job_id_for_{n}", Singleton.get_state())
            for n, o in zip(numbers, job_overrides, strict=True)
        ]
        jobs = executor.map_array(self, *zip(*calls, strict=True))
        returns = [job_return(job, o) for job, o in zip(jobs, job_overrides, strict=True)]
        lines = failure_lines(returns, varying(job_overrides), initial_job_idx)
        if lines:
            print("\n".join(lines), file=sys.stderr, flush=True)
            raise RunFailed(
                f"{len(lines)} of {len(jobs)} runs failed (one line each above); every job's "
                f"log is in {self.params['submitit_folder'].replace('%j', '<job id>')}"
            )
        return returns


class RiskqLocalLauncher(SweepEnd, LocalLauncher):
    """submitit's local executor: the cluster code path on this machine."""


class RiskqSlurmLauncher(SweepEnd, SlurmLauncher):
    """Slurm, with the job states polled every ``poll_interval_s`` seconds."""

    def __init__(self, poll_interval_s: int = 15, **params: Any) -> None:
        super().__init__(**params)
        self.poll_interval_s = poll_interval_s

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> list[JobReturn]:
        from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

        SlurmJob.watcher = SlurmInfoWatcher(delay_s=self.poll_interval_s)  # shared by all jobs
        return super().launch(job_overrides, initial_job_idx)


SCHEMAS = {"riskq_submitit_local": RiskqLocalConf, "riskq_submitit_slurm": RiskqSlurmConf}
for name, schema in SCHEMAS.items():  # configs/hydra/launcher/*.yaml build on these
    ConfigStore.instance().store(group="hydra/launcher", name=name, node=schema, provider="riskq")
