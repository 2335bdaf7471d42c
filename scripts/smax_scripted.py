"""Win rate of a scripted ally team on a SMAX map: a reference point for learned win rates.

    python scripts/smax_scripted.py --map 3m --battles 320
    python scripts/smax_scripted.py --map 3m --battles 320 --team focus
    python scripts/smax_scripted.py --map 3s_vs_5z --battles 320 --team kite

``--team heuristic`` (the default): the allies play JaxMARL's own enemy heuristic (each unit
attacks the closest enemy in range, else walks towards the enemy), so on a symmetric map such as
3m this is the mirror match of the heuristic against itself. ``--team focus``: focus fire, the
textbook SMAC tactic, scripted from the units' true state (``SmaxEnv.units``): the team picks
the living enemy with the least health (ties: the one nearest the allies' centre); an ally
that can attack it does, one that can attack another enemy attacks the weakest of those, and
any other walks towards the team's pick (the move best aligned with its offset). ``--team
kite``: hit and run, the way ranged units beat faster-firing melee ones (3s_vs_5z): focus fire
while the weapon is ready, step away from nearby enemies while it cools down. The battles
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


def heuristic_team(env, *, shoot: bool, seed: int):
    """JaxMARL's heuristic for the allies of ``env``, as picks(obs) -> actions [E, N] (the
    policy state and key live in the closure)."""
    import jax
    import jax.numpy as jnp
    from jaxmarl.environments.smax.heuristic_enemy import (
        create_heuristic_policy,
        get_heuristic_policy_initial_state,
    )

    policy = jax.vmap(jax.vmap(create_heuristic_policy(env.scenario, 0, shoot=shoot)))  # E, N
    shape = (env.num_envs, env.info.n_agents)
    carry = {
        "key": jax.random.PRNGKey(seed),
        "state": jax.tree.map(
            lambda x: jnp.broadcast_to(jnp.asarray(x), shape + jnp.shape(x)),
            get_heuristic_policy_initial_state(),
        ),
    }

    @jax.jit
    def act(key, state, obs):
        keys = jax.random.split(key, shape[0] * shape[1]).reshape(*shape, -1)
        return policy(keys, state, obs)

    def picks(obs):
        carry["key"], step_key = jax.random.split(carry["key"])
        actions, carry["state"] = act(step_key, carry["state"], obs.obs)
        return actions

    return picks


# SMAX's discrete actions: moves +y, +x, -y, -x, then stop, then attack enemy j at 5 + j
MOVES = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 0.0]])  # [4, 2]
FIRST_ATTACK = 5
STOP = 4
# map units within which an enemy is dodged: a zealot's range (2), plus one env step of its
# movement (1.6), plus the two units' radii
DANGER = 5.0
# map units a move must keep between a kiting unit and every wall: a stalker's step (4.13 per
# second for half a second) with a margin
WALL_CLEARANCE = 3.0


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


def kite(
    units: dict[str, np.ndarray], avail: np.ndarray, *, size: np.ndarray, danger: float
) -> np.ndarray:
    """Kiting picks [E, N], hit and run: an ally whose weapon is ready plays the focus-fire pick;
    one whose weapon is cooling down steps away from the living enemies within ``danger`` map
    units (each pushes with weight 1 / distance), pulled back towards the map's centre as it
    nears a wall, by a move that keeps it ``WALL_CLEARANCE`` off every wall (SMAX kills a unit
    that touches one); it holds still when no enemy is that close.
    ``size`` [2]: the map's width and height."""
    n = avail.shape[1]
    position, alive = units["position"], units["alive"]  # [E, U, 2], [E, U]
    offset = position[:, :n, None] - position[:, None, n:]  # [E, N, M, 2]: enemy -> ally
    distance = np.linalg.norm(offset, axis=-1) + 1e-6  # [E, N, M]
    near = alive[:, None, n:] & (distance < danger)  # [E, N, M]
    push = (np.where(near, 1.0 / distance**2, 0.0)[..., None] * offset).sum(2)  # [E, N, 2]
    push /= np.linalg.norm(push, axis=-1, keepdims=True) + 1e-6
    to_centre = size / 2 - position[:, :n]  # [E, N, 2]
    edge = np.minimum(position[:, :n], size - position[:, :n]).min(-1, keepdims=True)  # [E, N, 1]
    pull = np.clip(1.0 - edge / (0.25 * size.min()), 0.0, 1.0)  # 0 in the middle, 1 at a wall
    inward = to_centre / (np.linalg.norm(to_centre, axis=-1, keepdims=True) + 1e-6)
    escape = push + 2.0 * pull * inward  # [E, N, 2]
    score = (escape[..., None, :] * MOVES).sum(-1)  # [E, N, 4]
    landing = position[:, :n, None] + WALL_CLEARANCE * MOVES  # [E, N, 4, 2]
    safe = ((landing > 0) & (landing < size)).all(-1)  # [E, N, 4]: stays off the walls
    move = np.where(safe.any(-1, keepdims=True) & ~safe, -np.inf, score).argmax(-1)  # [E, N]
    ready = units["cooldown"][:, :n] <= 0.0  # [E, N]
    return np.where(ready, focus_fire(units, avail), np.where(near.any(-1), move, STOP))


def focus_team(env, **_):
    """Focus fire (``focus_fire``) from the units' true state, as picks(obs) -> [E, N]."""
    return lambda obs: focus_fire(env.units(), obs.avail_actions)


def kite_team(env, **_):
    """Hit and run (``kite``) from the units' true state, as picks(obs) -> [E, N]."""
    size = np.array([env.scenario.map_width, env.scenario.map_height], float)  # [2]
    return lambda obs: kite(env.units(), obs.avail_actions, size=size, danger=DANGER)


# team -> builder(env, shoot=, seed=) of its picks(obs) -> actions [E, N]; only the heuristic
# reads ``shoot`` and ``seed`` (focus fire and kiting are deterministic and always shoot)
TEAMS = {"heuristic": heuristic_team, "focus": focus_team, "kite": kite_team}


def scripted_battles(
    map_name: str, *, battles: int, seed: int, shoot: bool = True, team: str = "heuristic"
) -> dict:
    """Play ``battles`` battles of the scripted allies (``team``, a key of ``TEAMS``); win
    rate, allies lost, enemies killed (means over battles) and the replaced picks of living
    allies per battle."""
    if team not in TEAMS:
        raise ValueError(f"team: unknown '{team}'; valid choices: {', '.join(TEAMS)}")
    env = make_batched_env("smax", num_envs=battles, seed=seed, map_name=map_name)
    team_picks = TEAMS[team](env, shoot=shoot, seed=seed)
    obs, running, replaced = env.reset(), np.ones(battles, bool), 0
    while running.any():
        picks = np.asarray(team_picks(obs)).astype(np.int64)  # [E, N]
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
