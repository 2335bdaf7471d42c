"""riskq: risk-sensitive cooperative multi-agent RL.

Implements RiskQ (Shen et al., "RiskQ: Risk-sensitive Multi-Agent Reinforcement Learning
Value Factorization", NeurIPS 2023, arXiv:2311.01753) and baselines in one training loop.

Dimension legend used in every shape comment of the package:
    B batch (episodes)   T time steps        N agents       A actions
    K quantiles          S state features    O observation  H hidden units
    E parallel env copies                    F per-agent features
"""

__version__ = "0.1.0"
