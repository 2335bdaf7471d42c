"""The fast update (``algo.update=fast``: riskq.model.learner, riskq.model.kernels,
riskq.model.optim) against the reference update it optimises (``algo.update=reference``:
riskq.model.reference, plain torch ops).

Same batch, same weights: the targets, the predicted joint quantiles, the loss and every
parameter gradient agree to 1e-5 (1e-10 in float64), for every algorithm config; short
training runs under the two switches end with the same parameters; each kernel agrees with
the plain op it replaces.
"""

import copy
import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from budgets import TINY

from riskq.cli.compose import compose_config
from riskq.config import AlgoConfig
from riskq.model import kernels, reference
from riskq.model import learner as learner_module
from riskq.model.kernels import (
    SHORT_SEQUENCE_STEPS,
    action_head,
    gru_sequences,
    gru_steps,
    sort_quantiles,
)
from riskq.model.mixers import MIXERS
from riskq.model.optim import OPTIMISERS, build_optimiser
from riskq.model.quantiles import quantile_huber_loss, quantile_midpoints
from riskq.model.targets import td_lambda_targets
from riskq.run.checkpoint import load_checkpoint
from riskq.run.experiment import LEARNERS, build_experiment
from riskq.run.trainer import train

ROOT = Path(__file__).resolve().parents[1]
ALGOS = sorted(p.stem for p in (ROOT / "configs" / "algo").glob("*.yaml"))
TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}
TIGHT = {"atol": 1e-10, "rtol": 1e-8}  # float64: catches a 0.1% error in any gradient path


def reference_objective(learner, batch):
    """(loss, predicted, targets) of riskq.model.reference with ``learner``'s networks."""
    return reference.objective(
        batch, networks=learner.networks, risk_fn=learner.risk_fn, cfg=learner.cfg
    )


# ----------------------------------------------------------------------------- fixtures
def learner_and_batch(
    algo: str, env: str, *, shared: bool = True, dtype=torch.float32, episode_limit: int = 15
):
    overrides = [
        f"algo={algo}",
        f"env={env}",
        "algo.agent.hidden_dim=16",
        f"algo.agent.shared={str(shared).lower()}",
        "algo.batch_size=6",
        "num_envs=4",
        "eval_episodes=2",
        "seed=3",
    ]
    if env == "macf":
        overrides += [f"env.args.episode_limit={episode_limit}"]
    if compose_config(overrides).algo.agent.n_quantiles > 1:
        overrides += ["algo.agent.n_quantiles=8"]
    exp = build_experiment(compose_config(overrides))
    for _ in range(3):
        exp.buffer.add(exp.runner.collect(epsilon=1.0).batch)
    batch = exp.buffer.sample(6, np.random.default_rng(0))
    learner = exp.learner
    modules = (learner.agent, learner.mixer, learner.target_agent, learner.target_mixer)
    for module in modules:
        module.to(dtype)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # a target network that differs from the online one
        for module in (learner.target_agent, learner.target_mixer):
            for parameter in module.parameters():
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator).to(dtype))
    floats = {k: v.to(dtype) for k, v in batch.tensors().items() if v.is_floating_point()}
    return learner, type(batch)(**{**batch.tensors(), **floats})


def gradients(learner, loss) -> dict[str, torch.Tensor]:
    named = [*learner.agent.named_parameters(), *learner.mixer.named_parameters()]
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    return {
        name: torch.zeros_like(p) if g is None else g
        for (name, p), g in zip(named, grads, strict=True)
    }


def assert_same_update(learner, batch, tolerance=TOLERANCE):
    reference_loss, reference_predicted, reference_targets = reference_objective(learner, batch)
    loss, predicted, targets = learner.objective(batch)
    valid = batch.mask
    if targets.shape[-1] == 1:  # one sample stands for K equal ones (one-step games: G = r)
        targets = targets.expand_as(reference_targets)
    torch.testing.assert_close(targets[valid], reference_targets[valid], **tolerance)
    torch.testing.assert_close(predicted[valid], reference_predicted[valid], **tolerance)
    torch.testing.assert_close(loss, reference_loss, **tolerance)
    expected, got = gradients(learner, reference_loss), gradients(learner, loss)
    assert any(g.abs().sum() > 0 for g in expected.values())
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, **tolerance, msg=lambda m, n=name: f"{n}: {m}")


# ----------------------------------------------------------------------------- tests
@pytest.fixture(params=["dense", "grouped"])
def head_path(request, monkeypatch):
    """Both ways of evaluating the head at the taken actions (riskq.model.kernels.action_head)."""
    if request.param == "grouped":
        monkeypatch.setattr(kernels, "DENSE_HEAD_MACS", 0)
    return request.param


def test_the_algo_configs_cover_the_mixer_registry():
    assert {compose_config([f"algo={algo}"]).algo.mixer for algo in ALGOS} == set(MIXERS)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("env", ["macf", "matrix"])
def test_update_equals_reference_update(algo, env, head_path):
    learner, batch = learner_and_batch(algo, env)
    assert_same_update(learner, batch)


@pytest.mark.parametrize("algo", ["riskq", "dmix", "qmix"])
def test_update_equals_reference_update_per_agent_networks_in_float64(algo, head_path):
    learner, batch = learner_and_batch(algo, "macn", shared=False, dtype=torch.float64)
    assert not batch.mask.all()  # padded episodes of different lengths
    assert_same_update(learner, batch, TIGHT)


@pytest.mark.parametrize("algo", ["riskq", "dmix", "qmix"])
@pytest.mark.parametrize("shared", [True, False])
def test_one_step_game_update_equals_reference_update_in_float64(algo, shared, head_path):
    """The matrix games' path: T = 1, every step terminal (one target sample, G = r), the GRU
    as plain autograd ops from the zero state (riskq.model.kernels.gru_steps)."""
    learner, batch = learner_and_batch(algo, "matrix", shared=shared, dtype=torch.float64)
    assert batch.max_steps == 1 and batch.terminated[batch.mask].all()
    targets = learner.objective(batch)[2]
    assert targets.shape[-1] == 1
    assert_same_update(learner, batch, TIGHT)


@pytest.mark.parametrize("algo", ["riskq", "dmix", "qmix"])
@pytest.mark.parametrize("shared", [True, False])
def test_short_bootstrapped_sequences_equal_reference_update_in_float64(algo, shared, head_path):
    """One-step MACF episodes that are truncated, not terminated: both networks run over
    T + 1 = 2 steps through gru_steps (a non-zero hidden state at the second step)."""
    assert SHORT_SEQUENCE_STEPS >= 2
    learner, batch = learner_and_batch(
        algo, "macf", shared=shared, dtype=torch.float64, episode_limit=1
    )
    assert batch.max_steps == 1 and not batch.terminated.any()
    assert_same_update(learner, batch, TIGHT)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("buckets", [2, 4])
def test_length_buckets_update_equals_reference_update_in_float64(
    algo, buckets, head_path, monkeypatch
):
    """algo.length_buckets: the batch computed as sub-batches of similar episode length, each
    padded to its own longest, gives the reference's targets, loss and gradients. (No per-step
    overhead in the cost, so that a batch of 6 episodes splits.)"""
    no_overhead = functools.partial(learner_module.length_buckets, step_overhead=0.0)
    monkeypatch.setattr(learner_module, "length_buckets", no_overhead)
    learner, batch = learner_and_batch(algo, "macn", dtype=torch.float64)
    learner.cfg.length_buckets = buckets
    lengths = batch.mask.sum(dim=1)
    assert len(set(lengths.tolist())) > 1  # episodes of different lengths
    groups = learner.buckets(batch)
    assert 1 < len(groups) <= buckets
    assert sorted(np.concatenate(groups).tolist()) == list(range(batch.batch_size))
    assert_same_update(learner, batch, TIGHT)


OPTIMISER_PAIRS = {  # riskq.model.optim.OPTIMISERS key -> (torch's class, the same settings)
    "rmsprop": (torch.optim.RMSprop, {"lr": 1e-2, "alpha": 0.9, "eps": 1e-5}),
    "adam": (torch.optim.Adam, {"lr": 1e-2, "betas": (0.8, 0.95), "eps": 1e-5}),
}


def test_every_optimiser_has_a_torch_reference():
    assert OPTIMISER_PAIRS.keys() == OPTIMISERS.keys()


@pytest.mark.parametrize("name", OPTIMISERS)
def test_hand_written_optimiser_equals_torch_and_loads_its_state(name):
    """Each riskq.model.optim optimiser against torch's, step for step, to the last bit; each loads
    the other's state_dict (checkpoints of either kind resume) and they stay equal."""
    torch_class, settings = OPTIMISER_PAIRS[name]
    cfg = AlgoConfig(
        optimiser=name,
        lr=settings["lr"],
        optim_eps=settings["eps"],
        optim_alpha=settings.get("alpha", 0.99),
        optim_betas=settings.get("betas", (0.9, 0.999)),
    )
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(50, generator=generator)
    params = [torch.nn.Parameter(start.clone()) for _ in range(2)]
    theirs = torch_class([params[0]], **settings)
    ours = build_optimiser(params[1], cfg)
    for step in range(6):
        if step == 2:  # swap states through state_dict: torch's into ours and ours into torch's
            theirs_state, ours_state = theirs.state_dict(), ours.state_dict()
            ours.load_state_dict(copy.deepcopy(theirs_state))
            theirs.load_state_dict(copy.deepcopy(ours_state))
        grad = torch.randn(50, generator=generator)
        for param in params:
            param.grad = grad.clone()
        theirs.step()
        ours.step()
        assert torch.equal(params[0], params[1]), step
    assert not torch.equal(params[1], start)
    states = [opt.state_dict()["state"][0] for opt in (theirs, ours)]
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert torch.equal(torch.as_tensor(states[0][key]), states[1][key]), key
    assert float(states[1]["step"]) == 6
    assert ours.state_dict()["param_groups"][0].keys() == theirs.param_groups[0].keys()


def test_gru_steps_equal_nn_gru_from_zero_and_given_state():
    torch.manual_seed(0)
    gru = torch.nn.GRU(5, 7)
    upstream = torch.randn(2, 4, 7)
    for steps, hidden in ((1, None), (2, None), (2, torch.randn(4, 7))):
        inputs = torch.randn(steps, 4, 5, requires_grad=True)
        got = gru_steps(gru, inputs, hidden)  # [T, B', H]
        start = torch.zeros(1, 4, 7) if hidden is None else hidden.unsqueeze(0)
        expected, _ = gru(inputs, start)
        torch.testing.assert_close(got, expected, **TOLERANCE)
        names = ["inputs", *dict(gru.named_parameters())]
        wrt = [inputs, *gru.parameters()]
        got_grads = torch.autograd.grad((got * upstream[:steps]).sum(), wrt, allow_unused=True)
        grads = torch.autograd.grad((expected * upstream[:steps]).sum(), wrt)
        for name, a, b in zip(names, got_grads, grads, strict=True):
            if a is None:  # only W_hh, from the zero state, where its gradient is exactly 0
                assert name == "weight_hh_l0" and steps == 1 and hidden is None
                assert not b.any()
                continue
            torch.testing.assert_close(a, b, **TOLERANCE, msg=lambda m, n=name: f"{n}: {m}")


def test_update_step_changes_only_online_parameters():
    learner, batch = learner_and_batch("riskq", "macf")
    target = [p.clone() for p in learner.target_agent.parameters()]
    online = [p.clone() for p in learner.agent.parameters()]
    metrics = learner.update(batch, episodes_seen=0)
    assert set(metrics) == {"loss", "grad_norm", "joint_mean", "target_mean"}
    after_target, after_online = learner.target_agent.parameters(), learner.agent.parameters()
    assert all(torch.equal(a, b) for a, b in zip(target, after_target, strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(online, after_online, strict=True))


def test_gru_sequences_equal_nn_gru_with_a_frozen_set():
    torch.manual_seed(0)
    grus = [torch.nn.GRU(5, 7) for _ in range(3)]
    grus[2].requires_grad_(False)  # frozen, like the target network
    inputs = torch.randn(3, 6, 4, 5)  # [S, T, B', I]
    hidden = torch.randn(3, 4, 7)  # [S, B', H]
    trainable_inputs = inputs[:2].clone().requires_grad_()
    got = gru_sequences(grus[:2], trainable_inputs, hidden, grus[2:], inputs[2:])  # [S, T, B', H]
    upstream = torch.randn(got.shape)
    (got * upstream).sum().backward()
    for s, gru in enumerate(grus):
        x = inputs[s].clone().requires_grad_(s < 2)
        expected, _ = gru(x, hidden[s].unsqueeze(0))
        torch.testing.assert_close(got[s], expected, **TOLERANCE)
        if s < 2:
            grads = torch.autograd.grad((expected * upstream[s]).sum(), [x, *gru.parameters()])
            torch.testing.assert_close(trainable_inputs.grad[s], grads[0], **TOLERANCE)
            for parameter, grad in zip(gru.parameters(), grads[1:], strict=True):
                torch.testing.assert_close(parameter.grad, grad, **TOLERANCE)
    assert all(p.grad is None for p in grus[2].parameters())


def test_action_head_equals_full_head_gathered_with_empty_groups(head_path):
    torch.manual_seed(0)
    head = torch.nn.Linear(6, 5 * 4)  # A = 5 actions, K = 4
    features = torch.randn(3, 7, 6, requires_grad=True)
    actions = torch.randint(0, 3, (3, 7))  # actions 3 and 4 are never taken
    upstream = torch.randn(3, 7, 4)
    got = action_head(head, features, actions, 5)
    got_grads = torch.autograd.grad((got * upstream).sum(), [features, *head.parameters()])
    full = head(features).view(3, 7, 5, 4)
    expected = full.gather(-2, actions[..., None, None].expand(3, 7, 1, 4)).squeeze(-2)
    grads = torch.autograd.grad((expected * upstream).sum(), [features, *head.parameters()])
    torch.testing.assert_close(got, expected, **TOLERANCE)
    for a, b in zip(got_grads, grads, strict=True):
        torch.testing.assert_close(a, b, **TOLERANCE)


def test_differentiable_sort_equals_torch_sort():
    values = torch.randn(4, 3, 9, requires_grad=True)
    upstream = torch.randn(4, 3, 9)
    got = sort_quantiles(values)
    expected = torch.sort(values, dim=-1).values
    torch.testing.assert_close(got, expected)
    got_grad = torch.autograd.grad((got * upstream).sum(), values)
    expected_grad = torch.autograd.grad((expected * upstream).sum(), values)
    torch.testing.assert_close(got_grad, expected_grad)
    unsorted = torch.randn(70_000, 4)  # long enough to be split over threads
    torch.testing.assert_close(sort_quantiles(unsorted), torch.sort(unsorted, dim=-1).values)


def test_td_lambda_equals_the_loop_on_padded_episodes():
    generator = torch.Generator().manual_seed(0)
    reward = torch.randn(5, 13, generator=generator)
    lengths = torch.tensor([13, 9, 1, 5, 13])
    mask = torch.arange(13) < lengths.unsqueeze(1)  # [B, T]
    terminated = torch.zeros(5, 13, dtype=torch.bool)
    terminated[1, 8] = terminated[2, 0] = True  # episodes 0, 3, 4 are truncated
    next_values = torch.randn(5, 13, 3, generator=generator)
    episodes = {"reward": reward, "terminated": terminated, "mask": mask}
    got = td_lambda_targets(**episodes, next_values=next_values, gamma=0.9, td_lambda=0.6)
    expected = reference.td_lambda_targets(
        **episodes, next_values=next_values, gamma=0.9, td_lambda=0.6
    )  # the loop over time
    torch.testing.assert_close(got[mask], expected[mask], **TOLERANCE)


def test_quantile_loss_across_block_boundaries_equals_the_formula():
    generator = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 150, 32, generator=generator, requires_grad=True)  # 450 rows
    target = torch.randn(3, 150, 32, generator=generator)
    got = quantile_huber_loss(pred, target, quantile_midpoints(32), kappa=1.0)
    expected = reference.quantile_huber_loss(pred, target, kappa=1.0)
    torch.testing.assert_close(got, expected, **TOLERANCE)
    upstream = torch.randn(3, 150, generator=generator)
    got_grad = torch.autograd.grad((got * upstream).sum(), pred)
    expected_grad = torch.autograd.grad((expected * upstream).sum(), pred)
    torch.testing.assert_close(got_grad, expected_grad, **TOLERANCE)


@pytest.mark.parametrize("algo", ["riskq", "qmix"])
@pytest.mark.parametrize("env", ["macf", "matrix"])
def test_reward_scale_trains_on_scaled_rewards(algo, env):
    """algo.reward_scale = s: the update is the unscaled reference update of rewards x s."""
    learner, batch = learner_and_batch(algo, env)
    learner.cfg.reward_scale = 0.01
    loss, _, targets = learner.objective(batch)
    learner.cfg.reward_scale = 1.0
    scaled = type(batch)(**{**batch.tensors(), "reward": batch.reward * 0.01})
    reference_loss, _, reference_targets = reference_objective(learner, scaled)
    valid = batch.mask
    torch.testing.assert_close(
        targets.expand_as(reference_targets)[valid], reference_targets[valid]
    )
    torch.testing.assert_close(loss, reference_loss)


@pytest.mark.parametrize("scale", [1.0, 0.01])
def test_update_reports_target_mean_in_env_units(scale):
    """One-step game: every target is G = r, so target_mean is the mean reward at any scale."""
    learner, batch = learner_and_batch("riskq", "matrix")
    learner.cfg.reward_scale = scale
    metrics = learner.update(batch, episodes_seen=0)
    assert metrics["target_mean"] == pytest.approx(batch.reward[batch.mask].mean().item(), rel=1e-5)


def test_reference_optimisers_cover_the_optimiser_registry():
    assert reference.TORCH_OPTIMISERS.keys() == OPTIMISERS.keys()


def by_name(agent_state: dict, mixer_state: dict) -> dict[str, torch.Tensor]:
    """The agent's and the mixer's state dicts as one, keys ``agent.<name>``, ``mixer.<name>``."""
    return {
        **{f"agent.{name}": value for name, value in agent_state.items()},
        **{f"mixer.{name}": value for name, value in mixer_state.items()},
    }


def trained_parameters(tmp_path: Path, overrides: list[str]) -> tuple[dict, dict]:
    """A tiny run's summary and its final agent and mixer parameters by name."""
    cfg = compose_config(overrides)
    summary = train(cfg, tmp_path, build_experiment(cfg))
    state = load_checkpoint(tmp_path)["learner"]
    return summary, by_name(state["agent"], state["mixer"])


@pytest.mark.parametrize(
    ("algo", "env", "extra"),
    [
        ("riskq", "matrix", []),  # zero head: tied quantiles at the first update
        ("riskq", "macn", ["algo.optimiser=adam"]),
        ("qmix", "macn", []),
        ("iqr", "macf", ["algo.agent.n_quantiles=8", "env.args.episode_limit=30"]),
    ],
)
def test_training_under_both_switches_ends_with_equal_parameters(tmp_path, algo, env, extra):
    """A short run (tens of updates, a target sync every 8 episodes) with algo.update=fast and
    with algo.update=reference: the same updates, the same evaluation, equal parameters."""
    base = [f"algo={algo}", f"env={env}", *TINY, "algo.target_update_interval=8", *extra]
    fast, fast_params = trained_parameters(tmp_path / "fast", [*base, "algo.update=fast"])
    ref, ref_params = trained_parameters(tmp_path / "ref", [*base, "algo.update=reference"])
    assert fast["updates"] == ref["updates"] >= 16
    assert fast["eval/return_mean"] == ref["eval/return_mean"]
    assert fast_params.keys() == ref_params.keys()
    for name, value in fast_params.items():
        torch.testing.assert_close(value, ref_params[name], **TOLERANCE, msg=name)
    untrained = build_experiment(compose_config(base)).learner
    initial = by_name(untrained.agent.state_dict(), untrained.mixer.state_dict())
    moved = sum(not torch.equal(initial[name], value) for name, value in ref_params.items())
    assert moved > len(ref_params) // 2  # training changed the networks


def test_reference_update_resumes_exactly(tmp_path):
    base = [
        "env=macn",
        *TINY,
        "t_max=400",
        "checkpoint_interval=100000",
        "algo.target_update_interval=8",
        "algo.update=reference",
        "seed=5",
    ]
    full = train((cfg := compose_config(base)), tmp_path / "full", build_experiment(cfg))
    half = compose_config([*base, "t_max=200"])
    train(half, tmp_path / "half", build_experiment(half))
    resumed_cfg = compose_config([*base, f"resume={tmp_path / 'half'}"])
    resumed = train(resumed_cfg, tmp_path / "half", build_experiment(resumed_cfg))
    assert resumed == full
    states = [load_checkpoint(tmp_path / run)["learner"] for run in ("full", "half")]
    for name, value in states[0]["agent"].items():
        assert torch.equal(value, states[1]["agent"][name]), name
    assert torch.equal(
        states[0]["optimiser"]["state"][0]["square_avg"],
        states[1]["optimiser"]["state"][0]["square_avg"],
    )
    metrics = [
        (tmp_path / run / "metrics.jsonl").read_text().splitlines() for run in ("full", "half")
    ]
    records = [[json.loads(line) for line in lines] for lines in metrics]
    for record in records[0] + records[1]:
        record.pop("train/env_steps_per_s", None)  # wall-clock speed differs, the rest must not
    assert records[0] == records[1]


def test_unknown_update_is_a_one_line_error_listing_the_choices(tmp_path):
    run_dir = tmp_path / "run"
    command = [Path(sys.executable).with_name("riskq-train"), "algo.update=slow"]
    result = subprocess.run(
        [*command, f"hydra.run.dir={run_dir}"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 2
    message = "algo.update: unknown 'slow'; valid choices: fast, reference"
    assert message in result.stderr and result.stderr.strip().count("\n") == 0
    assert not run_dir.exists()
    assert list(LEARNERS) == ["fast", "reference"]


def test_the_update_page_quotes_the_reference_module_as_it_is():
    """Every Python excerpt of docs/concepts/update.md stands, line for line, in
    riskq/model/reference.py, so the walk-through cannot drift from the code it walks through."""
    page = (ROOT / "docs" / "concepts" / "update.md").read_text()
    source = (ROOT / "riskq" / "model" / "reference.py").read_text()
    excerpts = re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL)
    assert len(excerpts) >= 8
    for excerpt in excerpts:
        assert excerpt in source, excerpt
