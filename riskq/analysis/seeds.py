"""A seed sweep's results page (``riskq-table seeds``): does an effect hold on any seed, or on
the seeds the settings were chosen on?

Runs are grouped by config fields (``GROUP_FIELDS``, e.g. the risk measure) and indexed by
seed; one run per (group, seed). The page reports

- **effects**: on how many seeds each ``Effect`` holds, per group (``17/20``); a seed where
  the group's run, or the reference group's run of that seed, is missing or incomplete is
  undecided and said so, never counted;
- **aggregates**: per group and key, the interquartile mean over seeds with a 95% stratified
  bootstrap CI (rliable, ``riskq.analysis.aggregate``);
- **per seed**: every figure (one row per seed, one column per key x group) and every
  effect's outcome;
- the **incomplete runs**, each with its status and last checkpoint; their cells say so.

``sweep_record`` is the same content as JSON: every run's record with its group and outcomes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from riskq.analysis.aggregate import Interval, interval_estimates
from riskq.analysis.effects import Effect
from riskq.analysis.markdown import interval_text, markdown_table
from riskq.analysis.runs import Incomplete, read_config, run_record
from riskq.errors import UsageError
from riskq.run.run_dir import incomplete_detail

GROUP_FIELDS = ("env", "algo", "risk")  # run-record fields that --group may name
OUTCOME_TEXT = {True: "yes", False: "no", None: "-"}
UNDECIDED = (
    "A/B: the effect holds on A of the B seeds where it is decided; a seed is undecided where "
    "the group's run, or the reference group's run of that seed, is missing or incomplete."
)

Cell = tuple[str, int]  # (group, seed)


@dataclass(frozen=True)
class SeedSweep:
    """The runs of a seed sweep by (group, seed): complete runs' records, and the status of
    incomplete runs that no complete run of the same (group, seed) replaces (``pending``)."""

    fields: tuple[str, ...]
    runs: dict[Cell, dict]
    pending: dict[Cell, str]
    incomplete: list[Incomplete] = field(default_factory=list)

    @property
    def groups(self) -> list[str]:
        return sorted({group for group, _ in self.runs.keys() | self.pending.keys()})

    @property
    def seeds(self) -> list[int]:
        return sorted({seed for _, seed in self.runs.keys() | self.pending.keys()})


def group_label(record: dict, fields: tuple[str, ...]) -> str:
    """The group a run belongs to, e.g. ``wang(0.75)`` or ``riskq, wang(0.75)``."""
    return ", ".join(str(record[name]) for name in fields)


def seed_sweep(
    records: list[dict], incomplete: list[Incomplete], fields: tuple[str, ...]
) -> SeedSweep:
    """Index complete ``records`` and ``incomplete`` runs by (group, seed). Two complete runs
    of one (group, seed) are a UsageError: the groups need another field to tell them apart."""
    unknown = [name for name in fields if name not in GROUP_FIELDS]
    if unknown or not fields:
        raise UsageError(f"--group {' '.join(fields)}: valid fields: {', '.join(GROUP_FIELDS)}")
    runs: dict[Cell, dict] = {}
    for record in records:
        cell = (group_label(record, fields), record["seed"])
        if cell in runs:
            raise UsageError(
                f"two runs of group {cell[0]!r}, seed {cell[1]}: {runs[cell]['run']} and "
                f"{record['run']}; --group takes several of {', '.join(GROUP_FIELDS)}"
            )
        runs[cell] = record
    pending = {}
    for run_dir, status in incomplete:
        identity = run_record(run_dir, read_config(run_dir), {})
        cell = (group_label(identity, fields), identity["seed"])
        if cell not in runs:
            pending[cell] = status
    return SeedSweep(fields, runs, pending, incomplete)


def check_request(sweep: SeedSweep, keys: list[str], effects: list[Effect]) -> None:
    """Every key and effect key is a score of some run, every reference a group."""
    scores = sorted({key for record in sweep.runs.values() for key in record["scores"]})
    for key in [*keys, *(effect.key for effect in effects)]:
        if key not in scores:
            raise UsageError(f"key {key!r} is no run's score; scores: {', '.join(scores)}")
    for effect in effects:
        if effect.reference is not None and effect.reference not in sweep.groups:
            raise UsageError(
                f"--effect {effect.text()!r}: no group {effect.reference!r}; groups: "
                f"{', '.join(sweep.groups)}"
            )


def outcome(sweep: SeedSweep, effect: Effect, cell: Cell) -> bool | None:
    """Whether ``effect`` holds for the run of ``cell``; None where undecided."""
    run, reference = sweep.runs.get(cell), sweep.runs.get((effect.reference, cell[1]))
    if run is None:
        return None
    return effect.holds(run["scores"], reference["scores"] if reference else None)


def outcomes(sweep: SeedSweep, effect: Effect) -> dict[str, dict[int, bool | None]]:
    """Per group (but the effect's reference group) and seed: ``outcome``."""
    return {
        group: {seed: outcome(sweep, effect, (group, seed)) for seed in sweep.seeds}
        for group in sweep.groups
        if group != effect.reference
    }


def share_text(by_seed: dict[int, bool | None]) -> str:
    """``17/20``: seeds where the effect holds / seeds where it is decided, and the
    undecided ones, e.g. ``12/17 (3 undecided)``."""
    decided = [holds for holds in by_seed.values() if holds is not None]
    undecided = len(by_seed) - len(decided)
    text = f"{sum(decided)}/{len(decided)}"
    return f"{text} ({undecided} undecided)" if undecided else text


def group_scores(sweep: SeedSweep, group: str, key: str) -> np.ndarray:
    """``key`` of every complete run of ``group`` that holds it, in seed order [R]."""
    runs = [sweep.runs.get((group, seed)) for seed in sweep.seeds]
    return np.array([run["scores"][key] for run in runs if run and key in run["scores"]])


def aggregates(
    sweep: SeedSweep, keys: list[str], *, reps: int
) -> dict[tuple[str, str], Interval | None]:
    """Per (group, key): the IQM over the group's complete runs with a 95% CI (None where no
    run holds the key)."""
    result: dict[tuple[str, str], Interval | None] = {}
    for key in keys:
        scores = {group: group_scores(sweep, group, key) for group in sweep.groups}  # [R] each
        measured = {group: values for group, values in scores.items() if len(values)}
        estimates = interval_estimates(measured, reps=reps) if measured else {}
        result |= {(group, key): estimates.get(group) for group in sweep.groups}
    return result


def seed_ranges(seeds: list[int]) -> str:
    """Sorted seeds as ranges: ``0-3, 5, 7-9``."""
    spans: list[list[int]] = []
    for seed in seeds:
        if spans and seed == spans[-1][1] + 1:
            spans[-1][1] = seed
        else:
            spans.append([seed, seed])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def value_text(sweep: SeedSweep, cell: Cell, key: str) -> str:
    """A run's ``key`` to 3 significant digits; ``(status)`` for an incomplete run, ``-`` for
    none, ``n/a`` for a run without that score."""
    run = sweep.runs.get(cell)
    if run is None:
        return f"({sweep.pending[cell]})" if cell in sweep.pending else "-"
    value = run["scores"].get(key)
    return "n/a" if value is None else f"{value:.3g}"


def effects_table(sweep: SeedSweep, effects: list[Effect]) -> str:
    """One row per effect, one column per group: ``share_text`` of its outcomes."""
    rows = []
    for effect in effects:
        shares = {group: share_text(o) for group, o in outcomes(sweep, effect).items()}
        rows.append([effect.text(), *(shares.get(g, "(reference)") for g in sweep.groups)])
    return markdown_table(["effect", *sweep.groups], rows)


def aggregates_table(sweep: SeedSweep, keys: list[str], *, reps: int) -> str:
    """One row per group: its complete runs, then per key the IQM [95% CI] over them."""
    intervals = aggregates(sweep, keys, reps=reps)
    rows = []
    for group in sweep.groups:
        runs = sum(g == group for g, _ in sweep.runs)
        rows.append([group, str(runs), *(interval_text(intervals[group, key]) for key in keys)])
    return markdown_table(["group", "seeds", *(f"{key}: IQM [95% CI]" for key in keys)], rows)


def per_seed_table(sweep: SeedSweep, keys: list[str]) -> str:
    """One row per seed, one column per key x group (the groups of one key side by side)."""
    columns = [(group, key) for key in keys for group in sweep.groups]
    rows = [
        [str(seed), *(value_text(sweep, (group, seed), key) for group, key in columns)]
        for seed in sweep.seeds
    ]
    return markdown_table(["seed", *(f"{key}: {group}" for group, key in columns)], rows)


def effects_per_seed_table(sweep: SeedSweep, effects: list[Effect]) -> str:
    """One row per seed, one column per group x effect: yes, no or - (undecided)."""
    columns = [
        (f"{group}: {effect.name or effect.text()}", by_seed)
        for effect in effects
        for group, by_seed in outcomes(sweep, effect).items()
    ]
    rows = [
        [str(seed), *(OUTCOME_TEXT[by_seed[seed]] for _, by_seed in columns)]
        for seed in sweep.seeds
    ]
    return markdown_table(["seed", *(name for name, _ in columns)], rows)


def incomplete_list(sweep: SeedSweep) -> str:
    """One line per incomplete run: its directory, status and last checkpoint."""
    return "\n".join(
        f"- `{run_dir}`: {incomplete_detail(run_dir, status)}"
        for run_dir, status in sweep.incomplete
    )


def page(
    sweep: SeedSweep, keys: list[str], effects: list[Effect], *, title: str, scores: str, reps: int
) -> str:
    """The results page: effects, aggregates, per-seed figures and outcomes, incomplete runs."""
    intro = (
        f"Scores: {scores}. Groups by {', '.join(sweep.fields)}: {', '.join(sweep.groups)}. "
        f"Seeds {seed_ranges(sweep.seeds)} ({len(sweep.seeds)}); {len(sweep.runs)} complete "
        f"runs, {len(sweep.incomplete)} incomplete (listed at the end, never counted)."
    )
    sections = [f"# Seed sweep: {title}", intro]
    if effects:
        sections += ["## Effects: share of seeds", UNDECIDED, effects_table(sweep, effects)]
    sections += [
        "## Aggregates over seeds",
        aggregates_table(sweep, keys, reps=reps),
        "## Per seed",
        per_seed_table(sweep, keys),
    ]
    if effects:
        sections += ["## Effects per seed", effects_per_seed_table(sweep, effects)]
    if sweep.incomplete:
        sections += ["## Incomplete runs", incomplete_list(sweep)]
    return "\n\n".join(sections) + "\n"


def sweep_record(sweep: SeedSweep, keys: list[str], effects: list[Effect], *, scores: str) -> dict:
    """The page's content as JSON: every complete run's record with its group and effect
    outcomes, and the incomplete runs."""
    results = {effect.text(): outcomes(sweep, effect) for effect in effects}
    runs = [
        {**record, "group": group,
         "effects": {text: o[group][seed] for text, o in results.items() if group in o}}
        for (group, seed), record in sorted(sweep.runs.items())
    ]  # fmt: skip
    return {
        "scores": scores,
        "group_by": list(sweep.fields),
        "keys": keys,
        "effects": list(results),
        "runs": runs,
        "incomplete": [{"run": str(path), "status": status} for path, status in sweep.incomplete],
    }


def write_page(out: Path, text: str, record: dict) -> list[Path]:
    """``text`` to ``out`` and ``record`` beside it (``<out stem>_runs.json``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    runs_path = out.with_name(f"{out.stem}_runs.json")
    runs_path.write_text(json.dumps(record, indent=1) + "\n")
    return [out, runs_path]
