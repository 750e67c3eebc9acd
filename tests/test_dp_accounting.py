"""Privacy maps, combinators and conversions, cross-checked against OpenDP where it has them."""

from __future__ import annotations

import math
from fractions import Fraction

import opendp.prelude as dp
import pytest

from psc.catalog import load_catalog
from psc.dp import accounting as acc
from psc.dp import calibration, mechanisms
from psc.dp.accounting import RDP_ORDERS, ZCDP, ApproxDP, PureDP, RenyiDP
from psc.dp.mechanisms import (
    BasicComposition,
    DiscreteGaussian,
    DiscreteLaplace,
    SequentialComposition,
    Skellam,
    ToApproxDP,
    ToRenyiDP,
    ToZCDP,
)
from psc.dp.random import SeededRandomSource
from psc.dp.sampling import sample_discrete_laplace
from psc.exceptions import BudgetExhausted

dp.enable_features("contrib")
INT_SPACE = (dp.atom_domain(T=int), dp.absolute_distance(T=int))


def close(a: float, b: float, rel: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-15)


# ----------------------------------------------------------------------------------
# Agreement with OpenDP


@pytest.mark.parametrize("scale", [Fraction(1, 2), Fraction(2), Fraction(25, 2), Fraction(50)])
@pytest.mark.parametrize("d_in", [0, 1, 7, 50])
def test_discrete_laplace_map_agrees_with_opendp(scale: Fraction, d_in: int) -> None:
    ours = DiscreteLaplace(scale).map(d_in)
    theirs = dp.m.make_laplace(*INT_SPACE, scale=float(scale)).map(d_in)
    assert ours == PureDP(Fraction(d_in) / scale)
    assert close(float(ours.epsilon), theirs)


@pytest.mark.parametrize("sigma", [1, 2, 5, 40])
@pytest.mark.parametrize("d_in", [0, 1, 3, 50])
def test_discrete_gaussian_map_agrees_with_opendp(sigma: int, d_in: int) -> None:
    ours = DiscreteGaussian(sigma * sigma).map(d_in)
    theirs = dp.m.make_gaussian(*INT_SPACE, scale=float(sigma)).map(d_in)
    assert ours == ZCDP(Fraction(d_in * d_in, 2 * sigma * sigma))
    assert close(float(ours.rho), theirs)


@pytest.mark.parametrize("sigma", [0.5, 2.0, 10.0, 300.0])
@pytest.mark.parametrize("delta", [Fraction(1, 100), Fraction(1, 10**6), Fraction(1, 10**10)])
def test_zcdp_to_approxdp_agrees_with_opendp(sigma: float, delta: Fraction) -> None:
    gaussian = dp.m.make_gaussian(*INT_SPACE, scale=sigma)
    profile = dp.c.make_zCDP_to_approxDP(gaussian).map(1)
    rho = Fraction(gaussian.map(1))
    ours = acc.zcdp_to_approxdp(ZCDP(rho), delta)
    assert ours.delta == delta
    assert close(float(ours.epsilon), profile.epsilon(float(delta)))
    # the fixed-delta combinator gives the same
    fixed = dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(gaussian), float(delta)).map(1)
    assert close(float(ours.epsilon), fixed[0])


def test_to_approxdp_combinator_agrees_with_opendp_fix_delta() -> None:
    ours = ToApproxDP(DiscreteGaussian(4), Fraction(1, 10**7)).map(3)
    gaussian = dp.m.make_gaussian(*INT_SPACE, scale=2.0)
    eps, delta = dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(gaussian), 1e-7).map(3)
    assert close(float(ours.epsilon), eps)
    assert float(ours.delta) == delta


@pytest.mark.parametrize("scale", [Fraction(1, 2), Fraction(3), Fraction(20)])
def test_pure_to_zcdp_agrees_with_opendp(scale: Fraction) -> None:
    ours = ToZCDP(DiscreteLaplace(scale)).map(2)
    theirs = dp.c.make_pureDP_to_zCDP(dp.m.make_laplace(*INT_SPACE, scale=float(scale))).map(2)
    assert ours == ZCDP((2 / scale) ** 2 / 2)
    assert close(float(ours.rho), theirs)


def test_basic_composition_agrees_with_opendp() -> None:
    ours = BasicComposition([DiscreteLaplace(Fraction(1, 2)), DiscreteLaplace(4)]).map(2)
    theirs = dp.c.make_composition(
        [dp.m.make_laplace(*INT_SPACE, scale=0.5), dp.m.make_laplace(*INT_SPACE, scale=4.0)]
    ).map(2)
    assert ours == PureDP(Fraction(9, 2))
    assert close(float(ours.epsilon), theirs)
    ours_z = BasicComposition([DiscreteGaussian(4), DiscreteGaussian(9)]).map(2)
    theirs_z = dp.c.make_composition(
        [dp.m.make_gaussian(*INT_SPACE, scale=2.0), dp.m.make_gaussian(*INT_SPACE, scale=3.0)]
    ).map(2)
    assert ours_z == ZCDP(Fraction(1, 2) + Fraction(2, 9))
    assert close(float(ours_z.rho), theirs_z)


# ----------------------------------------------------------------------------------
# Conversions


@pytest.mark.parametrize("rho", [Fraction(1, 1000), Fraction(1, 8), Fraction(2), Fraction(30)])
@pytest.mark.parametrize("delta", [Fraction(1, 10**3), Fraction(1, 10**9)])
def test_cks_conversion_is_never_worse_than_bs16(rho: Fraction, delta: Fraction) -> None:
    tight = acc.zcdp_to_approxdp(ZCDP(rho), delta).epsilon
    classic = acc.zcdp_to_approxdp_bs16(ZCDP(rho), delta).epsilon
    expected = float(rho) + 2 * math.sqrt(float(rho) * math.log(1 / float(delta)))
    assert close(float(classic), expected)
    assert tight <= classic


def test_renyi_grid_conversion_is_close_to_the_exact_zcdp_one() -> None:
    for rho in (Fraction(1, 200), Fraction(1, 2), Fraction(5)):
        loss = ZCDP(rho)
        via_grid = acc.renyi_to_approxdp(acc.to_renyi(loss), Fraction(1, 10**6)).epsilon
        direct = acc.zcdp_to_approxdp(loss, Fraction(1, 10**6)).epsilon
        assert direct <= via_grid <= direct * Fraction(101, 100)


def test_pure_to_renyi_is_min_of_epsilon_and_zcdp() -> None:
    curve = acc.to_renyi(PureDP(Fraction(1, 2)))
    assert curve.at(2) == Fraction(1, 4)  # 2 * (1/2)^2 / 2
    assert curve.at(8) == Fraction(1, 2)  # capped at epsilon
    with pytest.raises(ValueError, match="no Rényi-DP bound"):
        acc.to_renyi(ApproxDP(1, Fraction(1, 10**6)))
    with pytest.raises(ValueError, match="not one of RDP_ORDERS"):
        curve.at(65)


def test_conversions_round_up_and_refuse_bad_delta() -> None:
    out = acc.zcdp_to_approxdp(ZCDP(Fraction(1, 8)), Fraction(1, 10**6))
    assert isinstance(out.epsilon, Fraction)
    assert acc.zcdp_to_approxdp(ZCDP(0), Fraction(1, 10)).epsilon == 0
    with pytest.raises(ValueError, match=r"delta must be in \(0, 1\)"):
        acc.zcdp_to_approxdp(ZCDP(1), 0)
    with pytest.raises(ValueError, match="floats are refused"):
        acc.zcdp_to_approxdp(ZCDP(1), 1e-6)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------
# Skellam (AKL21)


def test_skellam_curve_is_the_akl21_bound_exactly() -> None:
    curve = mechanisms.skellam_renyi(10, 1)
    # alpha = 2, Delta = 1, V = 10: 2/20 + min((3 + 6)/400, 3/20) = 1/10 + 9/400
    assert curve.at(2) == Fraction(1, 10) + Fraction(9, 400)
    # large alpha: the min switches to 3 Delta / (2V)
    assert curve.at(1024) == Fraction(1024, 20) + Fraction(3, 20)
    assert Skellam(10).map(1) == curve
    assert Skellam(10).map(0) == RenyiDP([0] * len(RDP_ORDERS))
    # Delta = 50, V = 2500 at alpha = 3: 3*2500/5000 + min((5*2500 + 300)/(4*2500^2), 150/5000)
    assert mechanisms.skellam_renyi(2500, 50).at(3) == Fraction(3, 2) + Fraction(12800, 25_000_000)


def test_skellam_approaches_the_gaussian_with_the_same_variance() -> None:
    delta = Fraction(1, 10**6)
    for variance in (400, 10_000, 250_000):
        sk = acc.renyi_to_approxdp(Skellam(variance).map(50), delta).epsilon
        gauss = acc.zcdp_to_approxdp(DiscreteGaussian(variance).map(50), delta).epsilon
        assert gauss < sk  # the discreteness surcharge is positive
        assert sk < gauss * Fraction(106, 100)


def test_skellam_calibration_is_minimal() -> None:
    delta = Fraction(1, 10**6)
    v = calibration.skellam_variance_for_approxdp(1, delta, 50)
    assert ToApproxDP(Skellam(v), delta).check(50, ApproxDP(1, delta))
    assert not ToApproxDP(Skellam(v - 1), delta).check(50, ApproxDP(1, delta))


# ----------------------------------------------------------------------------------
# Mechanisms, check, combinators


def test_check_answers_yes_or_no_at_the_boundary() -> None:
    lap = DiscreteLaplace(50)
    assert lap.check(50, PureDP(1))
    assert not lap.check(51, PureDP(1))
    gauss = DiscreteGaussian(1250)  # rho = 50^2 / 2500 = 1
    assert gauss.check(50, ZCDP(1))
    assert not gauss.check(50, ZCDP(Fraction(99, 100)))
    with pytest.raises(ValueError, match="cannot compare a zCDP loss with a PureDP loss"):
        gauss.check(50, PureDP(10))
    with pytest.raises(ValueError, match="d_in must be a non-negative int"):
        lap.map(-1)


def test_release_adds_exactly_one_noise_draw() -> None:
    out = DiscreteLaplace(3).release(1000, rng=SeededRandomSource("r"))
    assert out - 1000 == sample_discrete_laplace(3, rng=SeededRandomSource("r"))
    with pytest.raises(ValueError, match="needs an int value"):
        DiscreteLaplace(3).release(1.5)  # type: ignore[arg-type]


def test_basic_composition_needs_one_measure() -> None:
    with pytest.raises(ValueError, match="one output measure"):
        BasicComposition([DiscreteLaplace(1), DiscreteGaussian(1)])
    mixed = BasicComposition([ToZCDP(DiscreteLaplace(2)), DiscreteGaussian(8)])
    assert mixed.map(2) == ZCDP(Fraction(1, 2) + Fraction(1, 4))
    assert len(mixed.release(0, rng=SeededRandomSource(1))) == 2
    renyi = BasicComposition([ToRenyiDP(DiscreteGaussian(8)), Skellam(8)])
    composed = renyi.map(2)
    assert isinstance(composed, RenyiDP)
    assert composed.at(2) == 2 * Fraction(1, 4) + mechanisms.skellam_renyi(8, 2).at(2)


def test_sequential_composition_admits_declared_queries_then_refuses() -> None:
    seq = SequentialComposition(50, [PureDP(Fraction(1, 2)), PureDP(Fraction(1, 2))])
    assert seq.map(50) == PureDP(1)
    assert seq.check(50, PureDP(1))
    with pytest.raises(ValueError, match="more than its declared"):
        seq.release(DiscreteLaplace(50), 0, rng=SeededRandomSource(1))  # costs 1 > 1/2
    assert seq.remaining == 2
    seq.release(DiscreteLaplace(100), 0, rng=SeededRandomSource(1))
    seq.release(DiscreteLaplace(200), 0, rng=SeededRandomSource(2))
    assert seq.remaining == 0
    with pytest.raises(BudgetExhausted, match="declared queries"):
        seq.release(DiscreteLaplace(1000), 0)
    with pytest.raises(ValueError, match="declared for d_in <= 50"):
        seq.map(51)


def test_compose_converts_into_the_target_measure() -> None:
    pure, z = PureDP(1), ZCDP(Fraction(1, 4))
    assert acc.compose([pure, z], like=ZCDP(0)) == ZCDP(Fraction(3, 4))
    with pytest.raises(ValueError, match="PureDP total cannot include a zCDP cost"):
        acc.compose([pure, z], like=PureDP(0))
    with pytest.raises(ValueError, match="zCDP total cannot include a RenyiDP cost"):
        acc.compose([Skellam(10).map(1)], like=ZCDP(0))
    delta = Fraction(1, 10**6)
    total = acc.compose(
        [ApproxDP(Fraction(1, 10), Fraction(1, 10**7)), z, pure], like=ApproxDP(5, delta)
    )
    assert isinstance(total, ApproxDP)
    rest = acc.zcdp_to_approxdp(z, delta - Fraction(1, 10**7)).epsilon
    assert total.epsilon <= Fraction(1, 10) + 1 + rest
    assert total.epsilon > Fraction(1, 10)
    only_pure_and_approx = acc.compose(
        [ApproxDP(1, Fraction(1, 10**7)), pure], like=ApproxDP(5, delta)
    )
    assert only_pure_and_approx == ApproxDP(2, Fraction(1, 10**7))
    with pytest.raises(ValueError, match="alone use delta"):
        acc.compose([ApproxDP(1, Fraction(1, 10))], like=ApproxDP(5, delta))


# ----------------------------------------------------------------------------------
# Calibration and sensitivity


def test_calibration_helpers_hit_their_targets() -> None:
    assert calibration.scale_for_epsilon(Fraction(1, 2), 50) == 100
    assert DiscreteLaplace(calibration.scale_for_epsilon(Fraction(1, 2), 50)).check(
        50, PureDP(Fraction(1, 2))
    )
    assert calibration.sigma2_for_rho(Fraction(1, 2), 50) == 2500
    assert DiscreteGaussian(calibration.sigma2_for_rho(Fraction(1, 2), 50)).map(50) == ZCDP(
        Fraction(1, 2)
    )
    delta = Fraction(1, 10**6)
    rho = calibration.rho_for_approxdp(1, delta)
    assert acc.zcdp_to_approxdp(ZCDP(rho), delta).epsilon <= 1
    assert acc.zcdp_to_approxdp(ZCDP(rho * Fraction(1001, 1000)), delta).epsilon > 1
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        calibration.scale_for_epsilon(0, 50)


def test_sensitivity_is_the_catalogs_largest_absolute_delta() -> None:
    for name in ("city", "company"):
        catalog = load_catalog(name)
        assert calibration.sensitivity(catalog) == catalog.max_abs_delta
        assert calibration.sensitivity(catalog) == max(abs(r.delta) for r in catalog.rules)


# ----------------------------------------------------------------------------------
# Loss values


def test_losses_round_trip_through_json() -> None:
    for loss in (
        PureDP(Fraction(1, 3)),
        ZCDP(Fraction(7, 8)),
        ApproxDP(2, Fraction(1, 10**9)),
        Skellam(100).map(5),
    ):
        assert acc.loss_from_json(loss.to_json()) == loss
    with pytest.raises(ValueError, match="unknown privacy measure"):
        acc.loss_from_json('{"measure": "Other"}')
    with pytest.raises(ValueError, match="not a psc privacy loss"):
        acc.loss_from_json("{}")


def test_bad_loss_values_are_refused() -> None:
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        PureDP(-1)
    with pytest.raises(ValueError, match="delta must be <= 1"):
        ApproxDP(1, 2)
    with pytest.raises(ValueError, match="floats are refused"):
        ZCDP(0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one epsilon per order"):
        RenyiDP([1, 2])
    with pytest.raises(ValueError, match="ToZCDP needs a PureDP mechanism"):
        ToZCDP(DiscreteGaussian(1))


# ----------------------------------------------------------------------------------
# Accuracy: tails and misgrade probability


def _exact_tail(pmf: dict[int, float], k: int) -> float:
    return sum(p for x, p in pmf.items() if x >= k)


def test_noise_tails_match_exact_pmfs() -> None:
    # discrete Laplace, scale 7/2: pmf c q^|x|
    q = math.exp(-2 / 7)
    lap = {x: (1 - q) / (1 + q) * q ** abs(x) for x in range(-400, 401)}
    for k in (-3, 0, 1, 5, 20):
        assert close(
            calibration.noise_tail(DiscreteLaplace(Fraction(7, 2)), k), _exact_tail(lap, k), 1e-9
        )
    # discrete Gaussian, sigma^2 = 30
    w = {x: math.exp(-x * x / 60) for x in range(-300, 301)}
    z = sum(w.values())
    gauss = {x: v / z for x, v in w.items()}
    for k in (-2, 1, 7, 15):
        assert close(calibration.noise_tail(DiscreteGaussian(30), k), _exact_tail(gauss, k), 1e-9)
    # Skellam, variance 60: convolution of two Poisson(30)
    pois = [math.exp(j * math.log(30) - 30 - math.lgamma(j + 1)) for j in range(200)]
    sk: dict[int, float] = {}
    for i, pi in enumerate(pois):
        for j, pj in enumerate(pois):
            sk[i - j] = sk.get(i - j, 0.0) + pi * pj
    for k in (-4, 1, 8, 25):
        assert close(calibration.noise_tail(Skellam(60), k), _exact_tail(sk, k), 1e-9)


def test_misgrade_probability_sums_the_two_nearest_boundaries() -> None:
    lap = DiscreteLaplace(50)
    ths = [Fraction(1919, 2), Fraction(2059, 2)]  # 959.5 and 1029.5
    # score 1000: N >= 30 crosses 1029.5, N <= -41 crosses 959.5
    expected = calibration.noise_tail(lap, 30) + calibration.noise_tail(lap, 41)
    assert close(calibration.misgrade_probability(lap, 1000, ths), expected)
    # a single boundary below only
    assert close(
        calibration.misgrade_probability(lap, 1000, ths[:1]), calibration.noise_tail(lap, 41)
    )
    # more privacy, more misgrades
    assert calibration.misgrade_probability(
        DiscreteLaplace(100), 1000, ths
    ) > calibration.misgrade_probability(lap, 1000, ths)
    with pytest.raises(ValueError, match="half-integers"):
        calibration.misgrade_probability(lap, 1000, [Fraction(960)])


def test_noise_tail_refuses_what_it_cannot_compute() -> None:
    with pytest.raises(ValueError, match="no tail formula for ToZCDP"):
        calibration.noise_tail(ToZCDP(DiscreteLaplace(2)), 3)
    with pytest.raises(ValueError, match="k must be an int"):
        calibration.noise_tail(DiscreteLaplace(2), 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="score must be an int"):
        calibration.misgrade_probability(DiscreteLaplace(2), 1.5, [Fraction(1, 2)])  # type: ignore[arg-type]
