"""Throughput benchmark of RiskQ on MACF at the reference sizes; prints one JSON object.

    python scripts/bench.py [--threads 1] [--updates 20] [--train-steps 6000]

Keys:
- collect_env_steps_per_s: batched collection (num_envs copies in lock-step), epsilon 0.5.
- learner_updates_per_s: full learner updates (targets, quantile loss, RMSprop, sync) on
  batches of 32 MACF episodes, K = 32, GRU 64.
- floor_updates_per_s: a bare forward, backward and optimiser step of the same networks on the
  same batches (agent over the sequence, mixer on the taken actions, mean as the loss).
- learner_over_floor: their ratio (target: at most ~1.3).
- train_env_steps_per_s: end-to-end env steps per second of the training loop (riskq-train's
  ``train``) on MACF at one update per collected episode (the reference's update-to-data ratio).
Reference implementation, same machine kind and settings: ~130 env steps/s end to end,
~1.1 s per learner update (two threads), ~700 env steps/s when only acting.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from riskq.config import compose_config
from riskq.experiment import build_experiment
from riskq.learner import agent_inputs
from riskq.networks import sort_quantiles
from riskq.targets import gather_actions
from riskq.train import train


def timed(fn, repeats: int) -> float:
    """Calls per second of ``fn`` over ``repeats`` calls (after one warm-up call)."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return repeats / (time.perf_counter() - start)


def bare_step(exp, batch) -> None:
    learner = exp.learner
    inputs = agent_inputs(batch, exp.env.info.n_actions)  # [B, T+1, N, I]
    online = learner.agent(inputs, sort=False)  # [B, T+1, N, A, K], as the learner runs it
    chosen = sort_quantiles(gather_actions(online[:, :-1], batch.actions))  # [B, T, N, K]
    joint = learner.mix(learner.mixer, chosen, batch, slice(None, -1))  # [B, T, K]
    learner.optimiser.zero_grad(set_to_none=True)
    joint.mean().backward()
    learner.optimiser.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--train-steps", type=int, default=6000)
    args = parser.parse_args()
    overrides = [
        "env=macf",
        "algo=riskq",
        "risk=wang",
        f"threads={args.threads}",
        "progress=false",
        "num_envs=8",
    ]
    cfg = compose_config(overrides)
    exp = build_experiment(cfg)
    start, steps = time.perf_counter(), 0
    while exp.buffer.size < cfg.algo.batch_size:
        rollout = exp.runner.collect(epsilon=0.5)
        exp.buffer.add(rollout.batch)
        steps += rollout.steps
    collect_rate = steps / (time.perf_counter() - start)
    batch = exp.buffer.sample(cfg.algo.batch_size, exp.sample_rng)
    learner_rate = timed(lambda: exp.learner.update(batch, episodes_seen=0), args.updates)
    floor_rate = timed(lambda: bare_step(exp, batch), args.updates)

    train_cfg = compose_config(
        [
            *overrides,
            f"t_max={args.train_steps}",
            f"eval_interval={10 * args.train_steps}",
            "algo.updates_per_episode=1.0",
            "checkpoint_interval=10000000",
        ]
    )
    train_exp = build_experiment(train_cfg)
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        summary = train(train_cfg, Path(run_dir), train_exp)
        train_rate = summary["t_env"] / (time.perf_counter() - start)
    print(
        json.dumps(
            {
                "collect_env_steps_per_s": round(collect_rate, 1),
                "learner_updates_per_s": round(learner_rate, 2),
                "floor_updates_per_s": round(floor_rate, 2),
                "learner_over_floor": round(floor_rate / learner_rate, 3),
                "train_env_steps_per_s": round(train_rate, 1),
                "train_mean_episode_length": round(summary["t_env"] / summary["episodes"], 1),
                "batch_episodes": cfg.algo.batch_size,
                "batch_steps": batch.max_steps,
                "n_quantiles": cfg.algo.agent.n_quantiles,
                "threads": args.threads,
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
