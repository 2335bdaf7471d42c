"""riskq's submitit launchers for Hydra sweeps (``hydra/launcher=slurm`` and
``hydra/launcher=submitit_local_riskq``; ``_submitit.py`` says what they add).

Hydra finds plugins by scanning the ``hydra_plugins`` package, which misses this one in an
editable install of riskq, so riskq's commands register it as well
(``riskq.cli.compose.register_launchers``). Without the sweep extra (hydra-submitit-launcher) this
package defines nothing.
"""

from importlib.util import find_spec

LAUNCHERS: tuple = ()
if find_spec("hydra_plugins.hydra_submitit_launcher") is not None:
    from hydra_plugins.riskq_launcher._submitit import RiskqLocalLauncher, RiskqSlurmLauncher

    LAUNCHERS = (RiskqLocalLauncher, RiskqSlurmLauncher)
