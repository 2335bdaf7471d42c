"""The JAX side of the SMAX adapter (``envs.smax``): JAX's configuration, the JaxMARL import,
the world-state normaliser and one scenario's jitted, vmapped reset and step functions.

Everything here runs on one copy's SMAX state, vmapped over the E copies and jitted once per
setting (``dynamics`` is cached); every call returns its outputs packed in one float32 array
per copy, so one host transfer per step brings them to numpy (``unpack``). See ``envs.smax``
for the conventions (observation, state, actions, reward, ends) and the seeding.

Shapes: E env copies, R rows of a block, N allies (agents), A actions, O observation,
S state, F agent features.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

NAME = "smax"
EXTRA = "smax"  # the optional dependency group in pyproject.toml
# XLA flags read when JAX starts its CPU backend: one compute thread, no Eigen thread pool.
XLA_CPU_FLAGS = ("--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1")
JAX_ENVIRONMENT = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}  # no up-front GPU memory grab


def compilation_cache_dir() -> str:
    """Where compiled env functions persist between runs: ``$XDG_CACHE_HOME/riskq/jax``."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(cache_home, "riskq", "jax")


def configure_jax() -> None:
    """Set JAX's thread, memory and compilation-cache environment variables unless the user
    has set them."""
    for key, value in JAX_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", compilation_cache_dir())
    flags = os.environ.get("XLA_FLAGS", "")
    missing = [flag for flag in XLA_CPU_FLAGS if flag.split("=")[0] not in flags]
    os.environ["XLA_FLAGS"] = " ".join([flags, *missing]).strip()


@contextlib.contextmanager
def stdout_to_devnull() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null for the duration (quiets prints of any Python
    stream object, even one that a library swapped in)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        for stream in {sys.stdout, sys.__stdout__} - {None}:
            stream.flush()  # what was printed goes to /dev/null, not out later
        os.dup2(saved, 1)
        os.close(saved)


def import_jaxmarl(map_name: str) -> Any:
    """``jaxmarl`` or a one-line ImportError naming the extra to install.

    Its import prints while probing for optional suites and resets ``sys.stdout`` and
    ``sys.stderr`` to the interpreter's originals (which would undo pytest's capture and any
    other redirection): both streams are put back as they were.
    """
    configure_jax()
    streams = sys.stdout, sys.stderr
    try:
        with stdout_to_devnull():
            import jaxmarl
    except ModuleNotFoundError as err:
        raise ImportError(
            f"env '{NAME}' map '{map_name}' needs the optional package 'jaxmarl' "
            f"(module '{err.name}' is missing): pip install -e '.[{EXTRA}]'"
        ) from err
    finally:
        sys.stdout, sys.stderr = streams
    return jaxmarl


class Dynamics(NamedTuple):
    """One SMAX scenario and its jitted, vmapped functions (shared by envs with one setting)."""

    env: Any  # jaxmarl HeuristicEnemySMAX
    # every function returns the outputs of its copies packed in one float32 array [E or R, D]
    # (one transfer to the host per call); layout gives the (shape, dtype) of each output
    layout: tuple[tuple[tuple[int, ...], np.dtype], ...]
    reset: Any  # (seeds [E] uint32, episode_limit int32) -> (carry, outputs)
    step: Any  # (carry, actions [E, N] int32) -> (carry, outputs)
    step_rows: Any  # (carry, rows [R] int32, actions [R, N] int32) -> (carry, outputs of rows)
    # (carry, rows [R] int32, seeds [R] uint32, fresh [R] bool, episode_limit int32)
    #   -> (carry, outputs of rows): new episodes in the rows where fresh, the others unchanged
    reset_rows: Any
    # (carry, actions [E, N] int32, seeds [E] uint32, episode_limit int32) -> (carry, [E, 2D]):
    #   every copy steps, and each one that ended starts a new episode (streaming collection)
    step_restart: Any


class StateNormaliser(NamedTuple):
    """SMAX's world state [S] -> max(state, low) * scale (``world_state_normaliser``)."""

    low: np.ndarray  # [S] lower bounds (-inf where none)
    scale: np.ndarray  # [S] factors


def world_state_normaliser(
    *,
    units: int,
    feature_dim: int,
    unit_types: int,
    map_size: tuple[float, float],
    max_cooldown: float,
) -> StateNormaliser:
    """Bounds and factors that bring SMAX's world state to unit scale.

    The state is ``units`` blocks of ``feature_dim`` features (health fraction, x, y, weapon
    cooldown in seconds, type bits), then each unit's team (0/1) and type index. x and y are
    divided by the map's width and height; the cooldown, which keeps falling below 0 while a
    unit holds fire (to -50 s over a 100-step episode), is clipped at 0 (ready) and divided by
    ``max_cooldown``, the largest weapon cooldown; the type index by the largest index.
    """
    low = np.full(feature_dim, -np.inf, np.float32)  # [F]
    low[3] = 0.0  # weapon cooldown: ready
    block = np.ones(feature_dim, np.float32)  # [F]
    block[1:3] = 1.0 / np.asarray(map_size, np.float32)  # position_x, position_y
    block[3] = 1.0 / max_cooldown
    teams = np.ones(units, np.float32)
    types = np.full(units, 1.0 / max(unit_types - 1, 1), np.float32)
    tail_low = np.full(2 * units, -np.inf, np.float32)
    return StateNormaliser(
        low=np.concatenate([np.tile(low, units), tail_low]),  # [units * (F + 2)]
        scale=np.concatenate([np.tile(block, units), teams, types]),  # [units * (F + 2)]
    )


def _observe(env: Any, state: Any, normaliser: StateNormaliser) -> tuple[Any, ...]:
    """Obs [N, O], normalised world state [S], avail [N, A] bool, agent features [N, F] and
    the episode metrics [3] (won, allies dead, enemies killed) of one copy's state."""
    import jax.numpy as jnp

    n = env.num_allies
    per_agent = env.get_obs(state)
    obs = jnp.stack([per_agent[agent] for agent in env.agents])  # [N, O]
    world = jnp.maximum(env.get_world_state(state), normaliser.low) * normaliser.scale  # [S]
    masks = env.get_avail_actions(state)
    avail = jnp.stack([masks[agent] for agent in env.agents]).astype(bool)  # [N, A]
    feature_dim = len(env.own_features)
    features = world[: n * feature_dim].reshape(n, feature_dim)  # [N, F], allies come first
    alive = state.state.unit_alive  # [units]
    allies_alive, enemies_alive = alive[:n], alive[n:]  # [N], [enemies]
    won = ~enemies_alive.any() & allies_alive.any()
    metrics = jnp.stack([won, (~allies_alive).sum(), (~enemies_alive).sum()]).astype(jnp.float32)
    return obs, world, avail, features, metrics  # metrics [3]


class Settings(NamedTuple):
    """What builds one SMAX scenario (``make_scenario``) and the key ``dynamics`` caches on;
    JaxMARL's published results use closest, True, True (``envs.smax``)."""

    map_name: str
    attack_mode: str  # the heuristic enemies' target: "closest" or "random"
    won_battle_bonus: float  # added to the team reward of a won battle
    see_enemy_actions: bool  # observations show the other team's last moves and targets
    walls_cause_death: bool  # a unit that touches the map's edge dies


def make_scenario(settings: Settings) -> Any:
    """JaxMARL's ``HeuristicEnemySMAX`` of ``settings``; an unknown map is a ValueError that
    lists the valid ones."""
    map_name = settings.map_name
    jaxmarl = import_jaxmarl(map_name)
    from jaxmarl.environments.smax import smax_env

    if map_name not in smax_env.MAP_NAME_TO_SCENARIO:
        valid = ", ".join(sorted(smax_env.MAP_NAME_TO_SCENARIO))
        raise ValueError(f"env '{NAME}': unknown map_name '{map_name}'; valid choices: {valid}")
    return jaxmarl.make(
        "HeuristicEnemySMAX",
        scenario=smax_env.map_name_to_scenario(map_name),
        attack_mode=settings.attack_mode,
        won_battle_bonus=settings.won_battle_bonus,
        see_enemy_actions=settings.see_enemy_actions,
        walls_cause_death=settings.walls_cause_death,
    )


def scenario_normaliser(env: Any) -> StateNormaliser:
    """``world_state_normaliser`` of a scenario, as JAX arrays: low [S], scale [S]."""
    import jax.numpy as jnp

    normaliser = world_state_normaliser(
        units=env.num_allies + env.num_enemies,
        feature_dim=len(env.own_features),
        unit_types=env.unit_type_bits,
        map_size=(env.map_width, env.map_height),
        max_cooldown=float(env.unit_type_weapon_cooldowns.max()),
    )
    return StateNormaliser(*map(jnp.asarray, normaliser))


def strong(tree: Any) -> Any:
    """The same arrays without JAX's weak types, so that step's carry never changes type (a
    changed type would compile step again)."""
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda x: jnp.asarray(x, dtype=x.dtype), tree)


def copy_functions(env: Any, normaliser: StateNormaliser) -> tuple[Any, Any]:
    """(reset_copy, step_copy) of one copy: (seed, episode_limit) -> (carry, outputs) and
    (carry, actions [N]) -> (carry, outputs). A carry is (SMAX state, JAX key, running, steps
    left before the time limit); SMAX's own time limit (``max_steps``) is not used."""
    import jax
    import jax.numpy as jnp

    def reset_copy(seed, episode_limit):
        key, reset_key = jax.random.split(jax.random.PRNGKey(seed))
        _, state = env.reset(reset_key)
        carry = strong((state, key, jnp.array(True), jnp.asarray(episode_limit, jnp.int32)))
        zero = jnp.array(0.0, jnp.float32)
        return carry, (*_observe(env, state, normaliser), zero, jnp.array(False), jnp.array(False))

    def step_copy(carry, actions):
        state, key, running, steps_left = carry
        key, step_key = jax.random.split(key)
        joint = {agent: actions[i] for i, agent in enumerate(env.agents)}
        _, stepped, rewards, _, _ = env.step_env(step_key, state, joint)
        state = jax.tree.map(lambda new, old: jnp.where(running, new, old), stepped, state)
        alive = state.state.unit_alive  # [units]
        battle_over = ~alive[: env.num_allies].any() | ~alive[env.num_allies :].any()
        terminated = running & battle_over
        truncated = running & ~battle_over & (steps_left <= 1)
        reward = jnp.where(running, rewards[env.agents[0]], 0.0).astype(jnp.float32)
        running_next = running & ~(terminated | truncated)
        carry = strong((state, key, running_next, steps_left - running))
        return carry, (*_observe(env, state, normaliser), reward, terminated, truncated)

    return reset_copy, step_copy


def pack(outputs: tuple[Any, ...]) -> Any:
    """Outputs [E, ...] of every copy -> one float32 array [E, D]."""
    import jax.numpy as jnp

    flat = [out.reshape(out.shape[0], -1).astype(jnp.float32) for out in outputs]
    return jnp.concatenate(flat, axis=1)


def select(mask: Any, new: Any, old: Any) -> Any:
    """Per copy [R] bool: the carry ``new`` where ``mask``, else ``old``."""
    import jax
    import jax.numpy as jnp

    def pick(n, o):
        return jnp.where(mask.reshape(mask.shape + (1,) * (n.ndim - 1)), n, o)

    return jax.tree.map(pick, new, old)


@functools.cache
def dynamics(settings: Settings) -> Dynamics:
    """The scenario of ``settings`` and its batched reset and step (cached, so envs of the same
    settings and the same E share one compilation; the episode limit is an argument)."""
    env = make_scenario(settings)
    import jax
    import jax.numpy as jnp

    reset_copy, step_copy = copy_functions(env, scenario_normaliser(env))
    layout = tuple(
        (tuple(out.shape), np.dtype(out.dtype))
        for out in jax.eval_shape(reset_copy, jnp.uint32(0), jnp.int32(1))[1]
    )
    vmapped_reset = jax.vmap(reset_copy, in_axes=(0, None))
    vmapped_step = jax.vmap(step_copy)

    def batched_reset(seeds, episode_limit):
        carry, outputs = vmapped_reset(seeds, episode_limit)
        return carry, pack(outputs)

    def batched_step(carry, actions):
        carry, outputs = vmapped_step(carry, actions)
        return carry, pack(outputs)

    def step_restart(carry, actions, seeds, episode_limit):
        """Step every copy, then start a new episode (seeds [E]) in each copy that ended:
        outputs [E, 2D], the step's then the new episodes' (read where a copy ended)."""
        carry, outputs = vmapped_step(carry, actions)
        ended = outputs[-2] | outputs[-1]  # terminated | truncated [E]
        new, new_outputs = vmapped_reset(seeds, episode_limit)
        carry = select(ended, new, carry)
        return carry, jnp.concatenate([pack(outputs), pack(new_outputs)], axis=1)

    def step_rows(carry, rows, actions):
        """Step copies ``rows`` [R] (distinct) only; the other copies' carry is left as it is."""
        part, outputs = batched_step(jax.tree.map(lambda x: x[rows], carry), actions)
        carry = jax.tree.map(lambda whole, new: whole.at[rows].set(new), carry, part)
        return carry, outputs

    def reset_rows(carry, rows, seeds, fresh, episode_limit):
        """New episodes in copies ``rows`` [R] (distinct) where ``fresh`` [R]; the rows that
        pad the block keep their carry. Outputs are those of the new episodes."""
        new, outputs = batched_reset(seeds, episode_limit)
        pick = select(fresh, new, jax.tree.map(lambda x: x[rows], carry))
        carry = jax.tree.map(lambda whole, part: whole.at[rows].set(part), carry, pick)
        return carry, outputs

    return Dynamics(
        env=env,
        layout=layout,
        reset=jax.jit(batched_reset),
        step=jax.jit(batched_step),
        step_rows=jax.jit(step_rows),
        reset_rows=jax.jit(reset_rows),
        step_restart=jax.jit(step_restart),
    )


def unpack(packed: np.ndarray, layout) -> list[np.ndarray]:
    """Host array [R, D] of packed outputs -> one writable array [R, *shape] per output."""
    sizes = [int(np.prod(shape)) for shape, _ in layout]
    parts = np.split(packed, np.cumsum(sizes)[:-1], axis=1)
    return [
        part.reshape(packed.shape[0], *shape).astype(dtype)
        for part, (shape, dtype) in zip(parts, layout, strict=True)
    ]
