"""Run directories as the tables read them: which directories are runs, which are complete,
and what each complete run scored.

A run directory holds ``config.yaml`` next to a ``tb/`` folder (as for ``riskq-plot``; Hydra's
``.hydra/config.yaml`` is not one). It is complete when its ``summary.json`` says so
(``riskq.run.run_dir.run_status``); the others (running, killed, failed) are reported, never
counted. What a complete run scored is its **run record** (``run_record``): its directory, env,
algo, risk label, seed and every numeric ``eval/`` score of one scores' file, chosen by a
``ScoreSource`` (``SCORE_SOURCES``: the final evaluation, ``riskq-eval``'s file, or the mean of
the late evaluations). Records are plain dicts, so a table's ``*_runs.json`` reads back as
they were written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from riskq.errors import UsageError
from riskq.run.labels import eval_file_name, risk_label, risk_level
from riskq.run.run_dir import SUMMARY_FILE, run_status
from riskq.run.run_files import METRICS_FILE, read_metrics  # the one tolerant reader; no torch

RUN_MARKER = "tb"  # the folder that tells a run's config.yaml from Hydra's copy of it

Incomplete = tuple[Path, str]  # (run dir, status)


def run_dirs(root: Path) -> list[Path]:
    """Every run directory at any depth under ``root`` (a run directory itself counts)."""
    if not root.exists():
        raise UsageError(f"{root} does not exist")
    found = root.rglob("config.yaml") if root.is_dir() else []
    return sorted(path.parent for path in found if (path.parent / RUN_MARKER).is_dir())


def split_by_status(root: Path) -> tuple[list[Path], list[Incomplete]]:
    """The complete runs under ``root``, and (run dir, status) of the others."""
    complete, incomplete = [], []
    for run_dir in run_dirs(root):
        status = run_status(run_dir)
        if status == "complete":
            complete.append(run_dir)
        else:
            incomplete.append((run_dir, status))
    return complete, incomplete


# config.yaml keys every table reads -> the type they must have
TABLE_KEYS = {"env.label": str, "algo.name": str, "risk.name": str, "seed": int, "t_max": int}


def config_value(config, key: str):
    """``config['a']['b']`` for ``key='a.b'``; None where a level is missing or not a mapping."""
    node = config
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def read_config(run_dir: Path) -> dict:
    """A run's ``config.yaml``; one that is not YAML, or lacks a key of TABLE_KEYS or has one
    of the wrong type, is a one-line UsageError naming the file and the key."""
    path = run_dir / "config.yaml"
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise UsageError(f"{path} is not valid YAML ({str(error).splitlines()[0]})") from None
    for key, kind in TABLE_KEYS.items():
        value = config_value(config, key)
        if value is None:
            raise UsageError(f"{path} lacks {key} (is it a riskq-train config?)")
        if not isinstance(value, kind) or isinstance(value, bool):
            raise UsageError(f"{path}: {key} must be a {kind.__name__}, got {value!r}")
    try:
        risk_of(config)
    except (TypeError, ValueError) as error:
        raise UsageError(f"{path}: risk: {error}") from None
    return config


def risk_of(config: dict) -> str:
    """The run's risk label, e.g. ``wang(0.75)`` (``riskq.run.labels.risk_label``)."""
    risk = config["risk"]
    return risk_label(str(risk["name"]), risk_level(risk))


def json_scores(path: Path, config: dict) -> dict:
    """The scores a JSON file holds (summary.json, riskq-eval's eval_<risk>.json); a file that
    is not a JSON object is a one-line UsageError."""
    return read_json_object(path)


def read_json_object(path: Path) -> dict:
    """The JSON object in ``path``; anything else is a one-line UsageError naming the file."""
    try:
        scores = json.loads(path.read_text())
    except ValueError:
        scores = None
    if not isinstance(scores, dict):
        raise UsageError(f"{path} is not a JSON object of scores")
    return scores


def late_scores(path: Path, config: dict) -> dict:
    """Mean of every ``eval/`` scalar of metrics.jsonl over the greedy evaluations from half
    the run's budget (``t_max`` / 2) on; the closing evaluation, which repeats the policy of
    the last one, is left out."""
    start = int(config["t_max"]) / 2
    rows = [r for r in read_metrics(path) if r["step"] >= start and not r.get("final")]
    keys = sorted({key for record in rows for key in record if key.startswith("eval/")})
    return {key: float(np.mean([r[key] for r in rows if key in r])) for key in keys}


@dataclass(frozen=True)
class ScoreSource:
    """Where ``--scores NAME`` reads a run's scores and how a table's outputs are named."""

    file: Callable[[Path, dict], Path]  # (run dir, its config.yaml) -> the scores' file
    suffix: str  # baselines outputs: baselines_<env><suffix>.md, ..._iqm.png
    title: str  # what the scores are, for figures and pages
    read: Callable[[Path, dict], dict] = json_scores  # (scores' file, config) -> scores
    missing: str = ""  # what to do when a complete run lacks the file


SCORE_SOURCES = {
    "final": ScoreSource(
        file=lambda run_dir, config: run_dir / SUMMARY_FILE,
        suffix="",
        title="final greedy evaluation",
    ),
    "eval": ScoreSource(  # riskq-eval's file for the run's own measure
        file=lambda run_dir, config: (
            run_dir / eval_file_name(str(config["risk"]["name"]), risk_level(config["risk"]))
        ),
        suffix="_eval",
        title="final policy (riskq-eval)",
        missing="run riskq-eval {run_dir} first",
    ),
    "late": ScoreSource(  # the second half of training, from the run's metrics.jsonl
        file=lambda run_dir, config: run_dir / METRICS_FILE,
        suffix="_late",
        title="mean of the greedy evaluations from half the budget on",
        read=late_scores,
    ),
}


def run_record(run_dir: Path, config: dict, scores: dict) -> dict:
    """What a table keeps of one run: where it ran, its (env, algo, risk, seed) and every
    numeric ``eval/`` score of its scores' file."""
    return {
        "run": str(run_dir),
        "env": config["env"]["label"],
        "algo": config["algo"]["name"],
        "risk": risk_of(config),
        "seed": int(config["seed"]),
        "scores": {
            key: float(value)
            for key, value in scores.items()
            if key.startswith("eval/") and isinstance(value, int | float)
        },
    }


def load_records(root: Path, source: str = "final") -> tuple[list[dict], list[Incomplete]]:
    """Run records of every complete run under ``root``, read from the file of
    ``SCORE_SOURCES[source]``, and the (run dir, status) of the incomplete ones. A complete
    run without its scores' file is a UsageError that says what to run."""
    scores = SCORE_SOURCES[source]
    complete, incomplete = split_by_status(root)
    records = []
    for run_dir in complete:
        config = read_config(run_dir)
        path = scores.file(run_dir, config)
        if not path.is_file():
            hint = f" ({scores.missing.format(run_dir=run_dir)})" if scores.missing else ""
            raise UsageError(f"--scores {source}: {path} not found{hint}")
        records.append(run_record(run_dir, config, scores.read(path, config)))
    return records, incomplete


def gather_records(roots: list[Path], source: str = "final") -> tuple[list[dict], list[Incomplete]]:
    """``load_records`` of every root, one list of records and one of incomplete runs."""
    records, incomplete = [], []
    for root in roots:
        found, left_out = load_records(root, source)
        records, incomplete = records + found, incomplete + left_out
    return records, incomplete


def run_key(record: dict) -> tuple[str, str, str, int]:
    return record["env"], record["algo"], record["risk"], record["seed"]


def merge_records(fresh: list[dict], kept: list[dict]) -> tuple[list[dict], list[dict]]:
    """``fresh`` records (this call's sweeps) and those of ``kept`` (``--runs`` files) that
    no fresh record replaces (same env, algo, risk and seed), and the replaced ones."""
    fresh_keys = {run_key(record) for record in fresh}
    replaced = [record for record in kept if run_key(record) in fresh_keys]
    merged = fresh + [record for record in kept if run_key(record) not in fresh_keys]
    return sorted(merged, key=lambda record: (*run_key(record), record["run"])), replaced


def read_records(path: Path) -> list[dict]:
    """The records of a ``--runs`` file; one that is not such a file is a UsageError."""
    try:
        records = json.loads(path.read_text())
        if not isinstance(records, list):
            raise TypeError
        for record in records:
            run_key(record), dict(record["scores"])
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise UsageError(
            f"--runs {path}: not a run-records file written by riskq-table baselines ({error!r})"
        ) from None
    return records
