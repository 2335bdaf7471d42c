"""Mixers of the registry (CONVENTIONS.md sections 4 and 6)."""

import pytest
import torch

from riskq.config import MixerConfig
from riskq.model.mixers import MIXERS, STATE_TRANSFORMS, RiskQMixer, make_mixer, symlog
from riskq.model.risk import make_risk_measure

B, T, N, K, S, F = 4, 3, 3, 8, 5, 2
CVAR = make_risk_measure("cvar", 0.25)
NEUTRAL = make_risk_measure("neutral")
# Joint quantiles non-decreasing in every single agent quantile (not only in whole shifts).
QUANTILE_MONOTONE = ["riskq", "ddn", "quantile-mix"]
JOINT = [name for name, mixer_class in MIXERS.items() if mixer_class.joint]


def build(name, *, feature_dim=F, risk_fn=CVAR, seed=0, n_quantiles=K, state_transform="none"):
    torch.manual_seed(seed)
    return make_mixer(
        name,
        n_agents=N,
        state_dim=S,
        n_quantiles=n_quantiles,
        agent_feature_dim=feature_dim,
        risk_fn=risk_fn,
        cfg=MixerConfig(state_transform=state_transform),
    )


def inputs(seed=1, feature_dim=F):
    generator = torch.Generator().manual_seed(seed)
    quantiles = torch.randn(B, T, N, K, generator=generator).sort(dim=-1).values  # [B, T, N, K]
    state = torch.randn(B, T, S, generator=generator)  # [B, T, S]
    features = torch.randn(B, T, N, feature_dim, generator=generator) if feature_dim else None
    return quantiles, state, features


def test_registry_flags():
    assert set(MIXERS) == {
        "riskq", "vdn", "qmix", "ddn", "dmix", "risk-mix", "quantile-mix", "none"
    }  # fmt: skip
    assert [name for name, cls in MIXERS.items() if not cls.joint] == ["none"]
    expected_only = {name for name, cls in MIXERS.items() if not cls.distributional}
    assert expected_only == {"vdn", "qmix"}
    for mixer_class in MIXERS.values():
        assert "RIGM" in mixer_class.__doc__


@pytest.mark.parametrize("name", list(MIXERS))
def test_output_shape_and_sorted_joint_quantiles(name):
    mixer = build(name)
    quantiles, state, features = inputs()
    out = mixer(quantiles, state, features)
    if not mixer.joint:
        assert torch.equal(out, quantiles)
    elif mixer.distributional:
        assert out.shape == (B, T, K)
        assert (out.diff(dim=-1) >= -1e-6).all()
    else:
        assert out.shape == (B, T, 1)


@pytest.mark.parametrize("name", list(MIXERS))
def test_gradient_reaches_agent_quantiles_and_mixer_parameters(name):
    mixer = build(name)
    quantiles, state, features = inputs()
    quantiles.requires_grad_(True)
    mixer(quantiles, state, features).square().sum().backward()
    assert quantiles.grad is not None and quantiles.grad.abs().sum() > 0
    parameters = dict(mixer.named_parameters())
    assert (len(parameters) == 0) == (name in ("vdn", "none"))
    for param_name, parameter in parameters.items():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, param_name


@pytest.mark.parametrize("name", QUANTILE_MONOTONE)
def test_joint_quantiles_monotone_in_every_agent_quantile(name):
    mixer = build(name)
    quantiles, state, features = inputs()
    jacobian = torch.autograd.functional.jacobian(
        lambda q: mixer(q, state[:1, :1], None if features is None else features[:1, :1]),
        quantiles[:1, :1],
    )  # [1, 1, K, 1, 1, N, K]
    assert (jacobian >= 0).all()
    assert (jacobian > 0).any()


@pytest.mark.parametrize("name", JOINT)
def test_joint_output_monotone_in_a_shift_of_any_agent(name):
    mixer = build(name)
    quantiles, state, features = inputs()
    base = mixer(quantiles, state, features)
    for agent in range(N):
        shifted = quantiles.clone()
        shifted[..., agent, :] += 0.5
        assert (mixer(shifted, state, features) >= base - 1e-6).all()


def test_dmix_is_not_monotone_in_single_quantiles():
    """Raising one quantile moves the mean part by w/K and the other centred atoms by -1/K:
    the lowest joint quantile drops wherever the QMIX slope w on that agent's mean is < 1."""
    mixer = build("dmix")
    quantiles, state, features = inputs()
    raised = quantiles.clone()
    raised[..., 0, -1] += 1.0  # raise agent 0's top quantile only
    drop = mixer(raised, state, features)[..., 0] - mixer(quantiles, state, features)[..., 0]
    assert (drop < 0).any()


@pytest.mark.parametrize("feature_dim", [0, F])
def test_riskq_kappa_nonnegative_action_independent_and_exact(feature_dim):
    mixer = build("riskq", feature_dim=feature_dim)
    assert isinstance(mixer, RiskQMixer)
    quantiles, state, features = inputs(feature_dim=feature_dim)
    other, _, _ = inputs(seed=7, feature_dim=feature_dim)
    kappa = mixer.mixing_weights(state, features)
    assert kappa.shape == (B, T, N) and (kappa >= 0).all()
    # theta_jt = sum_i kappa_i theta_i + c with the same kappa for any quantiles (actions).
    difference = mixer(quantiles, state, features) - mixer(other, state, features)
    expected = torch.einsum("btn,btnk->btk", kappa, quantiles - other)
    torch.testing.assert_close(difference, expected, atol=1e-5, rtol=1e-5)


def test_riskq_uses_agent_features():
    mixer = build("riskq")
    _, state, features = inputs()
    swapped = features.flip(dims=[-2])  # agents exchange their features
    kappa, kappa_swapped = (
        mixer.mixing_weights(state, features),
        mixer.mixing_weights(state, swapped),
    )
    torch.testing.assert_close(kappa_swapped, kappa.flip(dims=[-1]))
    assert not torch.allclose(kappa, kappa_swapped)
    with pytest.raises(ValueError, match=r"agent_features None must be \(4, 3, 3, 2\)"):
        mixer.mixing_weights(state, None)


def test_known_answers_of_simple_mixers():
    quantiles, state, features = inputs()
    vdn = build("vdn")(quantiles, state, features)
    torch.testing.assert_close(vdn, quantiles.mean(-1).sum(-1, keepdim=True))
    ddn = build("ddn")
    offset = ddn(torch.zeros_like(quantiles), state, features)  # V(s), the same for every k
    torch.testing.assert_close(ddn(quantiles, state, features), quantiles.sum(-2) + offset)
    assert torch.allclose(offset, offset[..., :1].expand_as(offset))


def test_dmix_mean_is_qmix_of_means_and_risk_mix_with_mean_is_dmix():
    quantiles, state, features = inputs()
    dmix = build("dmix", seed=3)(quantiles, state, features)
    qmix = build("qmix", seed=3)(quantiles, state, features)
    torch.testing.assert_close(dmix.mean(-1, keepdim=True), qmix, atol=1e-5, rtol=1e-5)
    risk_mix = build("risk-mix", seed=3, risk_fn=NEUTRAL)(quantiles, state, features)
    torch.testing.assert_close(risk_mix, dmix)
    risk_mix_cvar = build("risk-mix", seed=3, risk_fn=CVAR)(quantiles, state, features)
    assert not torch.allclose(risk_mix_cvar, dmix)


def test_quantile_mix_of_point_masses_is_qmix():
    _, state, features = inputs()
    points = torch.randn(B, T, N, 1).expand(B, T, N, K)  # [B, T, N, K], every atom equal
    quantile_mix = build("quantile-mix", seed=5)(points, state, features)
    qmix = build("qmix", seed=5)(points, state, features)
    torch.testing.assert_close(quantile_mix, qmix.expand(B, T, K), atol=1e-5, rtol=1e-5)


def test_mixers_work_at_other_leading_ranks():
    quantiles, state, features = inputs()
    for name in JOINT:
        mixer = build(name)
        flat = mixer(quantiles.flatten(0, 1), state.flatten(0, 1), features.flatten(0, 1))
        torch.testing.assert_close(flat, mixer(quantiles, state, features).flatten(0, 1))


def test_bad_names_and_shapes_raise():
    with pytest.raises(ValueError, match=r"unknown mixer 'qmx'.*valid choices.*'riskq'"):
        build("qmx")
    with pytest.raises(ValueError, match=r"risk-mix.*risk measure"):
        build("risk-mix", risk_fn=None)
    mixer = build("ddn")
    quantiles, state, features = inputs()
    with pytest.raises(ValueError, match=r"\(4, 3, 2, 8\).*N=3"):
        mixer(quantiles[..., :2, :], state, features)
    with pytest.raises(ValueError, match=r"state \(4, 3, 4\) must be \(4, 3, 5\)"):
        mixer(quantiles, state[..., :4], features)


def test_symlog_known_values():
    e = torch.e
    x = torch.tensor([0.0, e - 1, -(e - 1), e**3 - 1, -(e**3 - 1)])
    torch.testing.assert_close(symlog(x), torch.tensor([0.0, 1.0, -1.0, 3.0, -3.0]))
    assert set(STATE_TRANSFORMS) == {"none", "symlog"}


@pytest.mark.parametrize("name", JOINT)
@pytest.mark.parametrize("transform", sorted(STATE_TRANSFORMS))
def test_state_transform_is_applied_to_state_and_agent_features(name, transform):
    """A mixer built with a transform, fed raw inputs, equals the same weights with "none" fed
    transformed inputs; states 100x larger than unit scale reach the MLPs as log-sized ones."""
    quantiles, state, features = inputs()
    state, features = 100 * state, 100 * features
    mixer = build(name, state_transform=transform)
    plain = build(name)  # same seed: same weights
    mapped = STATE_TRANSFORMS[transform]
    torch.testing.assert_close(
        mixer(quantiles, state, features), plain(quantiles, mapped(state), mapped(features))
    )
    if transform == "symlog" and name not in ("vdn",):  # vdn reads no state
        assert not torch.allclose(
            mixer(quantiles, state, features), plain(quantiles, state, features)
        )


def test_unknown_state_transform_names_the_choices():
    with pytest.raises(
        ValueError, match=r"state_transform: unknown 'tanh'; valid choices: \['none', 'symlog'\]"
    ):
        build("riskq", state_transform="tanh")
