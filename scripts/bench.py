"""Throughput benchmark of RiskQ on MACF at the reference sizes; prints one JSON object.

    python scripts/bench.py [--threads 1] [--device cpu] [--updates 20] [--train-steps 20000]

Keys:
- collect_env_steps_per_s: batched collection (num_envs copies in lock-step), epsilon 0.5.
- learner_updates_per_s: full learner updates (targets, quantile loss, RMSprop, sync) on
  batches of 32 MACF episodes, K = 32, GRU 64.
- floor_updates_per_s: a bare forward, backward and optimiser step of the online network and
  mixer on the same batches (GRU features, the taken actions' head, mix, mean as the loss): no
  targets, no quantile loss. learner_over_floor: their ratio.
- update_gflop: the matrix-product arithmetic of one update, counted from the shapes (online
  and target GRU forward, online GRU backward, every action's head at t+1 for risk-greedy
  selection, the taken / greedy action's head, encoders); sgemm_gflop_per_s: this machine's
  1024x1024 float32 matmul rate (same threads, same device); learner_flop_efficiency:
  update_gflop * learner_updates_per_s / sgemm_gflop_per_s.
- update_split_ms: one update's wall time by stage (forward: agent inputs and both networks'
  GRU features; targets; loss: the taken actions' head, mixer, quantile loss; backward;
  optimiser: clip and RMSprop), medians over ``--updates`` updates.
- train_env_steps_per_s: end-to-end env steps per second of the training loop (riskq-train's
  ``train``) on MACF at one update per collected episode (the reference's update-to-data ratio),
  its buffer filled with one batch beforehand so that every timed episode pays for its update.
- reference_recorded, reference_env_steps_per_s, reference_s_per_update: the reference
  implementation on MACF, recorded on the date named (2 threads, 30k steps; not measured by this
  script); train_over_recorded_reference and learner_over_recorded_reference: the ratios to that
  record, side by side only when the bench runs on the same machine state as the record.
- load_average: the 1-minute load average when the bench ends (other jobs skew every rate).

With ``--smax`` (needs the smax extra), on SMAX 3m with 64 copies and random available actions:
- smax_raw_env_steps_per_s: raw JaxMARL, ``jit(vmap(env.step))`` with its auto-reset, timed in
  turn with riskq's runners below (after each round of collections, as many raw calls as the
  lock-step collection made), so that the ratios compare one machine state: this VM's raw rate
  moved between 13k and 28k steps/s from one minute to the next.
- smax_adapter_env_steps_per_s: ``envs.smax.SmaxEnv`` (whole episodes in lock-step; steps of
  copies that already ended are not counted), timed alone before the runners.
- smax_collect_env_steps_per_s: riskq's Runner (RiskQ agent forward, epsilon 0.5) on the adapter.
- smax_raw_over_adapter, smax_raw_over_collect: the ratios (target: at most 1.5).
- smax_collect_useful_share: the Runner's counted steps over its copy-steps (copies x step
  calls): a copy whose episode has ended waits, uncounted, until the longest episode of the call
  ends. Once half the copies have ended the adapter steps only a block of rows (``compact``), so
  the waiting copies cost less than 1 / share of the time.
- smax_collect_whole_env_steps_per_s: the same Runner with ``env.args.compact=false`` (every copy
  stepped at every call), its collections interleaved with the compacting one's;
  smax_compact_over_whole: the speed-up of compacting.
- smax_collect_streaming_env_steps_per_s: ``collection=streaming``
  (riskq.run.runner.StreamingRunner: a copy restarts as soon as its episode ends, no copy
  waits), interleaved with the two above;
  smax_raw_over_streaming: its ratio to raw JaxMARL.
- torch_updates_per_s_before_jax / _after_jax: MACF learner updates before JAX was imported and
  after it ran (envs/smax.py keeps XLA to one thread, so the two should match).

and, on SMAX 2s3z (RiskQ, Wang 0.75) under each rule of ``SMAX_RULES`` (``previous_rule``: as
SMAX shipped before length buckets; ``rule_smax``: the SMAX configs' default,
configs/rule/smax.yaml; ``rule_smax_pymarl2``: PyMARL2's update-to-data ratio):
- smax_train_<rule>_env_steps_per_s: the training loop end to end (riskq-train's ``train``:
  collection, replay, updates; evaluation only at the end, on 8 episodes) over
  ``--smax-train-steps`` env steps from the start of a run (epsilon from 1), its buffer filled
  with one batch beforehand; smax_train_<rule>_over_previous_rule: the ratio, same bench.
- smax_learner_<rule>_sampled_steps_per_s: batch episodes x their valid steps per second of
  updating (batches of the rule's size from 256 episodes collected at epsilon 0.5);
  _padded_steps_per_s: counting every padded step; _update_split_ms: one update's stages as
  update_split_ms, summed over its length buckets; _flop_efficiency: update_gflop over the
  buckets' padded shapes x updates per second over sgemm_gflop_per_s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs import make_batched_env
from riskq.cli.compose import compose_config
from riskq.model.learner import agent_inputs
from riskq.run.experiment import build_experiment
from riskq.run.trainer import train

# The reference implementation on MACF (2 threads, a 30k-step run), recorded figures, not
# measured by this script: its rate over the whole run and its learner update. Measured on
# 2026-12-07 on an idle 2-core machine of this project's kind, back to back with
# `scripts/bench.py --threads 2` (1,221 and 1,416 env-steps/s: 8.6-9.9x); an earlier sitting's
# 127.0 env-steps/s and 1.44 s per update came from another day, so ratios printed against
# them were not side by side. The ratios below are to this recorded figure: rerun the
# reference beside the bench for a side-by-side ratio.
REFERENCE_RECORDED = "2026-12-07, MACF, 2 threads, 30k steps, idle 2-core machine"
REFERENCE_ENV_STEPS_PER_S = 163.5  # over the whole run (142.5 once training starts)
REFERENCE_S_PER_UPDATE = 1.039  # its learner update, same run
# The reference learning rule, which configs/env/macf.yaml changes for learning MACF on a CPU
# budget: the bench measures the update the reference makes (batch 32, one update per episode).
REFERENCE_RULE = [
    "algo.batch_size=32",
    "algo.updates_per_episode=1.0",
    "algo.td_lambda=0.6",
    "algo.reward_scale=1.0",
    "algo.target_update_interval=200",
]


def timed(fn, repeats: int) -> float:
    """Calls per second of ``fn`` over ``repeats`` calls (after one warm-up call)."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return repeats / (time.perf_counter() - start)


def bare_step(exp, batch) -> None:
    """The floor: the online network's prediction (no targets), its mean as the loss, and the
    learner's own backward and optimiser step."""
    learner = exp.learner
    learner.step(learner.online_prediction(batch).mean())  # prediction: [B, T, K]


def update_gflop(learner, batch) -> float:
    """Matrix-product GFLOP of one update at the batch's shapes (multiply-add = 2 FLOP)."""
    agent = learner.agent
    batch_size, steps, n_agents = batch.actions.shape  # B, T, N
    rows, next_rows = batch_size * (steps + 1) * n_agents, batch_size * steps * n_agents
    hidden, actions, quantiles = agent.hidden_dim, agent.n_actions, agent.n_quantiles
    gru = rows * hidden * 3 * hidden  # one [R, H] x [H, 3H] product
    encoder = rows * agent.input_dim * hidden
    macs = (
        3 * encoder  # online and target forward, online weight gradient
        + 4 * gru  # input and recurrent products, online and target
        + 4 * gru  # online backward: recurrent loop, input, W_ih and W_hh gradients
        + next_rows * hidden * actions * quantiles  # every action's head at t+1 (greedy)
        + 4 * next_rows * hidden * quantiles  # taken action forward + backward, target greedy
    )
    return 2 * macs / 1e9


def sgemm_gflop_per_s(device: torch.device, repeats: int = 20) -> float:
    """float32 1024x1024 matmul rate of this machine at torch's current thread count."""
    a, b = (torch.randn(1024, 1024, device=device) for _ in range(2))
    rate = timed(lambda: synchronized(device, lambda: a @ b), repeats)
    return rate * 2 * 1024**3 / 1e9


def synchronized(device: torch.device, fn):
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result


def update_split_ms(learner, batch, device: torch.device, repeats: int) -> dict[str, float]:
    """Median wall milliseconds of one update's stages (the same calls as Learner.update)."""
    stages = {"forward": [], "targets": [], "loss": [], "backward": [], "optimiser": []}
    for _ in range(repeats + 1):
        clock = [time.perf_counter()]

        def mark(result, clock=clock):
            synchronized(device, lambda: None)
            clock.append(time.perf_counter())
            return result

        inputs = agent_inputs(batch, learner.n_actions)  # [B, T+1, N, I]
        features, target_features = mark(learner.features(inputs))
        targets = mark(learner.targets(batch, features[:, 1:].detach(), target_features[:, 1:]))
        predicted = learner.predict(batch, features[:, :-1])  # [B, T, K]
        loss = mark(learner.loss(predicted, targets, batch.mask))
        learner.zero_grad()
        mark(loss.backward())
        mark(learner.apply_gradients())
        for name, start, end in zip(stages, clock, clock[1:], strict=False):
            stages[name].append(1e3 * (end - start))
    return {name: round(float(np.median(times[1:])), 1) for name, times in stages.items()}


def smax_random_actions(avail, rng):
    """A uniformly random available action per agent: avail [E, N, A] bool -> [E, N]."""
    return np.where(avail, rng.random(avail.shape), -1.0).argmax(axis=-1)  # [E, N]


def raw_smax_stepper(map_name: str, copies: int) -> Callable[[int], tuple[int, float]]:
    """Raw JaxMARL, compiled: ``jit(vmap(step))`` (its own auto-reset) of ``copies`` copies,
    random available actions drawn on the host, outputs fetched each call. Returns
    ``run(calls) -> (env steps, seconds)``, to be timed in turn with riskq's runners."""
    import jax

    from envs.smax_jax import import_jaxmarl

    jaxmarl = import_jaxmarl(map_name)
    from jaxmarl.environments.smax import map_name_to_scenario

    env = jaxmarl.make("HeuristicEnemySMAX", scenario=map_name_to_scenario(map_name))

    def step(key, state, actions):
        joint = {agent: actions[i] for i, agent in enumerate(env.agents)}
        obs, state, rewards, dones, _ = env.step(key, state, joint)
        masks = env.get_avail_actions(state)
        avail = jax.numpy.stack([masks[agent] for agent in env.agents])  # [N, A]
        return state, (obs, rewards, dones, avail)

    batched_step = jax.jit(jax.vmap(step))
    keys = jax.random.split(jax.random.PRNGKey(0), copies)
    _, state = jax.jit(jax.vmap(env.reset))(keys)
    masks = jax.vmap(env.get_avail_actions)(state)
    live = {
        "state": state,
        "avail": np.stack([np.asarray(masks[agent]) for agent in env.agents], axis=1) > 0,
        "call": 0,
    }
    rng = np.random.default_rng(0)

    def run(calls: int) -> tuple[int, float]:
        start = time.perf_counter()
        for _ in range(calls):
            live["call"] += 1
            keys_now = jax.random.split(jax.random.fold_in(keys[0], live["call"]), copies)
            actions = smax_random_actions(live["avail"], rng).astype(np.int32)
            live["state"], out = batched_step(keys_now, live["state"], actions)
            live["avail"] = np.asarray(jax.device_get(out)[3]) > 0  # [E, N, A]
        return calls * copies, time.perf_counter() - start

    run(2)  # the first two calls compile (reset's state types differ from step's)
    return run


def adapter_smax_rate(map_name: str, copies: int, calls: int) -> float:
    """Env steps per second through ``envs.smax.SmaxEnv`` (whole episodes in lock-step, only the
    steps of running copies count), random available actions."""
    env = make_batched_env("smax", num_envs=copies, seed=0, map_name=map_name)
    rng = np.random.default_rng(0)
    obs, done = env.reset(), np.zeros(copies, bool)
    while not done.all():  # one whole episode compiles the full step and each block of rows
        result = env.step(smax_random_actions(obs.avail_actions, rng))
        done |= result.terminated | result.truncated
        obs = result.next_obs
    steps, start = 0, time.perf_counter()
    for _ in range(calls):
        if done.all():
            obs, done = env.reset(), np.zeros(copies, bool)
        result = env.step(smax_random_actions(obs.avail_actions, rng))
        steps += int((~done).sum())
        done |= result.terminated | result.truncated
        obs = result.next_obs
    return steps / (time.perf_counter() - start)


SMAX_COLLECTIONS = {  # name -> overrides of riskq's collection on SMAX 3m, timed in turn
    "compact": [],  # the env configs' setting: lock-step, blocks of rows once half have ended
    "whole": ["env.args.compact=false"],  # lock-step, every copy stepped at every call
    "streaming": ["collection=streaming"],  # a copy restarts as soon as its episode ends
}


def runner_smax_rates(copies: int, threads: int, calls: int) -> dict[str, tuple[float, float]]:
    """riskq's runners (RiskQ agent, epsilon 0.5) on SMAX 3m in each of SMAX_COLLECTIONS and
    raw JaxMARL stepping (``raw_smax_stepper``), one collection of each (and as many raw
    calls as a lock-step collection makes) in turn so that all see the same machine: name ->
    (env steps per second, counted steps over stepped copy-steps; 1 for streaming, whose
    copies never wait, and raw)."""
    from envs.smax import MIN_ROWS

    overrides = ["env=smax_3m", f"num_envs={copies}", f"threads={threads}", "progress=false"]
    runners = {
        name: build_experiment(compose_config([*overrides, *extra])).runner
        for name, extra in SMAX_COLLECTIONS.items()
    }
    totals = {name: [0, 0, 0.0] for name in runners}  # steps, copy-steps, seconds
    for runner in runners.values():  # compiles the full step, every block of rows and reset
        runner.collect(epsilon=0.5)
        for rows in (MIN_ROWS, copies // 2, copies):  # streaming's blocks of new episodes
            runner.env.reset_copies(np.arange(copies) < rows)
        runner.collect(epsilon=0.5, seed=0)
    raw, totals["raw"] = raw_smax_stepper("3m", copies), [0, 0, 0.0]
    while totals["compact"][0] < calls * copies // 4:
        for name, runner in runners.items():
            start = time.perf_counter()
            rollout = runner.collect(epsilon=0.5)
            totals[name][2] += time.perf_counter() - start
            totals[name][0] += rollout.steps
            # lock-step: mask [E, T] is copies x step calls; streaming: every copy-step counts
            totals[name][1] += rollout.batch.mask.numel() if name != "streaming" else rollout.steps
            if name == "compact":
                lockstep_calls = rollout.batch.max_steps  # step calls of the collection
        steps, seconds = raw(lockstep_calls)
        totals["raw"] = [a + b for a, b in zip(totals["raw"], (steps, steps, seconds), strict=True)]
    return {
        name: (steps / seconds, steps / copy_steps)
        for name, (steps, copy_steps, seconds) in totals.items()
    }


def smax_bench(threads: int, copies: int = 64, calls: int = 300, updates: int = 20) -> dict:
    """SMAX collection throughput (raw JaxMARL, the adapter, and riskq's Runner with the RiskQ
    agent at epsilon 0.5), and torch learner updates on MACF before and after JAX ran."""
    macf_overrides = ["env=macf", *REFERENCE_RULE, f"threads={threads}", "progress=false"]
    macf = build_experiment(compose_config(macf_overrides))
    while macf.buffer.size < macf.learner.cfg.batch_size:
        macf.buffer.add(macf.runner.collect(epsilon=0.5).batch)
    batch = macf.buffer.sample(macf.learner.cfg.batch_size, macf.sample_rng)
    jax_loaded_before = "jax" in sys.modules
    torch_before = timed(lambda: macf.learner.update(batch, episodes_seen=0), updates)
    adapter = adapter_smax_rate("3m", copies, calls)
    rates = runner_smax_rates(copies, threads, calls)
    (collect, useful), (whole, _), (raw, _) = rates["compact"], rates["whole"], rates["raw"]
    streaming = rates["streaming"][0]
    torch_after = timed(lambda: macf.learner.update(batch, episodes_seen=0), updates)
    return {
        "smax_raw_env_steps_per_s": round(raw, 1),
        "smax_adapter_env_steps_per_s": round(adapter, 1),
        "smax_collect_env_steps_per_s": round(collect, 1),
        "smax_raw_over_adapter": round(raw / adapter, 3),
        "smax_raw_over_collect": round(raw / collect, 3),
        "smax_collect_useful_share": round(useful, 3),
        "smax_collect_whole_env_steps_per_s": round(whole, 1),
        "smax_compact_over_whole": round(collect / whole, 3),
        "smax_collect_streaming_env_steps_per_s": round(streaming, 1),
        "smax_raw_over_streaming": round(raw / streaming, 3),
        "smax_copies": copies,
        "torch_updates_per_s_before_jax": round(torch_before, 2),
        "torch_updates_per_s_after_jax": round(torch_after, 2),
        "jax_loaded_before": jax_loaded_before,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


# SMAX learning rules timed end to end: the rule SMAX shipped before length buckets, the
# configs' default (configs/rule/smax.yaml) and PyMARL2's update-to-data ratio.
SMAX_RULES = {
    "previous_rule": ["algo.length_buckets=1"],  # otherwise as rule=smax
    "rule_smax": ["rule=smax"],
    "rule_smax_pymarl2": ["rule=smax_pymarl2"],
}
SMAX_TRAIN_OVERRIDES = ["env=smax_2s3z", "algo=riskq", "risk=wang", "progress=false"]


def smax_train_rate(overrides: list[str], steps: int) -> float:
    """Env steps per second of ``train`` on SMAX (evaluation only at the end, on 8 episodes)."""
    cfg = compose_config(
        [
            *overrides,
            f"t_max={steps}",
            f"eval_interval={10 * steps}",
            "eval_episodes=8",
            "checkpoint_interval=100000000",
        ]
    )
    exp = build_experiment(cfg)
    while exp.buffer.size < cfg.algo.batch_size:  # every timed episode pays for its updates
        exp.buffer.add(exp.runner.collect(epsilon=1.0).batch)
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        summary = train(cfg, Path(run_dir), exp)
        return summary["t_env"] / (time.perf_counter() - start)


def smax_learner_figures(overrides: list[str], device: torch.device, updates: int) -> dict:
    """Sampled steps per second, update split and flop efficiency of one rule's updates, on
    batches from 256 episodes of 2s3z collected at epsilon 0.5."""
    cfg = compose_config(overrides)
    exp = build_experiment(cfg)
    while exp.buffer.size < 256:
        exp.buffer.add(exp.runner.collect(epsilon=0.5).batch)
    learner = exp.learner
    batches = [exp.buffer.sample(cfg.algo.batch_size, exp.sample_rng) for _ in range(updates + 1)]
    synchronized(device, lambda: learner.update(batches[0], episodes_seen=0))  # warm-up
    start = time.perf_counter()
    for batch in batches[1:]:
        synchronized(device, lambda batch=batch: learner.update(batch, episodes_seen=0))
    seconds = time.perf_counter() - start
    valid = sum(int(batch.mask.sum()) for batch in batches[1:])
    padded = sum(batch.mask.numel() for batch in batches[1:])
    parts = [batches[1].select(episodes) for episodes in learner.buckets(batches[1])]
    splits = [update_split_ms(learner, part, device, 3) for part in parts]
    rate = updates / seconds
    return {
        "sampled_steps_per_s": round(valid / seconds),
        "padded_steps_per_s": round(padded / seconds),
        "updates_per_s": round(rate, 2),
        "update_split_ms": {stage: round(sum(s[stage] for s in splits), 1) for stage in splits[0]},
        "flop_efficiency": round(
            sum(update_gflop(learner, part) for part in parts) * rate / sgemm_gflop_per_s(device),
            3,
        ),
        "batch_episodes": cfg.algo.batch_size,
        "length_buckets": cfg.algo.length_buckets,
    }


def smax_training_bench(threads: int, device: torch.device, steps: int, updates: int) -> dict:
    """Each of SMAX_RULES end to end, then the learners of the previous and the two rules."""
    common = [*SMAX_TRAIN_OVERRIDES, f"threads={threads}", f"device={device}"]
    rates = {name: smax_train_rate([*common, *rule], steps) for name, rule in SMAX_RULES.items()}
    figures = {
        "smax_train_steps": steps,
        **{f"smax_train_{name}_env_steps_per_s": round(rate, 1) for name, rate in rates.items()},
        **{
            f"smax_train_{name}_over_previous_rule": round(rate / rates["previous_rule"], 2)
            for name, rate in rates.items()
            if name != "previous_rule"
        },
    }
    for name, rule in SMAX_RULES.items():
        learner = smax_learner_figures([*common, *rule], device, updates)
        figures.update({f"smax_learner_{name}_{key}": value for key, value in learner.items()})
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--train-steps", type=int, default=20_000)
    parser.add_argument("--smax", action="store_true", help="also SMAX 3m and 2s3z (smax extra)")
    parser.add_argument("--smax-train-steps", type=int, default=30_000)
    args = parser.parse_args()
    overrides = [
        "env=macf",
        *REFERENCE_RULE,
        "algo=riskq",
        "risk=wang",
        f"threads={args.threads}",
        f"device={args.device}",
        "progress=false",
        "num_envs=8",
    ]
    cfg = compose_config(overrides)
    device = torch.device(args.device)
    exp = build_experiment(cfg)
    start, steps = time.perf_counter(), 0
    while exp.buffer.size < cfg.algo.batch_size:
        rollout = exp.runner.collect(epsilon=0.5)
        exp.buffer.add(rollout.batch)
        steps += rollout.steps
    collect_rate = steps / (time.perf_counter() - start)
    batch = exp.buffer.sample(cfg.algo.batch_size, exp.sample_rng)
    learner_rate = timed(
        lambda: synchronized(device, lambda: exp.learner.update(batch, episodes_seen=0)),
        args.updates,
    )
    floor_rate = timed(lambda: synchronized(device, lambda: bare_step(exp, batch)), args.updates)
    split = update_split_ms(exp.learner, batch, device, args.updates)
    gflop, sgemm = update_gflop(exp.learner, batch), sgemm_gflop_per_s(device)

    train_cfg = compose_config(
        [
            *overrides,
            f"t_max={args.train_steps}",
            f"eval_interval={10 * args.train_steps}",
            "checkpoint_interval=10000000",
        ]
    )
    train_exp = build_experiment(train_cfg)
    while train_exp.buffer.size < cfg.algo.batch_size:  # steady state: every episode pays
        train_exp.buffer.add(train_exp.runner.collect(epsilon=1.0).batch)  # for an update
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
                "update_gflop": round(gflop, 3),
                "sgemm_gflop_per_s": round(sgemm, 1),
                "learner_flop_efficiency": round(gflop * learner_rate / sgemm, 3),
                "update_split_ms": split,
                "train_env_steps_per_s": round(train_rate, 1),
                "reference_recorded": REFERENCE_RECORDED,
                "reference_env_steps_per_s": REFERENCE_ENV_STEPS_PER_S,
                "reference_s_per_update": REFERENCE_S_PER_UPDATE,
                "train_over_recorded_reference": round(train_rate / REFERENCE_ENV_STEPS_PER_S, 2),
                "learner_over_recorded_reference": round(learner_rate * REFERENCE_S_PER_UPDATE, 2),
                "train_mean_episode_length": round(summary["t_env"] / summary["episodes"], 1),
                "batch_episodes": cfg.algo.batch_size,
                "batch_steps": batch.max_steps,
                "n_quantiles": cfg.algo.agent.n_quantiles,
                "threads": args.threads,
                "device": str(device),
                "load_average": round(os.getloadavg()[0], 2),
                "torch": torch.__version__,
                **(smax_bench(args.threads) if args.smax else {}),
                **(
                    smax_training_bench(args.threads, device, args.smax_train_steps, args.updates)
                    if args.smax
                    else {}
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
