"""The shipped SMAX map configs (configs/env/smax_*.yaml): each composes with the enemy settings of
JaxMARL's published SMAX results, which reach JaxMARL's env; each header states the map's
dimensions; the maps added with JaxMARL's list train a few hundred steps, and so does a map
chosen by override (8m).

Tests that build or step an env need the ``smax`` extra and skip without it. Training compiles
each map's reset and step (about 8 s of CPU a map on a cold JAX cache; the smacv2 maps, which
draw units and positions, up to 12 s), so the map runs are tiny: 2 copies, battles cut at 20
steps, 200 env steps.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import envs
from riskq.cli.compose import compose_config
from riskq.run.experiment import build_experiment
from riskq.run.trainer import train

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.stem for p in (ROOT / "configs" / "env").glob("smax_*.yaml"))
# Map -> (allies, enemies), from SMAC's map names and JaxMARL's scenarios (smacv2_*: n a side).
UNITS = {
    "3m": (3, 3),
    "8m": (8, 8),
    "2s3z": (5, 5),
    "3s5z": (8, 8),
    "3s_vs_5z": (3, 5),
    "5m_vs_6m": (5, 6),
    "3s5z_vs_3s6z": (8, 9),
    "6h_vs_8z": (6, 8),
    "smacv2_5_units": (5, 5),
    "smacv2_10_units": (10, 10),
    "smacv2_20_units": (20, 20),
}
# JaxMARL's published SMAX results (Rutherford et al. 2023, arXiv:2311.10090) use these.
PUBLISHED = {"attack_mode": "closest", "see_enemy_actions": True, "walls_cause_death": True}
HEADER_DIMS = re.compile(r"# (\d+)-dim observations, (\d+) actions .*, (\d+)-dim world state\.")
# Maps that do not train here: 3m trains in tests/test_smax.py; 2s3z, 3s_vs_5z and 5m_vs_6m came
# with it and are built above. Each map compiles its own step (about 8 s of CPU cold), and this
# file's cold cost stays under two minutes.
NOT_TRAINED_HERE = {"smax_3m", "smax_2s3z", "smax_3s_vs_5z", "smax_5m_vs_6m"}
# The runs of test_map_trains_a_few_hundred_steps: label -> overrides. A map without a file is
# chosen as docs/guide/commands.md shows: riskq-train env=smax_3m env.args.map_name=8m
# env.label=smax_8m.
MAP_RUNS = {label: [f"env={label}"] for label in SHIPPED if label not in NOT_TRAINED_HERE} | {
    "smax_8m": ["env=smax_3m", "env.args.map_name=8m", "env.label=smax_8m"]
}
TINY_RUN = [
    "t_max=200",
    "num_envs=2",
    "eval_episodes=2",
    "eval_interval=200",
    "log_interval=100",
    "env.args.episode_limit=20",
    "algo.batch_size=2",
    "algo.buffer_size=16",
    "algo.agent.n_quantiles=8",
    "progress=false",
    "threads=1",
]


def dims(map_name: str) -> tuple[int, int, int, int]:
    """(N agents, A actions, O observation, S state) of a map with SMAX's six unit types:
    A = 5 + enemies, O = 13 per other unit + 10 own features, S = 12 per unit."""
    allies, enemies = UNITS[map_name]
    return allies, 5 + enemies, 13 * (allies - 1 + enemies) + 10, 12 * (allies + enemies)


@pytest.fixture(scope="module")
def jaxmarl():
    return pytest.importorskip("jaxmarl", reason="needs the smax extra: pip install -e '.[smax]'")


@pytest.mark.parametrize("label", SHIPPED)
def test_config_header_states_the_maps_dimensions(label):
    cfg = compose_config([f"env={label}"])
    assert cfg.env.label == label and cfg.env.name == "smax"
    text = (ROOT / "configs" / "env" / f"{label}.yaml").read_text()
    _, a, o, s = dims(cfg.env.args["map_name"])
    assert [tuple(map(int, m)) for m in HEADER_DIMS.findall(text)] == [(o, a, s)]


@pytest.mark.parametrize("label", SHIPPED)
def test_config_enemy_settings_reach_jaxmarl(jaxmarl, label):
    from envs.smax_jax import dynamics

    args = compose_config([f"env={label}"]).env.args
    assert {key: args[key] for key in PUBLISHED} == PUBLISHED
    env = envs.make_batched_env("smax", num_envs=1, seed=0, **args)
    assert env.settings._asdict() == {
        **PUBLISHED,
        "map_name": args["map_name"],
        "won_battle_bonus": 1.0,
    }
    smax = env.scenario  # JaxMARL's SMAX itself
    assert (smax.see_enemy_actions, smax.walls_cause_death) == (True, True)
    smacv2 = args["map_name"].startswith("smacv2_")  # random unit types and start positions
    assert smax.smacv2_unit_type_generation == smax.smacv2_position_generation == smacv2
    assert dynamics(env.settings).env.attack_mode == "closest"  # its heuristic-enemy wrapper
    assert (env.info.n_agents, env.info.n_actions, env.info.obs_dim, env.info.state_dim) == dims(
        args["map_name"]
    )


def test_enemy_settings_can_be_turned_off_and_bad_values_name_the_key(jaxmarl):
    off = ["env=smax_3m", "env.args.see_enemy_actions=false", "env.args.walls_cause_death=false"]
    env = envs.make_batched_env("smax", num_envs=1, **compose_config(off).env.args)
    assert (env.scenario.see_enemy_actions, env.scenario.walls_cause_death) == (False, False)
    for key, value, shown in [
        ("see_enemy_actions", "maybe", "'maybe'"),
        ("walls_cause_death", 1, "1"),
    ]:
        cfg = compose_config(["env=smax_3m", f"env.args.{key}={value}"])
        with pytest.raises(
            ValueError, match=rf"^env 'smax': {key} must be true or false, got {shown}$"
        ):
            build_experiment(cfg)


@pytest.mark.parametrize("label", sorted(MAP_RUNS))
def test_map_trains_a_few_hundred_steps(jaxmarl, tmp_path, label):
    """The shipped maps but NOT_TRAINED_HERE, and 8m, which has no file."""
    cfg = compose_config([*MAP_RUNS[label], *TINY_RUN])
    map_name = label.removeprefix("smax_")
    assert (cfg.env.label, cfg.env.args["map_name"]) == (label, map_name)
    assert {key: cfg.env.args[key] for key in PUBLISHED} == PUBLISHED
    exp = build_experiment(cfg)
    info = exp.env.info
    assert (info.n_agents, info.n_actions, info.obs_dim, info.state_dim) == dims(map_name)
    summary = train(cfg, tmp_path, exp)
    assert summary["status"] == "complete" and summary["t_env"] >= 200 and summary["updates"] > 0
    allies, enemies = UNITS[map_name]
    assert 0 <= summary["eval/allies_dead"] <= allies
    assert 0 <= summary["eval/enemies_killed"] <= enemies
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train/loss"] for r in records if r.get("train/loss") is not None]
    assert losses and np.isfinite(losses).all()


def test_unknown_map_lists_every_jaxmarl_map(jaxmarl):
    from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO

    cfg = compose_config(["env=smax_3m", "env.args.map_name=9m"])
    valid = ", ".join(sorted(MAP_NAME_TO_SCENARIO))
    with pytest.raises(ValueError) as error:
        build_experiment(cfg)
    assert str(error.value) == f"env 'smax': unknown map_name '9m'; valid choices: {valid}"
