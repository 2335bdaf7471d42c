"""``riskq-rigm``: RIGM violation rates (CONVENTIONS.md section 1) of mixers x risk measures.

    riskq-rigm trials=500 'mixers=[riskq,dmix]' 'risks=[{name: cvar, param: 0.1}]'
    riskq-rigm run=results/runs/<...>/seed0_<time> episodes=32

A Hydra app over configs/rigm.yaml (schema ``riskq.analysis.rigm.RigmConfig``): random inputs
and fresh mixers (``riskq.analysis.rigm.run_rigm``) or, with ``run=``, a trained run
(``riskq.analysis.rigm_trained``). Prints a table (or why the check is vacuous) and writes the
rows to ``output=`` as JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from riskq.analysis.rigm import RigmConfig, format_table, run_rigm
from riskq.analysis.rigm_trained import run_trained
from riskq.cli.compose import CONFIG_PATH, register_configs
from riskq.cli.errors import hydra_command, job_errors

register_configs()


def report_rigm(cfg: RigmConfig) -> None:
    """Print the table (or why the check is vacuous) and write the JSON output."""
    rows, note = run_trained(cfg) if cfg.run is not None else (run_rigm(cfg), None)
    print(note if note is not None else format_table(rows))
    if cfg.output is not None:
        output = Path(cfg.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        result = {"config": asdict(cfg), "rows": rows, **({"note": note} if note else {})}
        output.write_text(json.dumps(result, indent=2))
        print(f"wrote {cfg.output}")


@hydra.main(config_path=CONFIG_PATH, config_name="rigm", version_base="1.3")
def run(dict_cfg: DictConfig) -> None:
    """The task function of ``riskq-rigm``."""
    with job_errors("riskq-rigm"):
        report_rigm(OmegaConf.to_object(dict_cfg))


# Console entry point: bad values exit with a one-line error (code 2).
main = hydra_command("riskq-rigm", run)


if __name__ == "__main__":
    main()
