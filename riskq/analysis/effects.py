"""Effects: what a seed sweep asks of each seed, e.g. "takes the detour" or "falls at most a
third as often as the neutral run of the same seed" (``riskq-table seeds --effect``).

An effect compares one score of a run with a bound:

    [NAME:] KEY OP NUMBER                 eval/detour>=0.8
    [NAME:] KEY OP GROUP                  eval/return_cvar_0.2>neutral
    [NAME:] KEY OP GROUP/NUMBER           eval/cliff_falls<=neutral/3
    [NAME:] KEY OP GROUP*NUMBER           eval/return_mean>=neutral*0.9

OP is one of ``>=``, ``<=``, ``>``, ``<``. A GROUP bound is the same KEY of that group's run
on the same seed, divided or multiplied by NUMBER: a per-seed comparison, not one with the
group's average. NAME (optional) is how the results page names the effect.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from riskq.errors import UsageError

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
SCALINGS: dict[str, Callable[[float, float], float]] = {"*": operator.mul, "/": operator.truediv}
FORMS = (
    "valid forms: KEY>=NUMBER, KEY<GROUP, KEY<=GROUP/NUMBER, KEY>GROUP*NUMBER "
    "(comparisons >=, <=, >, <; optionally 'NAME: ' in front), e.g. eval/detour>=0.8 or "
    "eval/cliff_falls<=neutral/3"
)
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_EFFECT = re.compile(
    rf"""\s*(?:(?P<name>[^:]+?)\s*:)?\s*
    (?P<key>[^\s<>=:]+)\s*
    (?P<comparison>>=|<=|>|<)\s*
    (?:(?P<threshold>{_NUMBER})
      |(?P<reference>[^\s*/<>=:](?:[^*/<>=:]*[^\s*/<>=:])?)
       (?:\s*(?P<scaling>[*/])\s*(?P<factor>{_NUMBER}))?
    )\s*""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Effect:
    """``key comparison bound``; the bound is ``number`` or, with a ``reference`` group, that
    group's value of ``key`` on the same seed scaled by ``scaling`` and ``number``."""

    key: str
    comparison: str  # a key of COMPARISONS
    number: float
    reference: str | None = None  # a group label
    scaling: str = "*"  # a key of SCALINGS
    name: str = ""

    def text(self) -> str:
        """The effect as the page shows it, e.g. ``eval/cliff_falls <= neutral / 3``."""
        bound = f"{self.number:g}"
        if self.reference is not None:
            scaled = (self.scaling, self.number) != ("*", 1.0)
            bound = f"{self.reference} {self.scaling} {bound}" if scaled else self.reference
        rule = f"{self.key} {self.comparison} {bound}"
        return f"{self.name} ({rule})" if self.name else rule

    def holds(self, scores: dict, reference_scores: dict | None = None) -> bool | None:
        """Whether a run's ``scores`` meet the effect; ``reference_scores``: those of the
        reference group's run on the same seed. None when a value is missing."""
        value = scores.get(self.key)
        if self.reference is None:
            bound = self.number
        elif reference_scores is None or self.key not in reference_scores:
            return None
        else:
            bound = SCALINGS[self.scaling](reference_scores[self.key], self.number)
        return None if value is None else COMPARISONS[self.comparison](value, bound)


def parse_effect(text: str) -> Effect:
    """The Effect ``text`` writes (module docstring); anything else is a one-line UsageError
    naming the valid forms."""
    match = _EFFECT.fullmatch(text)
    if match is None:
        raise UsageError(f"--effect {text!r}: not an effect; {FORMS}")
    parts = match.groupdict()
    if parts["threshold"] is not None:
        return Effect(parts["key"], parts["comparison"], float(parts["threshold"]),
                      name=parts["name"] or "")  # fmt: skip
    factor = float(parts["factor"] or 1.0)
    if parts["scaling"] == "/" and factor == 0:
        raise UsageError(f"--effect {text!r}: division by zero; {FORMS}")
    return Effect(
        parts["key"],
        parts["comparison"],
        factor,
        reference=parts["reference"],
        scaling=parts["scaling"] or "*",
        name=parts["name"] or "",
    )
