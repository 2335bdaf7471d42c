"""riskq's Hydra configs, installed as the package ``riskq.configs`` (pyproject.toml maps it to
this folder) so that every command composes them from any working directory."""
