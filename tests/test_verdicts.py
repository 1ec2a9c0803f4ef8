"""The verdict rule set (experiments/figures/verdicts.py) against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.figures import verdicts as v
from experiments.figures.verdicts import HIGHER, LOWER, Band, Estimate

# ----------------------------------------------------------------------------- intervals


def test_t_interval_matches_the_closed_form_for_two_degrees_of_freedom():
    # t quantile with 2 df in closed form: t_p = (2p - 1) / sqrt(2 p (1 - p))
    p = 0.975
    t = (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    est = v.t_interval([1.0, 2.0, 3.0])  # mean 2, sd 1
    assert est.value == 2.0
    assert est.half_width == pytest.approx(t / math.sqrt(3), rel=1e-12)
    assert (est.low, est.high) == pytest.approx((2 - t / math.sqrt(3), 2 + t / math.sqrt(3)))


def test_t_interval_with_one_degree_of_freedom_and_one_value():
    # 1 df: t_p = tan(pi (p - 1/2)); values (0, 2): mean 1, sd sqrt(2)
    t = math.tan(math.pi * (0.975 - 0.5))
    est = v.t_interval([0.0, 2.0])
    assert est.half_width == pytest.approx(t * math.sqrt(2) / math.sqrt(2), rel=1e-12)
    one = v.t_interval([5.0])  # one replicate: no interval
    assert one.value == 5.0 and one.low == -math.inf and one.high == math.inf
    assert not one.bounded and one.defined


def test_paired_difference_is_the_t_interval_of_per_seed_differences():
    est = v.paired_difference([1.0, 2.0, 3.0], [2.0, 3.5, 4.0])
    ref = v.t_interval([-1.0, -1.5, -1.0])
    assert est == ref and est.value == pytest.approx(-3.5 / 3)


def test_proportion_difference_is_the_wald_interval():
    # p 0.5 over 100 trials: sd 0.05; z(0.975) = 1.959964
    est = v.proportion_difference(0.5, 100, 0.0, 0)
    assert est.value == 0.5 and est.half_width == pytest.approx(1.959964 * 0.05, rel=1e-6)
    two = v.proportion_difference(0.8, 400, 0.6, 400)  # var 0.16/400 + 0.24/400 = 0.001
    assert two.value == pytest.approx(0.2)
    assert two.half_width == pytest.approx(1.959964 * math.sqrt(0.001), rel=1e-6)


def test_bounded_mean_interval_uses_the_worst_case_variance():
    # values in a range of 2: sd at most 1; n = 100: half-width z / 10
    est = v.bounded_mean_interval(0.3, 100, 2.0)
    assert est.value == 0.3 and est.half_width == pytest.approx(0.1959964, rel=1e-6)


def test_bootstrap_ratio_is_deterministic_and_matches_hand_computed_percentiles():
    # seeds (num, den) = (2, 1), (2, 2): resampled ratios are 2 (p 1/4), 4/3 (p 1/2), 1 (p 1/4)
    est = v.bootstrap_ratio([2.0, 2.0], [1.0, 2.0])
    assert est.value == pytest.approx(4 / 3)
    assert (est.low, est.high) == (1.0, 2.0)
    assert v.bootstrap_ratio([2.0, 2.0], [1.0, 2.0]) == est  # seeded: identical
    again = v.bootstrap_ratio([3.0, 1.0, 2.0, 5.0], [1.0, 0.5, 2.0, 1.0])
    assert again == v.bootstrap_ratio([3.0, 1.0, 2.0, 5.0], [1.0, 0.5, 2.0, 1.0])
    np.random.seed(123)  # the global RNG plays no part
    assert v.bootstrap_ratio([3.0, 1.0, 2.0, 5.0], [1.0, 0.5, 2.0, 1.0]) == again
    # percentiles of the 4^4 equally likely resamples lie in [min, max] of the seed ratios' range
    assert 11 / 4.5 == pytest.approx(again.value) and 1.0 <= again.low < again.high <= 5.0
    # a constant ratio has a zero-width interval
    assert v.bootstrap_ratio([0.2, 0.4, 0.6], [0.1, 0.2, 0.3]) == Estimate(2.0, 2.0, 2.0)


def test_bootstrap_ratio_unbounded_and_undefined():
    # one of three seeds has a zero denominator: all-that-seed resamples (1/27 = 3.7% > 2.5%)
    # are infinite, so the interval is unbounded above; every ratio is >= 3
    est = v.bootstrap_ratio([3.0, 3.0, 3.0], [0.0, 1.0, 1.0])
    assert est.value == pytest.approx(4.5) and est.low == 3.0 and est.high == math.inf
    # a seed where both are 0 makes some resamples 0/0: undefined
    undefined = v.bootstrap_ratio([0.0, 1.0, 1.0], [0.0, 0.5, 0.5])
    assert undefined.value == pytest.approx(2.0) and not undefined.defined
    assert math.isnan(float(v.ratio_of_means(np.zeros(2), np.zeros(2))))
    with pytest.raises(ValueError, match="paired"):
        v.bootstrap_ratio([1.0, 2.0], [1.0])


# ----------------------------------------------------------------------------- bands


def test_proportion_bands_are_absolute_percentage_points():
    band = Band.proportion(0.77)
    assert (band.low, band.high) == pytest.approx((0.74, 0.80))
    assert not band.contains(0.993)  # a x/÷ 1.5 band accepted this for 77%
    # edges past 0 or 1 are open: a t-interval [-0.3%, 0.9%] of a rate is "≈ 0"
    assert Band.proportion(0.0) == Band(-math.inf, 0.03) and Band.proportion(0.0).text() == "≤ 3%"
    assert Band.proportion(0.0).contains(-0.003)
    assert Band.proportion(0.07, 0.23).text() == "[4%, 26%]"
    assert Band.proportion(0.99) == Band(pytest.approx(0.96), math.inf)
    assert Band.proportion(0.99).text() == "≥ 96%"
    assert (Band.factor(4.2).low, Band.factor(4.2).high) == pytest.approx((2.1, 8.4))
    assert Band.at_most(0.05).text() == "≤ 5%"
    assert v.fid_tie(-20.0) == pytest.approx(0.1)


# ----------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    "est, tie, verdict",
    [
        (Estimate(-1.0, -1.5, -0.5), 0.1, v.REPRODUCED),
        (Estimate(-1.0, -2.5, 0.5), 0.1, v.INDISTINGUISHABLE),  # interval includes 0
        (Estimate(-0.05, -0.06, -0.04), 0.1, v.INDISTINGUISHABLE),  # within the tie band
        (Estimate(1.0, 0.5, 1.5), 0.1, v.NOT_REPRODUCED),  # reversed sign
        (Estimate(1.0, -0.5, 2.5), 0.1, v.INDISTINGUISHABLE),  # reversed, unresolved
        (Estimate(0.05, 0.04, 0.06), 0.1, v.INDISTINGUISHABLE),  # reversed within the tie
        (Estimate(-1.0, -math.inf, math.inf), 0.0, v.INDISTINGUISHABLE),  # one replicate
        (Estimate(math.nan, math.nan, math.nan), 0.0, v.INDISTINGUISHABLE),
    ],
)
def test_difference_verdict_lower(est, tie, verdict):
    assert v.difference_verdict(est, LOWER, tie) == verdict


def test_difference_verdict_higher_and_bands():
    assert v.difference_verdict(Estimate(1.0, 0.5, 1.5), HIGHER) == v.REPRODUCED
    assert v.difference_verdict(Estimate(-1.0, -1.5, -0.5), HIGHER) == v.NOT_REPRODUCED
    reduction = Band.proportion(0.07, 0.23)  # [4%, 26%]
    assert v.difference_verdict(Estimate(0.10, 0.08, 0.12), HIGHER, 0, reduction) == v.REPRODUCED
    assert v.difference_verdict(Estimate(0.02, 0.01, 0.03), HIGHER, 0, reduction) == v.PARTIAL
    assert v.difference_verdict(Estimate(0.30, 0.29, 0.31), HIGHER, 0, reduction) == v.PARTIAL
    # a band never rescues a direction that does not hold
    assert v.difference_verdict(Estimate(0.10, -0.1, 0.3), HIGHER, 0, reduction) == (
        v.INDISTINGUISHABLE
    )
    with pytest.raises(ValueError, match="direction"):
        v.difference_verdict(Estimate(1, 0, 2), 0)


def test_ratio_verdict():
    band = Band.factor(4.2)  # [2.1, 8.4]
    assert v.ratio_verdict(Estimate(4.0, 2.5, 6.0), band, gap=0.05, tie=0.002) == v.REPRODUCED
    assert v.ratio_verdict(Estimate(20.0, 9.0, 40.0), band, 0.05, 0.002) == v.PARTIAL
    assert v.ratio_verdict(Estimate(4.5, 3.0, math.inf), band, 0.05, 0.002) == v.PARTIAL
    assert v.ratio_verdict(Estimate(4.0, 0.8, 9.0), band, 0.05, 0.002) == v.INDISTINGUISHABLE
    assert v.ratio_verdict(Estimate(0.5, 0.3, 0.8), band, -0.05, 0.002) == v.NOT_REPRODUCED
    assert v.ratio_verdict(Estimate(2.0, 1.5, 3.0), band, 0.001, 0.002) == v.INDISTINGUISHABLE
    nan = Estimate(2.0, math.nan, math.nan)
    assert v.ratio_verdict(nan, band, 0.05, 0.002) == v.INDISTINGUISHABLE
    # HADIS 0.6% vs Proteus 2.5%, with one HADIS seed at 0: unbounded, so not reproduced
    est = v.bootstrap_ratio([0.02, 0.03, 0.025], [0.0, 0.01, 0.008])
    assert est.high == math.inf and v.ratio_verdict(est, band, 0.019, 0.002) == v.PARTIAL


def test_level_verdict():
    band = Band.proportion(0.07)  # [4%, 10%]
    assert v.level_verdict(Estimate(0.077, 0.06, 0.09), band) == v.REPRODUCED
    assert v.level_verdict(Estimate(0.077, 0.02, 0.13), band) == v.INDISTINGUISHABLE
    assert v.level_verdict(Estimate(0.2, 0.15, 0.25), band) == v.NOT_REPRODUCED
    assert v.level_verdict(Estimate.exact(0.993), Band.proportion(0.77)) == v.NOT_REPRODUCED
    assert v.level_verdict(Estimate.exact(0.05), Band.at_most(0.05)) == v.REPRODUCED
    assert v.level_verdict(Estimate(0.01, -math.inf, math.inf), band) == v.INDISTINGUISHABLE


def test_no_worse_verdict():
    # FID ours − other (lower is better), margin 0.1
    assert v.no_worse_verdict(Estimate(0.02, -0.03, 0.07), LOWER, 0.1) == v.REPRODUCED
    assert v.no_worse_verdict(Estimate(0.08, 0.03, 0.13), LOWER, 0.1) == v.INDISTINGUISHABLE
    assert v.no_worse_verdict(Estimate(0.5, 0.3, 0.7), LOWER, 0.1) == v.NOT_REPRODUCED
    # higher is better: a difference of -0.5 is 0.5 worse
    assert v.no_worse_verdict(Estimate(-0.5, -0.7, -0.3), HIGHER, 0.1) == v.NOT_REPRODUCED
    assert v.no_worse_verdict(Estimate(0.5, 0.3, 0.7), HIGHER, 0.1) == v.REPRODUCED


def test_compound_claims_and_counts():
    tie_and_win = [v.REPRODUCED, v.INDISTINGUISHABLE]
    assert v.all_of(tie_and_win) == v.INDISTINGUISHABLE  # a tie is not "lowest"
    assert v.all_of([v.REPRODUCED, v.PARTIAL]) == v.PARTIAL
    assert v.all_of([v.NOT_REPRODUCED, v.REPRODUCED]) == v.NOT_REPRODUCED
    assert v.best_of([v.NOT_REPRODUCED, v.PARTIAL, v.INDISTINGUISHABLE]) == v.PARTIAL
    with pytest.raises(ValueError, match="evidence"):
        v.all_of([v.REPRODUCED, v.BY_CONSTRUCTION])
    with pytest.raises(ValueError, match="at least one"):
        v.best_of([])
    found = v.counts([v.REPRODUCED, v.BY_CONSTRUCTION, v.REPRODUCED])
    assert list(found) == list(v.VERDICTS)
    assert found[v.REPRODUCED] == 2 and found[v.BY_CONSTRUCTION] == 1 and found[v.PARTIAL] == 0
    with pytest.raises(ValueError, match="unknown"):
        v.counts(["roughly"])
    assert set(v.EVIDENCE) == set(v.VERDICTS) - {
        v.WITHIN_ERROR,
        v.BY_CONSTRUCTION,
        v.NOT_COMPARABLE,
    }


# ----------------------------------------------------------------------------- estimator error


@pytest.mark.parametrize(
    "est, error, verdict",
    [
        (Estimate(-0.08, -0.10, -0.06), 0.095, v.WITHIN_ERROR),  # lower, by less than the error
        (Estimate(-0.08, -0.10, -0.06), 0.05, v.REPRODUCED),  # beyond the error
        (Estimate(-0.08, -0.10, -0.06), 0.08, v.REPRODUCED),  # equal to it: resolved
        (Estimate(0.08, 0.06, 0.10), 0.095, v.WITHIN_ERROR),  # reversed within the error
        (Estimate(0.5, 0.3, 0.7), 0.095, v.NOT_REPRODUCED),  # reversed beyond it
        (Estimate(-0.08, -0.3, 0.1), 1.0, v.INDISTINGUISHABLE),  # a tie stays a tie
        (Estimate(-0.005, -0.006, -0.004), 1.0, v.INDISTINGUISHABLE),  # within the tie band
    ],
)
def test_difference_verdict_within_estimator_error(est, error, verdict):
    assert v.difference_verdict(est, LOWER, 0.01, error=error) == verdict


def test_within_estimator_error_with_a_band_and_relative_units():
    # a relative reduction of 3% of a baseline FID of 25 (0.75 FID), under the band [4%, 26%]:
    # an error of 0.095 FID is 0.38% of it, one of 1.03 FID 4.1%
    band = Band.proportion(0.07, 0.23)
    reduction = Estimate(0.03, 0.02, 0.04)
    assert v.difference_verdict(reduction, HIGHER, 0.005, band) == v.PARTIAL
    assert v.difference_verdict(reduction, HIGHER, 0.005, band, 0.095 / 25) == v.PARTIAL
    assert v.difference_verdict(reduction, HIGHER, 0.005, band, 1.03 / 25) == v.WITHIN_ERROR
    inside = Estimate(0.10, 0.08, 0.12)  # 2.5 FID: beyond either error
    assert v.difference_verdict(inside, HIGHER, 0.005, band, 1.03 / 25) == v.REPRODUCED


def test_no_worse_verdict_within_estimator_error_only_when_found_worse():
    # worse by 0.3 FID beyond a 0.1 margin: not reproduced, unless the estimator errs by 0.3+
    worse = Estimate(0.3, 0.2, 0.4)
    assert v.no_worse_verdict(worse, LOWER, 0.1) == v.NOT_REPRODUCED
    assert v.no_worse_verdict(worse, LOWER, 0.1, error=0.25) == v.NOT_REPRODUCED
    assert v.no_worse_verdict(worse, LOWER, 0.1, error=1.0) == v.WITHIN_ERROR
    # comparable (the whole interval under the margin) stays reproduced whatever the error
    assert v.no_worse_verdict(Estimate(0.02, -0.03, 0.07), LOWER, 0.1, error=1.0) == v.REPRODUCED


def test_compound_claims_rank_within_error_between_a_tie_and_partial():
    assert v.all_of([v.REPRODUCED, v.WITHIN_ERROR]) == v.WITHIN_ERROR
    assert v.all_of([v.PARTIAL, v.WITHIN_ERROR]) == v.WITHIN_ERROR
    assert v.all_of([v.WITHIN_ERROR, v.INDISTINGUISHABLE]) == v.INDISTINGUISHABLE
    assert v.all_of([v.WITHIN_ERROR, v.NOT_REPRODUCED]) == v.NOT_REPRODUCED
    assert v.best_of([v.WITHIN_ERROR, v.INDISTINGUISHABLE]) == v.WITHIN_ERROR
    assert v.best_of([v.WITHIN_ERROR, v.PARTIAL]) == v.PARTIAL
    assert v.counts([v.WITHIN_ERROR])[v.WITHIN_ERROR] == 1
    assert "within estimator error" in v.RULES


def test_one_estimator_per_comparison_and_its_measured_error():
    # the committed measurement on the artifact (simulator/data/fid_estimator_error.json)
    assert v.fid_estimator_error(["exact", "exact", None, float("nan")]) == (
        "exact",
        pytest.approx(0.095049),
    )
    assert v.fid_estimator_error(["table"]) == ("table", pytest.approx(1.028471))
    with pytest.raises(ValueError, match="exactly one estimator"):
        v.fid_estimator_error(["exact", "table"])
    with pytest.raises(ValueError, match="none"):
        v.fid_estimator_error([None])
    assert "fid_table (out-of-sample error 1.03 FID" in v.fid_error_note("table", 1.028471)
