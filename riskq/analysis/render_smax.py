"""SMAX episodes for ``riskq-render``, drawn by JaxMARL's own visualiser (``SMAXVisualizer``).

The greedy episode is played by riskq's SMAX adapter (``envs.smax``, through the evaluation
runner); its actions are then replayed on JaxMARL's scenario with the adapter's key schedule
(the copy's seed from the env's generator, ``PRNGKey(seed)`` split once for the reset and once
per step), so the JAX states drawn are the ones the agents saw. JaxMARL's visualiser draws the
world steps between two env steps too (``world_steps_per_env_step``, 8): an episode of T steps
gives T * (1 + 8) frames. Needs the ``smax`` extra.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np


def smax_frames(scenario: Any, copy_seed: int, actions: np.ndarray) -> tuple[list, list]:
    """JaxMARL's (key, state, attack actions) frames of an episode and its env-step states.

    scenario: JaxMARL's ``HeuristicEnemySMAX``; copy_seed: the adapter's seed of the copy;
    actions [T, N]. Returns (frames, T + 1 wrapped states, before each step and the last),
    the frames as ``HeuristicEnemySMAX.expand_state_seq`` builds them, but from the step keys
    the adapter used (that method draws new keys).
    """
    import jax
    import jax.numpy as jnp
    from jaxmarl.environments.smax.smax_env import State

    key, reset_key = jax.random.split(jax.random.PRNGKey(copy_seed))
    _, state = scenario.reset(reset_key)
    frames, states = [], [state]
    for step_actions in actions:  # [N]
        key, step_key = jax.random.split(key)
        joint = {
            agent: jnp.int32(a) for agent, a in zip(scenario.agents, step_actions, strict=True)
        }
        world = scenario.step_env(step_key, state, joint, get_state_sequence=True)
        world = list(map(State, *dataclasses.astuple(world)))  # world_steps_per_env_step states
        attacks = {
            agent: world[-1].prev_attack_actions[i] for i, agent in enumerate(scenario.all_agents)
        }
        frames += [(step_key, state.state, attacks), *((step_key, w, attacks) for w in world)]
        state = scenario.step_env(step_key, state, joint)[1]
        states.append(state)
    return frames, states


def heuristic_scenario(env_args: dict) -> Any:
    """JaxMARL's ``HeuristicEnemySMAX`` that the SMAX adapter steps for a run's ``env.args``
    (``envs.smax_jax.dynamics`` is cached: the adapter's own object)."""
    import inspect

    from envs.smax import SmaxEnv
    from envs.smax_jax import Settings, dynamics

    defaults = inspect.signature(SmaxEnv).parameters
    args = {name: env_args.get(name, defaults[name].default) for name in Settings._fields}
    args["won_battle_bonus"] = float(args["won_battle_bonus"])
    return dynamics(Settings(**args)).env


def render_smax(episode: Any, env: Any, env_args: dict, out: Path) -> int:
    """Draw ``episode`` (``riskq.analysis.render.Episode``) of the SMAX adapter ``env`` (built from
    ``env_args``) into the GIF ``out`` with JaxMARL's visualiser; returns the frames written."""
    import matplotlib
    import matplotlib.pyplot as plt
    from jaxmarl.viz.visualizer import SMAXVisualizer

    scenario = heuristic_scenario(env_args)
    env.reseed(episode.seed)  # as the episode's reset did: one seed per copy
    frames, _ = smax_frames(scenario, env.copy_seeds()[0], episode.actions)
    out.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context({"animation.writer": "pillow"}):
        visualiser = SMAXVisualizer(scenario, frames)
        visualiser.have_expanded = True  # the frames already hold the world steps
        visualiser.animate(save_fname=str(out), view=False)
    plt.close(visualiser.fig)
    return len(frames)
