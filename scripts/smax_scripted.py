"""Win rate of a scripted ally team on a SMAX map: a reference point for learned win rates.

    python scripts/smax_scripted.py --map 3m --battles 320
    python scripts/smax_scripted.py --map 3m --battles 320 --team focus

``--team heuristic`` (the default): the allies play JaxMARL's own enemy heuristic (each unit
attacks the closest enemy in range, else walks towards the enemy), so on a symmetric map such as
3m this is the mirror match of the heuristic against itself. ``--team focus``: focus fire, the
textbook SMAC tactic, scripted from the units' true state (``SmaxEnv.units``): the team picks
the living enemy with the least health (ties: the one nearest the allies' centre); an ally
that can attack it does, one that can attack another enemy attacks the weakest of those, and
any other walks towards the team's pick (the move best aligned with its offset). The battles
run through riskq's SMAX adapter (``envs.smax.SmaxEnv``:
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


# SMAX's discrete actions: moves +y, +x, -y, -x, then stop, then attack enemy j at 5 + j
MOVES = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 0.0]])  # [4, 2]
FIRST_ATTACK = 5
TEAMS = ("heuristic", "focus")


def focus_fire(units: dict[str, np.ndarray], avail: np.ndarray) -> np.ndarray:
    """Focus-fire picks [E, N] from the units' true state (``SmaxEnv.units``: allies first) and
    the action masks avail [E, N, A] (attack j allowed = enemy j alive and in range)."""
    n = avail.shape[1]
    position, health, alive = units["position"], units["health"], units["alive"]  # [E, U, ...]
    enemy_health = np.where(alive[:, n:], health[:, n:], np.inf)  # [E, M]
    centre = position[:, :n].mean(1, keepdims=True)  # [E, 1, 2]
    distance = np.linalg.norm(position[:, n:] - centre, axis=-1)  # [E, M]
    target = np.lexsort((distance, enemy_health), axis=-1)[:, 0]  # [E]: least health, nearest
    can_attack = avail[..., FIRST_ATTACK:]  # [E, N, M]
    e = np.arange(avail.shape[0])
    attack_target = can_attack[e, :, target]  # [E, N]
    weakest_in_range = np.where(can_attack, enemy_health[:, None], np.inf).argmin(-1)  # [E, N]
    offset = position[e, n + target][:, None] - position[:, :n]  # [E, N, 2]
    move = (offset[..., None, :] * MOVES).sum(-1).argmax(-1)  # [E, N]: the best-aligned move
    return np.where(
        attack_target,
        FIRST_ATTACK + target[:, None],
        np.where(can_attack.any(-1), FIRST_ATTACK + weakest_in_range, move),
    )


def scripted_battles(
    map_name: str, *, battles: int, seed: int, shoot: bool = True, team: str = "heuristic"
) -> dict:
    """Play ``battles`` battles of the scripted allies (``team``: heuristic or focus); win
    rate, allies lost, enemies killed (means over battles) and the replaced picks of living
    allies per battle."""
    import jax

    if team not in TEAMS:
        raise ValueError(f"team: unknown '{team}'; valid choices: {', '.join(TEAMS)}")
    env = make_batched_env("smax", num_envs=battles, seed=seed, map_name=map_name)
    if team == "heuristic":  # focus fire needs no JAX policy (and ignores ``shoot``)
        act, state = heuristic_team(env, shoot=shoot)
    key = jax.random.PRNGKey(seed)
    obs, running, replaced = env.reset(), np.ones(battles, bool), 0
    while running.any():
        if team == "focus":
            picks = focus_fire(env.units(), obs.avail_actions)  # [E, N]
        else:
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
        "team": team,
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
    parser.add_argument("--team", choices=TEAMS, default="heuristic")
    parser.add_argument("--no-shoot", action="store_true", help="heuristic allies never attack")
    args = parser.parse_args(argv)
    try:
        result = scripted_battles(
            args.map,
            battles=args.battles,
            seed=args.seed,
            shoot=not args.no_shoot,
            team=args.team,
        )
    except (ImportError, ValueError) as error:
        print(f"smax_scripted: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
