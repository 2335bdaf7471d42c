"""Multi-Agent Cliff Navigation (MACN), this project's own toy game (CONVENTIONS.md section 8.3).

A cooperative version of Sutton & Barto's cliff walking, built to have known risk-optimal
answers for RiskQ (Shen et al., NeurIPS 2023, arXiv:2311.01753). Grid rows are numbered from
the top; the bottom row is the cliff row. Its two end cells are the only safe ones: every
agent walks from the bottom-left cell to the bottom-right one, so all agents share the two
lanes above the cliff; agents never block each other.

Each step, for every agent that has not reached its goal:
  - the step costs ``step_cost``;
  - with probability ``slip_prob`` a wind slip replaces its action by a move down (towards
    the cliff); moves off the grid leave it in place;
  - entering a cliff cell costs ``cliff_penalty`` and sends it back to its start cell;
  - entering its goal cell pays ``goal_bonus``; it then stays there, done, at no further cost;
  - potential-based shaping pays phi(new cell) - phi(old cell), with
    phi = -shaping * (column distance + king-move distance to the goal) / 2 (``potential``).
The episode terminates when every agent has reached its goal; ``episode_limit`` truncates it.

Bonus and shaping leave the risk optima alone. The shaping terms of one agent telescope
(a fall only moves it to the start cell, where the sum continues), so an agent that arrives
collects -phi(start) = shaping * (W - 1) from shaping and ``goal_bonus`` once, whatever its
route and falls: its undiscounted return is the bare cliff-walking return plus the constant
goal_bonus + shaping * (W - 1) = 10. Mean, CVaR, Wang and VaR are translation-invariant, so
they rank routes as without bonus and shaping; only truncated episodes (below 0.1% per
agent on either route) keep a different shift, and the exact figures below include them.
Bonus and shaping are there for learning: random exploration reaches the goal in about 4%
of agent-episodes, and without them the learned values settle on "never arrive". phi rises
on every step of both routes and falls on none: a column-only potential leaves the two
steps down into the goal unpaid (trained agents stopped above the goal), a Manhattan one
charges every climb away from the cliff.

Two candidate routes per agent (``route_actions``): the short one walks along the lane just
above the cliff (W + 1 steps; a slip there is a fall), the detour along the lane two rows
above the cliff (W + 3 steps; a slip costs two steps, a fall needs two slips in a row).
Default parameters: 3 x 4 grid (two cliff cells), slip 0.1, step cost 1, cliff penalty 6,
goal bonus 4, shaping 2, limit 20 steps. Undiscounted team return of the scripted route
pairs, exact (dynamic programming) and, in brackets, from 10^5 episodes of this env, seed 0,
with the share of those episodes that had a cliff fall (``scripts/macn_optima.py``):

    routes            mean          CVaR(0.2)     Wang(0.75)    VaR(0.2)  P(fall)
    short + short     4.70 (4.66)   -7.41 (-7.48) -1.69 (-1.75)  0        0.346
    short + detour    4.08 (4.08)   -5.98 (-5.94) -0.93 (-0.91) -1        0.207
    detour + detour   3.46 (3.47)   -1.61 (-1.56)  0.53 (0.56)   2        0.042

(Without bonus and shaping every figure but P(fall) is 20 lower.) The risk-neutral optimum
is the short route for both agents (value iteration confirms it is the mean-optimal policy
of each agent, also at the discounts 0.99 and 0.95); the CVaR(0.2), Wang(0.75) and VaR(0.2)
optima are the detour for both (tests/test_macn.py checks this). Training discounts by 0.95
(configs/env/macn.yaml); the returns discounted so keep the mean / CVaR(0.2) / Wang(0.75)
ordering, for one agent and for the team (margins 0.9 / 4.7 / 1.2 for one agent). A smaller
discount shrinks Wang's margin, as the bonus and shaping of the faster route come earlier
(how the parameters were chosen: docs/results/macn.md).

Observation of agent i [O = N(HW + 1)]: its own cell one-hot over the H*W cells plus its
reached flag, then the other agents' in agent order. State [S = N(HW + 1)]: every agent's.
Agent features [F = 1]: its reached flag; the RiskQ mixer's attention keys are built from
them, so every agent still walking gets the same attention weight while its state-dependent
query, head weights and bias see all positions through the state.

Shapes: E env copies, N agents, A = 5 actions, O observation, S state, F per-agent features.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from envs.base import BatchedEnv, EnvInfo, EnvObs, EnvStep

UP, DOWN, LEFT, RIGHT, STAY = range(5)
MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1], [0, 0]])  # [A, 2] (row, col) offsets
DETOUR_DISTANCE = 2  # rows above the cliff row that count as a detour (see ``detour``)
ROUTE_LANES = {
    "short": 1,
    "detour": DETOUR_DISTANCE,
}  # scripted routes: lane height above the cliff row


def end_cells(*, n_agents: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and goal cells [N, 2] (row, col): every agent goes from the bottom-left cell to
    the bottom-right one."""
    starts = np.array([[height - 1, 0]] * n_agents)  # [N, 2]
    goals = np.array([[height - 1, width - 1]] * n_agents)  # [N, 2]
    return starts, goals


def is_cliff(cells: np.ndarray, *, height: int, width: int) -> np.ndarray:
    """Whether cells [..., 2] lie on the cliff: bottom row, columns 1 .. W-2 -> [...] bool."""
    row, col = cells[..., 0], cells[..., 1]
    return (row == height - 1) & (col >= 1) & (col <= width - 2)


def move_agents(
    cells: np.ndarray,
    actions: np.ndarray,
    slipped: np.ndarray,
    *,
    starts: np.ndarray,
    height: int,
    width: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Grid moves: cells [E, N, 2], actions [E, N], slips [E, N] -> new cells, fell [E, N].

    A slip replaces the action by DOWN; walls stop a move; a fall returns the agent to its
    start [N, 2].
    """
    moves = MOVES[np.where(slipped, DOWN, actions)]  # [E, N, 2]
    upper = np.array([height - 1, width - 1])  # [2]
    moved = np.clip(cells + moves, 0, upper)  # [E, N, 2]
    fell = is_cliff(moved, height=height, width=width)  # [E, N]
    return np.where(fell[..., None], starts, moved), fell  # [E, N, 2], [E, N]


def route_actions(
    cells: np.ndarray, *, goals: np.ndarray, lane_rows: np.ndarray | int
) -> np.ndarray:
    """Scripted route policy: cells [E, N, 2], goals [N, 2] -> actions [E, N].

    Climb or descend to the lane row (``lane_rows`` broadcasts to [E, N]), walk along it
    towards the goal column, then go down. The short route uses lane row H-2, the detour H-3.
    """
    row, col = cells[..., 0], cells[..., 1]  # [E, N] each
    along = np.where(goals[:, 1] > col, RIGHT, LEFT)  # [E, N]
    to_lane = np.where(row > lane_rows, UP, DOWN)  # [E, N]
    actions = np.where(row == lane_rows, along, to_lane)  # [E, N]
    return np.where(col == goals[:, 1], DOWN, actions)  # [E, N]


def route_returns(
    env: CliffNavigation, routes: Sequence[str], *, seed: int | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Undiscounted team returns [E] and episode metrics of one scripted route per agent.

    ``routes`` names a route of ROUTE_LANES for every agent; every copy of ``env`` runs one
    episode from ``env.reset(seed)``.
    """
    if len(routes) != env.info.n_agents or not set(routes) <= set(ROUTE_LANES):
        raise ValueError(f"routes must name one of {sorted(ROUTE_LANES)} per agent, got {routes}")
    lane_rows = np.array([env.height - 1 - ROUTE_LANES[route] for route in routes])  # [N]
    env.reset(seed=seed)
    returns = np.zeros(env.num_envs)  # [E]
    while not env.done.all():
        actions = route_actions(env.cells, goals=env.goals, lane_rows=lane_rows)  # [E, N]
        returns += env.step(actions).reward
    return returns, env.episode_metrics()


class CliffNavigation(BatchedEnv):
    """E copies of MACN in lock-step; see the module docstring for the rules and optima."""

    def __init__(
        self,
        *,
        num_envs: int = 1,
        seed: int | None = None,
        n_agents: int = 2,
        height: int = 3,
        width: int = 4,
        slip_prob: float = 0.1,
        step_cost: float = 1.0,
        cliff_penalty: float = 6.0,
        goal_bonus: float = 4.0,
        shaping: float = 2.0,
        episode_limit: int = 20,
    ) -> None:
        super().__init__(num_envs=num_envs, seed=seed)
        minimums = (
            ("n_agents", n_agents, 1),
            ("height", height, 3),  # the detour lane lies two rows above the cliff row
            ("width", width, 3),  # at least one cliff cell
            ("episode_limit", episode_limit, 1),
        )
        for key, value, low in minimums:
            if value < low:
                raise ValueError(f"{key} must be >= {low}, got {value}")
        if not 0.0 <= slip_prob <= 1.0:
            raise ValueError(f"slip_prob must be in [0, 1], got {slip_prob}")
        self.height, self.width = height, width
        self.slip_prob = slip_prob
        self.step_cost = step_cost
        self.cliff_penalty = cliff_penalty
        self.goal_bonus = goal_bonus
        self.shaping = shaping
        self.starts, self.goals = end_cells(n_agents=n_agents, height=height, width=width)
        self.others = np.array(
            [[j for j in range(n_agents) if j != i] for i in range(n_agents)], dtype=np.int64
        ).reshape(n_agents, n_agents - 1)  # [N, N-1]
        self.info = EnvInfo(
            n_agents=n_agents,
            n_actions=len(MOVES),
            obs_dim=n_agents * (height * width + 1),
            state_dim=n_agents * (height * width + 1),
            agent_feature_dim=1,
            episode_limit=episode_limit,
        )
        self._init_episode()

    def _init_episode(self) -> None:
        n_envs, n_agents = self.num_envs, self.info.n_agents
        self.cells = np.broadcast_to(self.starts, (n_envs, n_agents, 2)).copy()  # [E, N, 2]
        self.reached = np.zeros((n_envs, n_agents), dtype=bool)  # [E, N]
        self.top_row = self.cells[..., 0].copy()  # [E, N] highest row (smallest index) visited
        self.falls = np.zeros((n_envs, n_agents), dtype=np.int64)  # [E, N]
        self.steps = np.zeros(n_envs, dtype=np.int64)  # [E]
        self.done = np.zeros(n_envs, dtype=bool)  # [E]

    def reset(self, seed: int | None = None) -> EnvObs:
        self.reseed(seed)
        self._init_episode()
        return self._observe()

    def _observe(self) -> EnvObs:
        n_envs, n_agents = self.reached.shape
        index = self.cells[..., 0] * self.width + self.cells[..., 1]  # [E, N]
        cells = np.zeros((n_envs, n_agents, self.height * self.width + 1), np.float32)
        np.put_along_axis(cells, index[..., None], 1.0, axis=-1)  # [E, N, H*W + 1] one-hot
        cells[..., -1] = self.reached  # last entry: reached
        others = cells[:, self.others].reshape(n_envs, n_agents, -1)  # [E, N, (N-1)(H*W+1)]
        reached = self.reached[..., None].astype(np.float32)  # [E, N, F=1]
        return EnvObs(
            obs=np.concatenate([cells, others], axis=-1),  # [E, N, O]
            state=cells.reshape(n_envs, -1),  # [E, S]
            avail_actions=np.ones((n_envs, n_agents, len(MOVES)), dtype=bool),  # [E, N, A]
            agent_features=reached,  # [E, N, F]
        )

    def step(self, actions: np.ndarray) -> EnvStep:
        actions = self.validated_actions(actions)  # [E, N]
        moving = ~self.done[:, None] & ~self.reached  # [E, N]
        slipped = self.rng.random(moving.shape) < self.slip_prob  # [E, N]
        cells, fell = move_agents(
            self.cells,
            actions,
            slipped,
            starts=self.starts,
            height=self.height,
            width=self.width,
        )  # [E, N, 2], [E, N]
        fell &= moving
        arrived = moving & (cells == self.goals).all(axis=-1)  # [E, N]
        shaping = self.potential(cells) - self.potential(self.cells)  # [E, N]
        reward = (
            -self.step_cost * moving.sum(axis=-1)
            - self.cliff_penalty * fell.sum(axis=-1)
            + self.goal_bonus * arrived.sum(axis=-1)
            + (shaping * moving).sum(axis=-1)
        )  # [E]
        active = ~self.done  # [E]
        self.cells = np.where(moving[..., None], cells, self.cells)  # [E, N, 2]
        self.reached |= arrived
        self.top_row = np.minimum(self.top_row, self.cells[..., 0])  # [E, N]
        self.falls += fell
        self.steps += active
        terminated = active & self.reached.all(axis=-1)  # [E]
        truncated = active & ~terminated & (self.steps >= self.info.episode_limit)  # [E]
        self.done |= terminated | truncated
        return EnvStep(
            next_obs=self._observe(),
            reward=reward.astype(np.float32),  # [E]
            terminated=terminated,
            truncated=truncated,
        )

    def potential(self, cells: np.ndarray) -> np.ndarray:
        """Shaping potential of cells [..., N, 2] -> [..., N]; 0 at the goal (module docstring)."""
        offset = np.abs(cells - self.goals)  # [..., N, 2] (rows, columns) to go
        return -0.5 * self.shaping * (offset[..., 1] + offset.max(axis=-1))

    def episode_metrics(self) -> dict[str, np.ndarray]:
        """Per copy [E]: cliff falls, agents reached, detour, episode steps.

        ``detour`` is the fraction of agents whose highest visited row is at least
        DETOUR_DISTANCE = 2 rows above the cliff row (the short route never leaves the lane
        right above the cliff; the detour walks two rows up).
        """
        detour_row = self.height - 1 - DETOUR_DISTANCE
        return {
            "cliff_falls": self.falls.sum(axis=-1).astype(np.float64),
            "reached": self.reached.sum(axis=-1).astype(np.float64),
            "detour": (self.top_row <= detour_row).mean(axis=-1),
            "steps": self.steps.astype(np.float64),
        }
