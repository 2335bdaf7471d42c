"""Weights & Biases tracking (logger.wandb) in offline mode: the run files W&B writes under the
run directory hold the scalars of metrics.jsonl, and a resumed run continues the same W&B run."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest
from budgets import TINY

from riskq.cli.compose import compose_config
from riskq.run.experiment import build_experiment
from riskq.run.tracking import wandb_run_id
from riskq.run.trainer import train

BLOCK, HEADER = 32 * 1024, 7  # the .wandb file: LevelDB's log format after a 7-byte header


def wandb_records(path: Path) -> list[bytes]:
    """The records of a W&B run file: 32 KiB blocks of chunks, each with a 7-byte header
    (checksum, length, kind: 1 whole record, 2 first, 3 middle, 4 last part)."""
    data, pos, records, parts = path.read_bytes(), HEADER, [], b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # the block's zero-filled tail
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        parts += data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (1, 4):
            records.append(parts)
            parts = b""
    return records


def wandb_runs(run_dir: Path) -> list[tuple[str, list[dict]]]:
    """(W&B run id, the scalars of each history row: step and riskq's names) of every offline
    run W&B wrote under the run directory, oldest first."""
    from wandb.proto import wandb_internal_pb2

    runs = []
    for path in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        rows = []
        for raw in wandb_records(path):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(raw)
            if record.WhichOneof("record_type") == "history":
                items = {  # W&B keeps "eval/return_mean" as the nested key [eval, return_mean]
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
                row = {k: v for k, v in items.items() if not k.startswith("_")}
                rows.append({"step": record.history.step.num, **row})
        runs.append((path.stem.removeprefix("run-"), rows))
    return runs


def metrics_rows(run_dir: Path) -> list[dict]:
    """metrics.jsonl merged by step (W&B keeps one history row per step), NaN for None."""
    rows: dict[int, dict] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        record.pop("final", None)
        row = rows.setdefault(record["step"], {})
        row.update({k: math.nan if v is None else v for k, v in record.items()})
    return list(rows.values())


def same(rows: list[dict], expected: list[dict]) -> bool:
    def key(value):  # NaN == NaN here
        return "nan" if isinstance(value, float) and math.isnan(value) else value

    return [{k: key(v) for k, v in r.items()} for r in rows] == [
        {k: key(v) for k, v in r.items()} for r in expected
    ]


@pytest.fixture
def offline(monkeypatch):
    pytest.importorskip("wandb", reason="needs the wandb extra: pip install -e '.[wandb]'")
    monkeypatch.setenv("WANDB_MODE", "offline")  # no network: the run stays in its run dir
    monkeypatch.setenv("WANDB_SILENT", "true")


def train_in(run_dir: Path, overrides: list[str]) -> dict:
    cfg = compose_config([*TINY, "env=macn", "logger.wandb=true", *overrides])
    return train(cfg, run_dir, build_experiment(cfg))


def test_an_offline_wandb_run_holds_the_scalars_of_metrics_jsonl(tmp_path, offline):
    run_dir = tmp_path / "macn_run"
    train_in(run_dir, ["logger.group=sweep-a", "logger.tags=[macn,tiny]"])
    ((run_id, rows),) = wandb_runs(run_dir)
    assert run_id == wandb_run_id(run_dir)
    assert len(rows) > 3 and "eval/return_mean" in rows[-1] and "train/loss" in rows[-1]
    assert same(rows, metrics_rows(run_dir))


def test_a_resumed_run_continues_the_same_wandb_run(tmp_path, offline):
    run_dir = tmp_path / "run"
    train_in(run_dir, ["t_max=150"])
    train_in(run_dir, [f"resume={run_dir}"])
    (first_id, first), (second_id, second) = wandb_runs(run_dir)
    assert first_id == second_id == wandb_run_id(run_dir)
    assert first[-1]["step"] < second[0]["step"]  # the second goes on after the first
    assert same(first + second, metrics_rows(run_dir))


def test_the_wandb_run_id_is_the_run_directory_name_made_unique_by_its_path(tmp_path):
    first, second = tmp_path / "a" / "0_seed-0", tmp_path / "b" / "0_seed-0"
    assert wandb_run_id(first) == wandb_run_id(tmp_path / "a" / "." / "0_seed-0")
    assert wandb_run_id(first).startswith("0_seed-0-") and wandb_run_id(second) != wandb_run_id(
        first
    )
    assert wandb_run_id(tmp_path / "1_algo.optim_betas-[0.9,0.99]").startswith(
        "1_algo.optim_betas-[0.9-0.99]-"
    )
