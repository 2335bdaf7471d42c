"""Risk measures on hand-made quantile vectors (CONVENTIONS.md section 2)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from riskq.model.risk import (
    CPW_MIN_ETA,
    RISK_MEASURES,
    RiskMeasure,
    distortion_weights,
    empirical_risk,
    make_risk_measure,
)

# Every registry entry with parameters covering both signs and the range ends.
CASES = {
    "neutral": [None],
    "var": [0.05, 0.2, 0.5, 1.0, -0.2, -1.0],
    "cvar": [0.01, 0.25, 1.0, -0.2],
    "wang": [0.75, -0.75, 0.0, 2.5],
    "cpw": [0.71, CPW_MIN_ETA, 1.0, -0.71],
    "pow": [0.5, -0.5, 0.0, 3.0],
}
MEASURE_CASES = [(name, param) for name, params in CASES.items() for param in params]
RISK_AVERSE = [("cvar", 0.2), ("cvar", 0.5), ("wang", 0.75), ("pow", 1.0)]
PROPERTY_SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)


def test_cases_cover_the_registry():
    assert set(CASES) == set(RISK_MEASURES)


def _sorted(values) -> torch.Tensor:
    return torch.tensor(sorted(values), dtype=torch.float64)  # [K]


# ----------------------------------------------------------------------------- known values


def test_neutral_is_the_mean():
    theta = torch.arange(32.0)  # [K]
    assert make_risk_measure("neutral")(theta).item() == pytest.approx(15.5)
    assert torch.equal(distortion_weights("neutral", None, 4), torch.full((4,), 0.25))


def test_cvar_025_puts_one_eighth_on_the_eight_lowest_atoms():
    weights = distortion_weights("cvar", 0.25, 32, dtype=torch.float64)  # [K]
    expected = torch.cat([torch.full((8,), 1 / 8), torch.zeros(24)]).double()  # [K]
    torch.testing.assert_close(weights, expected)
    assert make_risk_measure("cvar", 0.25)(torch.arange(32.0)).item() == pytest.approx(3.5)


@pytest.mark.parametrize(
    ("alpha", "n_quantiles", "index"),
    [
        (0.2, 32, 6),
        (1.0, 32, 31),
        (-0.2, 32, 25),  # upper 0.2-quantile: mirror of index 6
        (0.001, 32, 0),  # the reference code would pick the second-highest atom here
        (0.14, 50, 6),  # 0.14 * 50 = 7.000000000000001 must still give the 7th atom
        (0.56, 50, 27),  # 0.56 * 50 = 28.000000000000004
        (0.5, 1, 0),
    ],
)
def test_var_picks_the_lower_alpha_quantile(alpha, n_quantiles, index):
    theta = torch.arange(float(n_quantiles)) ** 2  # [K], sorted, distinct
    assert make_risk_measure("var", alpha)(theta).item() == theta[index].item()


def test_cvar_mirror_is_the_mean_of_the_best_fraction():
    theta = torch.arange(30.0)  # [K]
    assert make_risk_measure("cvar", 0.2)(theta).item() == pytest.approx(2.5)  # mean 0..5
    assert make_risk_measure("cvar", -0.2)(theta).item() == pytest.approx(26.5)  # mean 24..29


def test_wang_075_weights_decrease_strictly():
    weights = distortion_weights("wang", 0.75, 32)  # [K]
    assert (weights.diff() < 0).all()
    assert (distortion_weights("wang", -0.75, 32).diff() > 0).all()


@pytest.mark.parametrize(
    ("name", "eta", "mirror_distortion"),
    [
        # CONVENTIONS.md: Wang with eta < 0 is g(t) = Phi(Phi^-1(t) + eta) (risk-seeking)
        ("wang", 0.75, lambda t, eta: torch.special.ndtr(torch.special.ndtri(t) - eta)),
        ("wang", 2.0, lambda t, eta: torch.special.ndtr(torch.special.ndtri(t) - eta)),
        # CONVENTIONS.md: Pow with eta < 0 is g(t) = t^(1 + |eta|)
        ("pow", 0.5, lambda t, eta: t ** (1 + eta)),
        ("pow", 3.0, lambda t, eta: t ** (1 + eta)),
    ],
)
def test_negative_wang_and_pow_match_the_method_formulas(name, eta, mirror_distortion):
    grid = torch.linspace(0, 1, 33, dtype=torch.float64)  # [K+1]
    expected = mirror_distortion(grid, eta).nan_to_num(0.0).diff()  # [K]
    actual = distortion_weights(name, -eta, 32, dtype=torch.float64)  # [K]
    torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize(("name", "param"), MEASURE_CASES)
def test_weights_are_non_negative_and_sum_to_one(name, param):
    for n_quantiles in (1, 7, 32, 200):
        weights = distortion_weights(name, param, n_quantiles, dtype=torch.float64)  # [K]
        assert weights.shape == (n_quantiles,)
        assert (weights >= 0).all()
        assert weights.sum().item() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(("name", "param"), MEASURE_CASES)
def test_mirror_is_minus_psi_of_minus_flipped_theta(name, param):
    theta = torch.randn(5, 16, generator=torch.Generator().manual_seed(1)).sort(-1).values
    measure, mirror = make_risk_measure(name, param), make_risk_measure(name, -(param or 0.0))
    torch.testing.assert_close(mirror(theta), -measure(-theta.flip(-1)))


def test_cpw_bound_is_where_g_stops_being_monotone():
    fine = 4096
    assert RISK_MEASURES["cpw"].weights(0.25, fine).min() < 0  # below the bound: not a DRM
    assert RISK_MEASURES["cpw"].weights(CPW_MIN_ETA, fine).min() >= 0
    torch.testing.assert_close(
        distortion_weights("cpw", 1.0, 32), distortion_weights("neutral", None, 32)
    )


@pytest.mark.parametrize(
    ("name", "param", "label"),
    [
        ("cvar", 0.2, "CVaR(0.2)"),
        ("wang", 0.75, "Wang(0.75)"),
        ("var", -0.2, "VaR(-0.2)"),
        ("neutral", 0.75, "Neutral"),
        ("cpw", 0.71, "CPW(0.71)"),
        ("pow", -1, "Pow(-1)"),
    ],
)
def test_labels(name, param, label):
    assert make_risk_measure(name, param).label == label


# ------------------------------------------------------------------------- property tests

same_length_pair = st.integers(1, 12).flatmap(
    lambda k: st.tuples(
        st.lists(st.floats(-100, 100), min_size=k, max_size=k),
        st.lists(st.floats(-100, 100), min_size=k, max_size=k),
    )
)


@pytest.mark.parametrize(("name", "param"), MEASURE_CASES)
@PROPERTY_SETTINGS
@given(pair=same_length_pair, scale=st.floats(0, 10), shift=st.floats(-50, 50))
def test_drm_axioms(name, param, pair, scale, shift):
    """Positive homogeneity, translation invariance, comonotone additivity (CONVENTIONS.md 2)."""
    psi = make_risk_measure(name, param)
    x, y = _sorted(pair[0]), _sorted(pair[1])  # [K], [K]
    assert psi(scale * x).item() == pytest.approx(scale * psi(x).item(), abs=1e-9)
    assert psi(x + shift).item() == pytest.approx(psi(x).item() + shift, abs=1e-9)
    assert psi(x + y).item() == pytest.approx(psi(x).item() + psi(y).item(), abs=1e-9)


@pytest.mark.parametrize(("name", "param"), RISK_AVERSE)
@PROPERTY_SETTINGS
@given(values=st.lists(st.floats(-100, 100), min_size=1, max_size=16))
def test_averse_below_mean_below_seeking(name, param, values):
    theta = _sorted(values)  # [K]
    averse = make_risk_measure(name, param)(theta).item()
    seeking = make_risk_measure(name, -param)(theta).item()
    assert averse <= theta.mean().item() + 1e-9
    assert theta.mean().item() <= seeking + 1e-9


# ------------------------------------------------------------ shapes, dtypes, grads, errors


@pytest.mark.parametrize(("name", "param"), MEASURE_CASES)
def test_any_leading_shape_and_dtype(name, param):
    psi = make_risk_measure(name, param)
    theta = torch.randn(2, 3, 4, 8, dtype=torch.float64).sort(-1).values  # [.., K]
    values = psi(theta)  # [2, 3, 4]
    assert values.shape == (2, 3, 4) and values.dtype == torch.float64
    torch.testing.assert_close(values[1, 2, 3], psi(theta[1, 2, 3]))
    assert psi(theta[0, 0, 0]).shape == ()
    assert psi(theta.float()).dtype == torch.float32
    assert psi(torch.zeros(3, 8, device="meta")).device.type == "meta"  # device from input


@pytest.mark.parametrize(("name", "param"), MEASURE_CASES)
def test_gradient_reaches_theta_as_the_weights(name, param):
    theta = torch.randn(3, 16).sort(-1).values.requires_grad_()  # [.., K]
    make_risk_measure(name, param)(theta).sum().backward()
    torch.testing.assert_close(theta.grad, distortion_weights(name, param, 16).expand(3, 16))


def test_first_call_in_inference_mode_still_allows_training():
    psi = make_risk_measure("wang", 0.321)  # a parameter no other test caches
    with torch.inference_mode():
        psi(torch.zeros(4, 9))
    theta = torch.randn(9, requires_grad=True)  # [K]
    psi(theta).backward()
    assert theta.grad is not None


def test_cached_weights_cannot_be_corrupted_by_callers():
    weights = distortion_weights("cvar", 0.5, 4)  # [K]
    weights.zero_()
    torch.testing.assert_close(distortion_weights("cvar", 0.5, 4), torch.tensor([0.5, 0.5, 0, 0]))


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown risk measure 'cvar2'.*'cpw'.*'wang'"):
        make_risk_measure("cvar2", 0.2)


@pytest.mark.parametrize(
    ("name", "param", "message"),
    [
        ("cvar", 1.5, "risk 'cvar' needs 0 < |alpha| <= 1, got 1.5"),
        ("cvar", 0.0, "risk 'cvar' needs 0 < |alpha| <= 1, got 0"),
        ("var", -1.2, "risk 'var' needs 0 < |alpha| <= 1, got -1.2"),
        ("cpw", 0.2, f"risk 'cpw' needs {CPW_MIN_ETA} <= |eta| <= 1, got 0.2"),
        ("cpw", 1.5, f"risk 'cpw' needs {CPW_MIN_ETA} <= |eta| <= 1, got 1.5"),
        ("wang", math.inf, "risk 'wang' needs any finite eta, got inf"),
        ("pow", math.nan, "risk 'pow' needs any finite eta, got nan"),
        ("cvar", None, "risk 'cvar' needs a parameter: 0 < |alpha| <= 1"),
    ],
)
def test_out_of_range_params_name_the_range(name, param, message):
    with pytest.raises(ValueError) as error:
        make_risk_measure(name, param)
    assert str(error.value) == message
    with pytest.raises(ValueError):
        distortion_weights(name, param, 8)
    with pytest.raises(ValueError):
        RiskMeasure(name, param)


def test_bad_theta_is_refused():
    psi = make_risk_measure("neutral")
    with pytest.raises(ValueError, match="floating"):
        psi(torch.arange(4))
    with pytest.raises(ValueError, match=r"\[\.\.\., K\]"):
        psi(torch.tensor(1.0))


# ------------------------------------------------------------------------- empirical risk


def test_empirical_risk_of_numpy_and_tensor_samples():
    samples = np.array([3.0, 9.0, 0.0, 6.0, 1.0, 7.0, 2.0, 8.0, 5.0, 4.0])  # [M], unsorted
    cvar = empirical_risk(samples, "cvar", 0.2)
    assert isinstance(cvar, np.floating) and cvar == pytest.approx(0.5)
    assert empirical_risk(samples.tolist(), "var", 0.35) == 3.0
    assert empirical_risk(samples.astype(int), "cvar", -0.2) == pytest.approx(8.5)
    batch = torch.from_numpy(np.stack([samples, -samples]))  # [2, M]
    values = empirical_risk(batch, "cvar", 0.2)  # [2]
    assert isinstance(values, torch.Tensor)
    torch.testing.assert_close(values, torch.tensor([0.5, -8.5], dtype=torch.float64))
    np.testing.assert_allclose(empirical_risk(batch.numpy(), "neutral"), [4.5, -4.5])
