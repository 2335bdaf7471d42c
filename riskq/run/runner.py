"""Episode collection: E env copies, one batched agent forward per step.

``Runner`` plays one episode in every copy per call (lock-step: copies that end early wait for
the slowest). ``StreamingRunner`` restarts a copy as soon as its episode ends and carries the
running episodes over to the next call (``collection=streaming``; envs with ``reset_copies``).

Agents act epsilon-greedily on psi of their own quantiles among available actions, and greedily
at evaluation (CONVENTIONS.md section 5, "Acting"). Shapes: E env copies, T steps, N agents,
A actions, K quantiles, O observation, S state, F per-agent features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from envs.base import BatchedEnv, EnvObs
from riskq.model.buffer import EPISODE_FIELDS, EpisodeBatch, episode_tensors
from riskq.model.networks import RecurrentQuantileAgent, actions_onehot, build_agent_inputs
from riskq.model.risk import RiskMeasure


def linear_schedule(t_env: int, *, start: float, finish: float, anneal_steps: int) -> float:
    """A value annealed linearly from ``start`` to ``finish`` over ``anneal_steps`` env steps,
    then held (exploration's epsilon; the learning rate when ``algo.lr_finish`` is set)."""
    if anneal_steps <= 0:
        return finish
    fraction = min(t_env / anneal_steps, 1.0)
    return start + fraction * (finish - start)


def epsilon_greedy(
    values: np.ndarray, avail_actions: np.ndarray, epsilon: float, rng: np.random.Generator
) -> np.ndarray:
    """values [E, N, A], avail_actions [E, N, A] bool -> actions [E, N] int64.

    With probability epsilon an agent picks uniformly among its available actions.
    """
    greedy = np.where(avail_actions, values, -np.inf).argmax(axis=-1)  # [E, N]
    if epsilon <= 0.0:
        return greedy
    scores = np.where(avail_actions, rng.random(values.shape), -1.0)  # [E, N, A]
    uniform = scores.argmax(axis=-1)  # [E, N]
    explore = rng.random(greedy.shape) < epsilon  # [E, N]
    return np.where(explore, uniform, greedy)


@dataclass
class Rollout:
    """Collected episodes and their per-episode statistics."""

    batch: EpisodeBatch
    returns: np.ndarray  # [E] undiscounted team return
    lengths: np.ndarray  # [E] valid steps
    psi_chosen: float  # mean psi of the chosen actions over valid agent-steps
    env_metrics: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [E]

    @property
    def steps(self) -> int:
        return int(self.lengths.sum())


class EpisodeRecorder:
    """Preallocated arrays of every episode field (``EpisodeBatch``) for one lock-step
    collection of E episodes: ``arrays[name]`` [E, T(+1), ...] numpy views of zero tensors."""

    def __init__(self, env: BatchedEnv) -> None:
        self.tensors = episode_tensors(env.info, env.num_envs)  # CPU, padded to the limit
        self.arrays = {name: tensor.numpy() for name, tensor in self.tensors.items()}

    def observe(self, t: int, env_obs: EnvObs) -> None:
        """Observation entry ``t`` of every per-observation field, read from the ``EnvObs``
        attribute of the same name (a None one, e.g. no agent features, stays zero)."""
        for name, layout in EPISODE_FIELDS.items():
            value = getattr(env_obs, name) if layout.per_observation else None
            if value is not None:
                self.arrays[name][:, t] = value

    def record_step(self, t: int, **values: np.ndarray) -> None:
        """Step entry ``t`` of per-step fields, e.g. ``actions`` [E, N], ``reward`` [E]."""
        for name, value in values.items():
            self.arrays[name][:, t] = value

    def observe_rows(self, rows: np.ndarray, t: np.ndarray, env_obs: EnvObs) -> None:
        """Observation entry ``t[i]`` of copy ``rows[i]`` (rows [R], t [R]) for every
        per-observation field: copies at different steps of their episodes."""
        for name, layout in EPISODE_FIELDS.items():
            value = getattr(env_obs, name) if layout.per_observation else None
            if value is not None:
                self.arrays[name][rows, t] = value[rows]

    def record_rows(self, rows: np.ndarray, t: np.ndarray, **values: np.ndarray) -> None:
        """Step entry ``t[i]`` of copy ``rows[i]`` of per-step fields given for every copy."""
        for name, value in values.items():
            self.arrays[name][rows, t] = value[rows]

    def episode(self, row: int, steps: int) -> dict[str, np.ndarray]:
        """Copies of every field of copy ``row``'s first ``steps`` steps."""
        return {
            name: self.arrays[name][row, : EPISODE_FIELDS[name].entries(steps)].copy()
            for name in self.arrays
        }

    def clear(self, rows: np.ndarray) -> None:
        """Zero every field of copies ``rows`` (they start new episodes)."""
        for array in self.arrays.values():
            array[rows] = 0

    def to_batch(self, steps: int, device: torch.device) -> EpisodeBatch:
        """The first ``steps`` steps of every episode, copied to ``device``."""
        return EpisodeBatch(
            **{
                name: tensor[:, : EPISODE_FIELDS[name].entries(steps)].clone().to(device)
                for name, tensor in self.tensors.items()
            }
        )


class Runner:
    """Collects whole episodes from every copy of ``env`` with the current agent network."""

    def __init__(
        self,
        *,
        env: BatchedEnv,
        agent: RecurrentQuantileAgent,
        risk_fn: RiskMeasure,
        rng: np.random.Generator,
        device: torch.device,
    ) -> None:
        self.env = env
        self.agent = agent
        self.risk_fn = risk_fn
        self.rng = rng
        self.device = device

    in_flight = False  # no episode runs between calls

    @torch.no_grad()
    def collect(self, *, epsilon: float, seed: int | None = None, finish: bool = True) -> Rollout:
        """Run one episode in every env copy (epsilon = 0 is greedy evaluation).

        ``seed`` re-seeds the env first (evaluation replays one fixed random stream). Every
        call plays its episodes to the end (``finish`` is for ``StreamingRunner``'s signature).
        """
        env, info = self.env, self.env.info
        record = EpisodeRecorder(env)
        env_obs = env.reset(seed=seed)
        record.observe(0, env_obs)
        hidden = self.agent.initial_hidden(env.num_envs)  # [E, N, H]
        last_onehot = torch.zeros(env.num_envs, info.n_agents, info.n_actions, device=self.device)
        active = np.ones(env.num_envs, bool)  # [E]
        psi_sum, psi_count, t = 0.0, 0, 0
        for t in range(info.episode_limit):
            obs = torch.from_numpy(env_obs.obs).to(self.device)  # [E, N, O]
            quantiles, hidden = self.agent.step(build_agent_inputs(obs, last_onehot), hidden)
            values = self.risk_fn(quantiles).cpu().numpy()  # [E, N, A]
            actions = epsilon_greedy(values, env_obs.avail_actions, epsilon, self.rng)  # [E, N]
            chosen = np.take_along_axis(values, actions[..., None], axis=-1)[..., 0]  # [E, N]
            psi_sum += float(chosen[active].sum())
            psi_count += int(active.sum()) * info.n_agents
            step = env.step(actions)
            record.record_step(
                t,
                actions=actions,
                reward=step.reward,
                terminated=step.terminated & active,
                mask=active,
            )
            active = active & ~(step.terminated | step.truncated)
            env_obs = step.next_obs
            record.observe(t + 1, env_obs)
            last_onehot = actions_onehot(
                torch.from_numpy(actions).to(self.device), info.n_actions
            )  # [E, N, A]
            if not active.any():
                break
        reward, mask = record.arrays["reward"], record.arrays["mask"]  # [E, T]
        return Rollout(
            batch=record.to_batch(t + 1, self.device),
            returns=(reward * mask).sum(axis=1),
            lengths=mask.sum(axis=1),
            psi_chosen=psi_sum / max(psi_count, 1),
            env_metrics=env.episode_metrics(),
        )


@dataclass
class Stream:
    """The episodes in flight between ``StreamingRunner.collect`` calls."""

    record: EpisodeRecorder  # per copy, the running episode so far
    env_obs: EnvObs  # the latest observation of every copy
    hidden: torch.Tensor  # [E, N, H]
    last_onehot: torch.Tensor  # [E, N, A]
    steps: np.ndarray  # [E] int, steps taken in each copy's running episode
    running: np.ndarray  # [E] bool


@dataclass
class Finished:
    """One episode that ended: its fields (``EpisodeRecorder.episode``) and statistics."""

    fields: dict[str, np.ndarray]
    steps: int
    metrics: dict[str, float]


class StreamingRunner(Runner):
    """Collects episodes without waiting for the slowest copy.

    A copy whose episode ends starts its next one at once (``env.step_restart``), and the
    episodes still running carry over to the next call. Each call returns the episodes that
    ended in it, at least E of them; with ``finish=True`` no episode starts and every running
    one is played to its end, so that nothing is in flight (the trainer does this before each
    checkpoint during training, which keeps resume exact; the episodes still running when the
    budget is spent are dropped). Evaluation keeps the lock-step ``Runner``.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        if not self.env.resets_copies:
            raise ValueError(
                f"collection=streaming: {type(self.env).__name__} cannot restart single copies "
                "(reset_copies); valid choices for it: lockstep"
            )
        self.stream: Stream | None = None

    @property
    def in_flight(self) -> bool:
        return self.stream is not None

    def _start(self, seed: int | None) -> Stream:
        env, info = self.env, self.env.info
        record = EpisodeRecorder(env)
        env_obs = env.reset(seed=seed)
        record.observe(0, env_obs)
        return Stream(
            record=record,
            env_obs=env_obs,
            hidden=self.agent.initial_hidden(env.num_envs),  # [E, N, H]
            last_onehot=torch.zeros(
                env.num_envs, info.n_agents, info.n_actions, device=self.device
            ),
            steps=np.zeros(env.num_envs, np.int64),
            running=np.ones(env.num_envs, bool),
        )

    def _restarted(self, stream: Stream, ended: np.ndarray, env_obs: EnvObs) -> None:
        """Copies ``ended`` [E] bool started new episodes, whose first observation is in
        ``env_obs`` (every copy's latest)."""
        rows = np.flatnonzero(ended)
        stream.env_obs = env_obs
        stream.record.clear(rows)
        stream.record.observe_rows(rows, np.zeros(rows.size, np.int64), env_obs)
        index = torch.from_numpy(ended).to(self.device)
        stream.hidden[index] = self.agent.initial_hidden(rows.size)  # [R, N, H]
        stream.last_onehot[index] = 0.0
        stream.steps[rows] = 0
        stream.running[rows] = True

    @torch.no_grad()
    def collect(self, *, epsilon: float, seed: int | None = None, finish: bool = False) -> Rollout:
        """Step every running copy until E episodes have ended in this call (``finish``:
        until none runs). ``seed`` drops the episodes in flight and re-seeds the env."""
        env, info = self.env, self.env.info
        if seed is not None or self.stream is None:
            self.stream = self._start(seed)
        stream, finished = self.stream, []
        psi_sum, psi_count = 0.0, 0
        while stream.running.any() and (finish or len(finished) < env.num_envs):
            obs = torch.from_numpy(stream.env_obs.obs).to(self.device)  # [E, N, O]
            inputs = build_agent_inputs(obs, stream.last_onehot)
            quantiles, stream.hidden = self.agent.step(inputs, stream.hidden)
            values = self.risk_fn(quantiles).cpu().numpy()  # [E, N, A]
            avail = stream.env_obs.avail_actions
            actions = epsilon_greedy(values, avail, epsilon, self.rng)  # [E, N]
            running = stream.running.copy()  # [E]
            rows, steps = np.flatnonzero(running), stream.steps[running]  # [R], [R]
            chosen = np.take_along_axis(values, actions[..., None], axis=-1)[..., 0]  # [E, N]
            psi_sum += float(chosen[running].sum())
            psi_count += rows.size * info.n_agents
            if finish:  # no new episode: the copies that end wait
                step, metrics, restarted = env.step(actions), None, None
            else:
                step, metrics, restarted = env.step_restart(actions)
            stream.record.record_rows(
                rows,
                steps,
                actions=actions,
                reward=step.reward,
                terminated=step.terminated,
                mask=running,
            )
            stream.steps[rows] += 1
            stream.env_obs = step.next_obs
            stream.record.observe_rows(rows, steps + 1, step.next_obs)
            stream.last_onehot = actions_onehot(
                torch.from_numpy(actions).to(self.device), info.n_actions
            )  # [E, N, A]
            ended = running & (step.terminated | step.truncated)  # [E]
            stream.running &= ~ended
            if ended.any():
                metrics = env.episode_metrics() if metrics is None else metrics
                for row in np.flatnonzero(ended):
                    episode_steps = int(stream.steps[row])
                    finished.append(
                        Finished(
                            fields=stream.record.episode(row, episode_steps),
                            steps=episode_steps,
                            metrics={name: float(v[row]) for name, v in metrics.items()},
                        )
                    )
                if restarted is not None:
                    self._restarted(stream, ended, restarted)
        if finish:
            self.stream = None
        return self._rollout(finished, psi_sum / max(psi_count, 1))

    def _rollout(self, finished: list[Finished], psi_chosen: float) -> Rollout:
        """The ended episodes as one batch padded to the longest of them."""
        longest = max((episode.steps for episode in finished), default=0)
        tensors = episode_tensors(self.env.info, len(finished))
        for i, episode in enumerate(finished):
            for name, value in episode.fields.items():
                tensors[name][i, : value.shape[0]] = torch.from_numpy(value)
        batch = EpisodeBatch(
            **{
                name: tensor[:, : EPISODE_FIELDS[name].entries(longest)].to(self.device)
                for name, tensor in tensors.items()
            }
        )
        rewards = [float(ep.fields["reward"][: ep.steps].sum(dtype=np.float64)) for ep in finished]
        names = finished[0].metrics if finished else {}
        return Rollout(
            batch=batch,
            returns=np.array(rewards, np.float32),
            lengths=np.array([episode.steps for episode in finished], np.int64),
            psi_chosen=psi_chosen,
            env_metrics={
                name: np.array([episode.metrics[name] for episode in finished], np.float32)
                for name in names
            },
        )


RUNNERS = {"lockstep": Runner, "streaming": StreamingRunner}  # TrainConfig.collection
