"""Win rate of a scripted ally team on a SMAX map: a reference point for learned win rates.

    python scripts/smax_scripted.py --map 3m --battles 320

The allies play JaxMARL's own enemy heuristic (each unit attacks the closest enemy in range,
else walks towards the enemy), so on a symmetric map such as 3m this is the mirror match of the
heuristic against itself. The battles run through riskq's SMAX adapter (``envs.smax.SmaxEnv``:
the same episode limit, ends and metrics as training's evaluation), all copies in lock-step.
Where SMAX's action mask refuses the heuristic's pick, the ally takes its first available
action instead; for a living ally this is counted (``replaced_picks_per_battle``); a dead ally
can only stop, and its pick is ignored by SMAX anyway. ``--no-shoot`` gives allies that never
attack: they lose every battle (tests/test_smax.py). Prints one JSON object. Needs the smax extra.
Shapes: E battles (env copies), N allies, A actions, O observation.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs import make_batched_env


def heuristic_team(env, *, shoot: bool):
    """(act, initial policy state) of JaxMARL's heuristic for the allies of ``env``:
    act(key, policy state [E, N, ...], obs [E, N, O]) -> (actions [E, N], policy state)."""
    import jax
    import jax.numpy as jnp
    from jaxmarl.environments.smax.heuristic_enemy import (
        create_heuristic_policy,
        get_heuristic_policy_initial_state,
    )

    policy = jax.vmap(jax.vmap(create_heuristic_policy(env.scenario, 0, shoot=shoot)))  # E, N
    shape = (env.num_envs, env.info.n_agents)
    initial = jax.tree.map(
        lambda x: jnp.broadcast_to(jnp.asarray(x), shape + jnp.shape(x)),
        get_heuristic_policy_initial_state(),
    )

    @jax.jit
    def act(key, state, obs):
        keys = jax.random.split(key, shape[0] * shape[1]).reshape(*shape, -1)
        return policy(keys, state, obs)

    return act, initial


def scripted_battles(map_name: str, *, battles: int, seed: int, shoot: bool = True) -> dict:
    """Play ``battles`` battles of the scripted allies; win rate, allies lost, enemies killed
    (means over battles) and the replaced picks of living allies per battle."""
    import jax

    env = make_batched_env("smax", num_envs=battles, seed=seed, map_name=map_name)
    act, state = heuristic_team(env, shoot=shoot)
    key = jax.random.PRNGKey(seed)
    obs, running, replaced = env.reset(), np.ones(battles, bool), 0
    while running.any():
        key, step_key = jax.random.split(key)
        picks, state = act(step_key, state, obs.obs)
        picks = np.asarray(picks).astype(np.int64)  # [E, N]
        allowed = np.take_along_axis(obs.avail_actions, picks[..., None], axis=-1)[..., 0]
        alive = obs.avail_actions.sum(-1) > 1  # [E, N]: a dead ally can only stop
        replaced += int((~allowed & alive & running[:, None]).sum())
        actions = np.where(allowed, picks, obs.avail_actions.argmax(-1))  # [E, N]
        step = env.step(actions)
        running &= ~(step.terminated | step.truncated)
        obs = step.next_obs
    metrics = env.episode_metrics()
    return {
        "map": map_name,
        "battles": battles,
        "seed": seed,
        "shoot": shoot,
        "win_rate": float(metrics["win_rate"].mean()),
        "allies_dead": float(metrics["allies_dead"].mean()),
        "enemies_killed": float(metrics["enemies_killed"].mean()),
        "replaced_picks_per_battle": replaced / battles,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", default="3m", help="SMAC map name, e.g. 3m, 2s3z")
    parser.add_argument("--battles", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-shoot", action="store_true", help="allies never attack")
    args = parser.parse_args(argv)
    try:
        result = scripted_battles(
            args.map, battles=args.battles, seed=args.seed, shoot=not args.no_shoot
        )
    except (ImportError, ValueError) as error:
        print(f"smax_scripted: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
