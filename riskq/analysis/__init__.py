"""Analysis of finished runs: the tables that ``riskq-table`` (``riskq.cli.table``) prints.

This layer reads run directories (``config.yaml``, ``summary.json``, ``metrics.jsonl``, the
files of ``riskq-eval``) and never trains: it sits above the model and run code and may use
any of it, and no module outside ``riskq.analysis`` and the commands imports it
(``tests/test_structure.py``).

- ``runs``: which directories are runs, which are complete, and what a run scored.
- ``sweep``: one row per (env, algo, risk) group, mean and range over seeds.
- ``baselines``: RiskQ against the baselines, IQM with CIs and probability of improvement.
- ``effects`` and ``seeds``: a seed sweep's figures per seed, their IQM, and on how many seeds
  an effect (e.g. ``eval/detour>=0.8``) holds.
"""
