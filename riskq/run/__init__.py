"""Running experiments: wiring a run from its config, collecting episodes, the training loop,
and everything that keeps a run safe on disk (run directory, checkpoints, exact resume, logs).

This group builds on ``riskq.model`` (and ``riskq.config``, ``riskq.errors``, ``envs``); the
analysis group and the commands build on it, and nothing in it imports them
(``tests/test_structure.py``).

- ``experiment``: builds a run's components; ``runner``: collects episodes; ``trainer``: the
  training loop; ``evaluate``: loads and evaluates a saved run; ``matrix_report``: a matrix
  game's greedy joint action against its optimum.
- ``run_dir``, ``run_files``, ``checkpoint``, ``resume``, ``stopping``, ``finite``: the run
  directory, atomic files, checkpoints, exact resume, signals and finite-loss checks.
- ``logger`` and ``tracking``: TensorBoard, ``metrics.jsonl`` and W&B; ``labels``: risk
  labels; ``cluster``: requeue on Slurm.
"""
