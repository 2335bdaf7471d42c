"""RiskQ against the baselines: the table and figure of a baselines sweep
(``scripts/baselines.py``) per env, via rliable (``riskq-table baselines``).

Per env, one block per risk measure that RiskQ ran under (risk-neutral last): RiskQ, the
distributional baselines under the same measure, and the expected-value baselines
(risk-neutral, the same runs in every block). Each score is one number per run, from its run
record (``riskq.analysis.runs``: the final evaluation, ``riskq-eval``'s file, or the mean of the
late evaluations): mean return, CVaR(0.2) of the evaluation returns, and the env's risk events
per episode (``RISK_EVENTS``); on SMAX maps also the win rate, and the risk event is allies
lost. Cells show the interquartile mean over runs with a 95% stratified bootstrap CI; the last
columns give the probability that a RiskQ run of the block beats a run of the row on each
higher-is-better score, and that it has fewer risk events (``riskq.analysis.aggregate``).

Beside it, per env where RiskQ also ran risk-neutral, the risk measures' own effect: for each
measure, the probability that a RiskQ run under it beats a risk-neutral RiskQ run on each
higher-is-better score, and that it has fewer risk events (``risk_comparison``).

``write_env_table`` writes ``baselines_<env><suffix>.md``, that comparison
``baselines_<env><suffix>_risk.md``, the run records
``baselines_<env><suffix>_runs.json`` (run directories are not kept in git; ``--runs`` reads
such files back, so a later sweep adds seeds without re-running the runs behind them) and the
intervals figure ``baselines_<env><suffix>_iqm.png/.svg``.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from riskq.analysis.aggregate import improvement_estimates, interval_estimates
from riskq.analysis.markdown import interval_text, markdown_table
from riskq.analysis.runs import SCORE_SOURCES

REFERENCE = "riskq"
NEUTRAL = "neutral"
SCORES = {"eval/return_mean": "return", "eval/return_cvar_0.2": "CVaR(0.2)"}  # higher is better
# per env family (an env label or its prefix before "_", e.g. smax_3m -> smax)
ENV_SCORES = {"smax": {"eval/win_rate": "win rate"}}  # higher is better, before SCORES
RISK_EVENTS = {
    "macn": ("eval/cliff_falls", "falls"),
    "macf": ("eval/crashes", "crashes"),
    "smax": ("eval/allies_dead", "allies lost"),
}
ALGO_ORDER = ("riskq", "dmix", "ddn", "iqr", "risk_mix", "vdn", "qmix")  # table row order

Group = tuple[str, str, str]  # (env label, algo name, risk label)
RUNS_SUFFIX = "_runs.json"  # baselines_<env><source suffix>_runs.json: the table's run records


def groups_of(records: list[dict]) -> dict[Group, list[dict]]:
    """Scores of each run by (env, algo, risk), in record order."""
    groups: dict[Group, list[dict]] = defaultdict(list)
    for record in records:
        groups[(record["env"], record["algo"], record["risk"])].append(record["scores"])
    return dict(groups)


def env_family(env: str) -> str:
    """The env label's family: ``smax_3m`` -> ``smax``; ``macn`` -> ``macn``."""
    return env.split("_")[0]


def higher_is_better(env: str) -> dict[str, str]:
    """Summary key -> column name of the scores that RiskQ should raise in ``env``."""
    return {**ENV_SCORES.get(env_family(env), {}), **SCORES}


def risk_events(env: str) -> dict[str, str]:
    """Summary key -> column name of the env's risk events (lower is better; may be empty)."""
    family = env_family(env)
    return dict([RISK_EVENTS[family]]) if family in RISK_EVENTS else {}


def score_keys(env: str) -> dict[str, str]:
    """Summary key -> column name: the scores, then the env's risk events (if it has any)."""
    return {**higher_is_better(env), **risk_events(env)}


def score_signs(env: str) -> dict[str, float]:
    """Summary key -> the sign that makes it higher-is-better: 1 for a score, -1 for a risk
    event (a probability of improvement on negated counts is the probability of fewer)."""
    return {**dict.fromkeys(higher_is_better(env), 1.0), **dict.fromkeys(risk_events(env), -1.0)}


def p_headers(env: str, *, better: str, fewer: str) -> list[str]:
    """The probability columns' names: ``better`` + score name per score, then ``fewer`` + event
    name per risk event."""
    return [f"{better}: {name}" for name in higher_is_better(env).values()] + [
        f"{fewer}: {name}" for name in risk_events(env).values()
    ]


def block_rows(groups: dict[Group, list], *, env: str, risk: str) -> list[tuple[str, str]]:
    """(algo, risk) rows of one block: algorithms run under ``risk``, then risk-neutral ones."""
    rows = [(algo, risk) for e, algo, r in groups if e == env and r == risk]
    if risk != NEUTRAL:
        rows += [(algo, NEUTRAL) for e, algo, r in groups if e == env and r == NEUTRAL]
    rows = [row for row in rows if row[0] != REFERENCE or row[1] == risk]
    rank = {algo: i for i, algo in enumerate(ALGO_ORDER)}
    return sorted(set(rows), key=lambda row: (rank.get(row[0], len(rank)), row))


def block_risks(groups: dict[Group, list], *, env: str) -> list[str]:
    """The risk measures RiskQ ran under in ``env``, risk-neutral last (its block compares
    risk-neutral RiskQ with the risk-neutral baselines)."""
    risks = sorted({r for e, algo, r in groups if e == env and algo == REFERENCE})
    return sorted(risks, key=lambda risk: risk == NEUTRAL)


def scores_of(summaries: list[dict], key: str) -> np.ndarray:
    """One score per run [R, 1] (rliable's runs x tasks; one task)."""
    return np.array([[float(s[key])] for s in summaries if key in s])  # [R, 1]


def block_table(groups: dict[Group, list], *, env: str, risk: str, reps: int) -> list[dict]:
    """Rows of one block: per score an IQM Interval, and the probability of improvement of RiskQ
    (under ``risk``) over the row: higher on each higher-is-better score, fewer risk events."""
    signs, rows = score_signs(env), block_rows(groups, env=env, risk=risk)
    reference = groups.get((env, REFERENCE, risk))
    table = []
    for algo, row_risk in rows:
        summaries = groups[(env, algo, row_risk)]
        row = {"algo": algo, "risk": row_risk, "seeds": len(summaries), "iqm": {}, "p": {}}
        for key, sign in signs.items():
            scores = scores_of(summaries, key)
            row["iqm"][key] = (
                interval_estimates({key: scores}, reps=reps)[key] if len(scores) else None
            )
            if reference and algo != REFERENCE and len(scores):
                pair = (sign * scores_of(reference, key), sign * scores)
                row["p"][key] = improvement_estimates({key: pair}, reps=reps)[key]
        table.append(row)
    return table


def risk_comparison(groups: dict[Group, list], *, env: str, reps: int) -> list[dict]:
    """RiskQ under each risk measure against risk-neutral RiskQ in ``env``, one row per
    measure: per higher-is-better score the probability that a run under the measure scores
    higher than a risk-neutral run, per risk event that it has fewer (rliable's probability of
    improvement on the negated counts). Empty without risk-neutral RiskQ runs."""
    neutral = groups.get((env, REFERENCE, NEUTRAL))
    if not neutral:
        return []
    signs, rows = score_signs(env), []
    for risk in block_risks(groups, env=env)[:-1]:  # risk-neutral is last
        averse = groups[(env, REFERENCE, risk)]
        row = {"risk": risk, "seeds": (len(averse), len(neutral)), "p": {}}
        for key, sign in signs.items():
            pair = (sign * scores_of(averse, key), sign * scores_of(neutral, key))
            if all(len(scores) for scores in pair):
                row["p"][key] = improvement_estimates({key: pair}, reps=reps)[key]
        rows.append(row)
    return rows


def risk_markdown(rows: list[dict], *, env: str) -> str:
    """``risk_comparison``'s rows as one Markdown table."""
    header = ["risk", "seeds (risk, neutral)"]
    header += p_headers(env, better="P(risk > neutral)", fewer="P(fewer than neutral)")
    cells = [
        [row["risk"], "{}, {}".format(*row["seeds"])]
        + [interval_text(row["p"][key], 2) if key in row["p"] else "-" for key in score_signs(env)]
        for row in rows
    ]
    return markdown_table(header, cells) + "\n"


def markdown(tables: dict[str, list[dict]], *, env: str) -> str:
    """The blocks of one env as one Markdown table."""
    keys = score_keys(env)
    header = [
        "block",
        "algo",
        "risk",
        "seeds",
        *(f"{name}: IQM [95% CI]" for name in keys.values()),
    ]
    header += p_headers(env, better="P(RiskQ > algo)", fewer="P(RiskQ fewer)")
    rows = []
    for block, block_rows_ in tables.items():
        for row in block_rows_:
            cells = [block, row["algo"], row["risk"], str(row["seeds"])]
            cells += [interval_text(row["iqm"][key]) for key in keys]
            cells += [interval_text(row["p"][key], 2) if key in row["p"] else "-" for key in keys]
            rows.append(cells)
    return markdown_table(header, rows) + "\n"


def plot_intervals(
    tables: dict[str, list[dict]], *, env: str, out_dir: Path, source: str = "final"
) -> list[Path]:
    """One subplot per score: each row's IQM with its 95% CI, RiskQ's colour from riskq-plot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from riskq.analysis.plot import algo_colour

    keys = score_keys(env)
    rows = [(block, row) for block, block_rows_ in tables.items() for row in block_rows_]
    fig = Figure(figsize=(4.2 * len(keys), 0.9 + 0.32 * len(rows)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(keys), sharey=True, squeeze=False)[0]
    labels = [
        f"{row['algo']}, {row['risk']}" + ("" if row["risk"] == block else f" ({block} block)")
        for block, row in rows
    ]
    for ax, (key, name) in zip(axes, keys.items(), strict=True):
        for y, (_, row) in enumerate(rows):
            interval = row["iqm"][key]
            if interval is None:
                continue
            error = [[interval.point - interval.low], [interval.high - interval.point]]
            ax.errorbar(interval.point, y, xerr=error, fmt="o", color=algo_colour(row["algo"]),
                        capsize=3)  # fmt: skip
        ax.set(xlabel=f"{name} (IQM, 95% CI)", yticks=range(len(rows)), yticklabels=labels)
        ax.grid(alpha=0.3)
    axes[0].invert_yaxis()
    fig.suptitle(f"{env}: {SCORE_SOURCES[source].title}, interquartile mean over runs")
    stem = re.sub(r"[^\w.-]+", "_", env) + SCORE_SOURCES[source].suffix
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"baselines_{stem}_iqm{suffix}" for suffix in (".png", ".svg")]
    for path in paths:
        fig.savefig(path, dpi=150, metadata={"Date": None} if path.suffix == ".svg" else None)
    return paths


def write_env_table(
    records: list[dict], *, env: str, out_dir: Path, source: str = "final", reps: int = 2000
) -> tuple[str, list[Path]]:
    """The table of ``env`` from the run records of every env: its Markdown text (with the
    risk measures' comparison below it, if any), and the files written under ``out_dir`` (the
    table, the comparison, its run records, the intervals figure)."""
    groups = groups_of(records)
    tables = {
        risk: block_table(groups, env=env, risk=risk, reps=reps)
        for risk in block_risks(groups, env=env)
    }
    text = markdown(tables, env=env)
    suffix = SCORE_SOURCES[source].suffix
    out_dir.mkdir(parents=True, exist_ok=True)
    table_path = out_dir / f"baselines_{env}{suffix}.md"
    table_path.write_text(text)
    written = [table_path]
    comparison = risk_comparison(groups, env=env, reps=reps)
    if comparison:
        risk_text = risk_markdown(comparison, env=env)
        written.append(out_dir / f"baselines_{env}{suffix}_risk.md")
        written[-1].write_text(risk_text)
        text += f"\nRiskQ under each risk measure against risk-neutral RiskQ:\n\n{risk_text}"
    runs_path = out_dir / f"baselines_{env}{suffix}{RUNS_SUFFIX}"
    env_records = [record for record in records if record["env"] == env]
    runs_path.write_text(json.dumps(env_records, indent=1) + "\n")
    figures = plot_intervals(tables, env=env, out_dir=out_dir, source=source)
    return text, [*written, runs_path, *figures]
