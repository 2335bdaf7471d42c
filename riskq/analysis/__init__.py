"""Analysis: what riskq-table, riskq-plot, riskq-rigm and riskq-render compute.

This group reads run directories (``config.yaml``, ``summary.json``, ``metrics.jsonl``, the
files of ``riskq-eval``) and checks mixers; it never trains: it sits above the model and run
groups and may use any of them, and no module outside ``riskq.analysis`` and the commands
imports it (``tests/test_structure.py``).

- ``rigm``: the RIGM checker of the mixers; ``rigm_trained``: the check on a trained run.
- ``aggregate``: rliable aggregates; ``curves``: runs' scalars as learning curves over seeds;
  ``plot``: their figures and final tables (riskq-plot);
  ``published``: published figures that the curves are drawn beside.
- ``render`` and ``render_smax``: a greedy evaluation episode as a GIF (riskq-render).

- ``runs``: which directories are runs, which are complete, and what a run scored.
- ``sweep``: one row per (env, algo, risk) group, mean and range over seeds.
- ``baselines``: RiskQ against the baselines, IQM with CIs and probability of improvement, and
  each risk measure against risk-neutral RiskQ.
- ``effects`` and ``seeds``: a seed sweep's figures per seed, their IQM, and on how many seeds
  an effect (e.g. ``eval/detour>=0.8``) holds.
"""
