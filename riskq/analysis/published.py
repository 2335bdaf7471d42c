"""Published figures that riskq's results stand beside: who reported what, on which env label
and metric, at which budget. ``riskq-plot`` draws them as reference lines in the figures of
the envs and metrics they belong to (``--no-published`` leaves them out).

Values read off a paper's plots are approximate, and say so (``approx``). A figure at another
budget than the run's is drawn as a level line, labelled with its own budget, never as a
point of the run's curve.
"""

from __future__ import annotations

from dataclasses import dataclass

JAXMARL = "JaxMARL"  # Rutherford et al. 2023, arXiv 2311.10090: its SMAX results


@dataclass(frozen=True)
class Published:
    """One published figure: ``method`` reached ``value`` after ``env_steps`` in ``source``."""

    method: str
    value: float
    env_steps: float
    source: str
    approx: bool = True  # read off a plot

    def label(self) -> str:
        """E.g. ``IPPO ~0.9 at 1e7 steps (JaxMARL)``."""
        value = f"{'~' if self.approx else ''}{self.value:g}"
        steps = f"{self.env_steps:.0e}".replace("e+0", "e").replace("e+", "e")
        return f"{self.method} {value} at {steps} steps ({self.source})"


def _jaxmarl(ippo: float, mappo: float) -> tuple[Published, ...]:
    """IPPO's and MAPPO's SMAX win rates at 1e7 env steps, heuristic enemies (JaxMARL's
    SMAX results: ``attack_mode: closest``, ``see_enemy_actions`` and ``walls_cause_death``)."""
    return (Published("IPPO", ippo, 1e7, JAXMARL), Published("MAPPO", mappo, 1e7, JAXMARL))


# env label -> metric -> published figures
PUBLISHED: dict[str, dict[str, tuple[Published, ...]]] = {
    "smax_2s3z": {"eval/win_rate": _jaxmarl(0.90, 1.0)},
    "smax_3s_vs_5z": {"eval/win_rate": _jaxmarl(0.60, 0.0)},
    "smax_5m_vs_6m": {"eval/win_rate": _jaxmarl(0.12, 0.05)},
}


def published(env: str, metric: str) -> tuple[Published, ...]:
    """The published figures of ``env``'s ``metric`` (none if there are none)."""
    return PUBLISHED.get(env, {}).get(metric, ())
