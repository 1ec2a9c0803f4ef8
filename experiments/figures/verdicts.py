"""The verdict rules of the reproduction report: the one place that decides what a claim's
verdict is. Bands and ties are fixed here (or stated in the claim's note) before looking at
the results; the report's header prints `RULES`.

Categories (`VERDICTS`, in report order):

* ``reproduced``: the paper's direction holds (the 95% interval excludes the null: 0 for a
  difference, 1 for a ratio, and the estimate is beyond the tie band) and the magnitude is in
  the claim's stated band, when it states one (a ratio also needs a bounded interval). A level
  claim ("≈ p"): the whole 95% interval lies inside the band.
* ``partially reproduced``: exactly "the direction holds as above, but the magnitude is outside
  the band, or cannot be placed in it (a ratio whose interval is unbounded)".
* ``indistinguishable``: a tie: the interval includes the null, or the estimate is within the
  tie band; a level claim whose interval straddles an edge of the band.
* ``not reproduced``: the sign is reversed (the interval excludes the null on the wrong side and
  the estimate is beyond the tie band); a level claim whose interval lies outside the band; a
  non-inferiority claim whose interval lies above the margin.
* ``within estimator error``: a FID comparison that would be reproduced, partially or not
  reproduced, but whose difference is smaller than the out-of-sample error of the FID estimator
  that scored it (`simulator.fid_error`): the estimator cannot tell which FID is lower; not
  evidence. A "no worse" claim gets it only when found worse.
* ``by construction``: the setup makes the claim true (the note says why); not evidence.
* ``not comparable``: this bundle or run cannot test the claim; not evidence.

API for a figure module (all intervals are 95%)::

    Estimate(value, low, high)          # a point estimate and its interval
    Estimate.exact(x)                   # a deterministic number (no sampling: zero width)
    est.text(fmt) / est.scaled(k)       # 'value [low, high]' for a claim; times a constant
    t_interval(values)                  # mean of replicates ± Student t (n < 2: unbounded)
    paired_difference(ours, other)      # per-seed arrays -> Estimate of mean(ours - other)
    proportion_difference(p1, n1, p2, n2)   # two measured proportions (Wald interval)
    bounded_mean_interval(mean, n, range)   # a mean of bounded values, worst-case variance
    bootstrap_ratio(num, den)           # per-seed arrays -> mean(num) / mean(den), seeded
                                        # percentile bootstrap over seeds (paired)
    Band.proportion(lo, hi=None)        # the paper's proportion(s) widened by PROPORTION_PP
    Band.factor(paper)                  # a ratio band: paper ×/÷ RATIO_FACTOR
    Band.at_most(x) / Band(lo, hi)      # any other band, stated in the claim's note
    fid_tie(other_fid)                  # FID tie band: FID_TIE_REL of the other's FID
    fid_estimator_error(fid_methods)    # (estimator, its error) of a comparison's runs
    fid_error_note(estimator, error)    # the phrase that states them in a claim's note
    difference_verdict(est, LOWER|HIGHER, tie, band=None, error=0)  # "ours lower/higher"
    ratio_verdict(est, band, gap, tie)  # "num is `paper`x den" (violation-reduction factors)
    level_verdict(est, band)            # "ours ≈ the paper's number"
    no_worse_verdict(est, LOWER, margin, error=0)   # "not worse by more than margin"
    all_of(verdicts) / best_of(verdicts)    # compound claims ("every", "lowest of all") / "some"

A figure module builds a `context.Claim` with the verdict these return and puts the band or
tie it used in the claim's note. `error` is the FID estimator's error in the units of `est`
(FID, or divided by the baseline's FID for a relative reduction).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

REPRODUCED = "reproduced"
PARTIAL = "partially reproduced"
INDISTINGUISHABLE = "indistinguishable"
NOT_REPRODUCED = "not reproduced"
WITHIN_ERROR = "within estimator error"
BY_CONSTRUCTION = "by construction"
NOT_COMPARABLE = "not comparable"
VERDICTS = (
    REPRODUCED,
    PARTIAL,
    INDISTINGUISHABLE,
    NOT_REPRODUCED,
    WITHIN_ERROR,
    BY_CONSTRUCTION,
    NOT_COMPARABLE,
)
EVIDENCE = (REPRODUCED, PARTIAL, INDISTINGUISHABLE, NOT_REPRODUCED)

CONFIDENCE = 0.95
PROPORTION_PP = 0.03  # a proportion's band: the paper's value(s) ± 3 percentage points
RATIO_FACTOR = 2.0  # a ratio's band (e.g. a violation-reduction factor): paper ×/÷ 2
FID_TIE_REL = 0.005  # FIDs within 0.5% of the other's FID are a tie
RATE_TIE = 0.002  # rates (e.g. SLO-violation ratios) within 0.2 percentage points are a tie
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0

LOWER, HIGHER = -1, 1  # the paper's direction of a difference ours − other

RULES = f"""\
Verdict rules (experiments/figures/verdicts.py). Intervals are {CONFIDENCE:.0%}: Student t over
seeds for differences and means (paired per seed), a seeded percentile bootstrap over seeds
({BOOTSTRAP_RESAMPLES} resamples) for ratios; within one run, over its phases (fig08) or its
queries (fig04's check, proportions); computed numbers (fig02's frontier, fig04's areas,
tab01's planner mean) are exact. One value has no interval: it cannot be reproduced.

- **reproduced**: the paper's direction holds (the interval excludes 0, or 1 for a ratio, and
  the estimate is beyond the tie band) and the magnitude is in the band stated beforehand
  (proportions: the paper's value ± {100 * PROPORTION_PP:g} percentage points; ratios: ×/÷
  {RATIO_FACTOR:g}, with a bounded interval); a level claim ("≈ p") or a "no worse than"
  claim: the whole interval in the band.
- **partially reproduced**: the direction holds, but the magnitude is outside the band or
  cannot be placed in it (a ratio with an unbounded interval).
- **indistinguishable**: a tie: the interval includes 0 (1 for a ratio) or the estimate is
  within the tie band (FID: {100 * FID_TIE_REL:g}% of the other's; rates:
  {100 * RATE_TIE:g} percentage points); a level whose interval straddles the band's edge.
  "Lowest of all" with a tie is indistinguishable, not lowest.
- **not reproduced**: the sign is reversed (interval on the wrong side, beyond the tie band), a
  level outside the band, or a "no worse" claim significantly worse than its margin.
- **within estimator error**: a FID comparison that would be reproduced, partially or not
  reproduced (a "no worse" claim: found worse), but whose difference is smaller than the
  out-of-sample error of the FID estimator that scored every policy of the comparison (one
  estimator per comparison: `fid_exact` on the default bundle, `fid_table` elsewhere; errors
  measured on the HADIS artifact's FIDs of real images, table `tab03`, simulator/fid_error.py);
  not evidence.
- **by construction**: the setup makes the claim true (reason in the note); not evidence.
- **not comparable**: this bundle or run cannot test the claim; not evidence.
- Compound claims ("every", "both", "lowest of all"): the weakest part decides (not reproduced
  < indistinguishable < within estimator error < partially < reproduced); "at some setting":
  the strongest.
"""


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its 95% interval [low, high] (infinite: unbounded; NaN:
    undefined)."""

    value: float
    low: float
    high: float

    @classmethod
    def exact(cls, value: float) -> Estimate:
        """A deterministic quantity (computed, not sampled): a zero-width interval."""
        return cls(float(value), float(value), float(value))

    @property
    def defined(self) -> bool:
        return not (math.isnan(self.value) or math.isnan(self.low) or math.isnan(self.high))

    @property
    def bounded(self) -> bool:
        return self.defined and math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def half_width(self) -> float:
        """(high − low) / 2: the ± of a symmetric interval."""
        return (self.high - self.low) / 2

    def scaled(self, factor: float) -> Estimate:
        """The estimate times a constant (e.g. −1 / baseline: a relative reduction)."""
        a, b = self.low * factor, self.high * factor
        return Estimate(self.value * factor, min(a, b), max(a, b))

    def text(self, fmt: Callable[[float], str] = "{:.3g}".format) -> str:
        """'value [low, high]' (∞ for unbounded, 'undefined' for NaN bounds)."""

        def bound(x: float) -> str:
            return "∞" if x == math.inf else "−∞" if x == -math.inf else fmt(x)

        if math.isnan(self.low) or math.isnan(self.high):
            return f"{fmt(self.value)} [interval undefined]"
        if self.low == self.high:
            return fmt(self.value)
        return f"{fmt(self.value)} [{bound(self.low)}, {bound(self.high)}]"


@dataclass(frozen=True)
class Band:
    """A closed magnitude band [low, high]."""

    low: float
    high: float

    @classmethod
    def proportion(cls, paper_low: float, paper_high: float | None = None) -> Band:
        """The paper's proportion (or range) widened by PROPORTION_PP; an edge that would pass
        0 or 1 is open (a t-interval of a proportion may overshoot [0, 1])."""
        low = paper_low - PROPORTION_PP
        high = (paper_low if paper_high is None else paper_high) + PROPORTION_PP
        return cls(low if low > 0 else -math.inf, high if high < 1 else math.inf)

    @classmethod
    def factor(cls, paper: float) -> Band:
        """A ratio band: the paper's factor ×/÷ RATIO_FACTOR."""
        return cls(paper / RATIO_FACTOR, paper * RATIO_FACTOR)

    @classmethod
    def at_most(cls, high: float) -> Band:
        return cls(-math.inf, high)

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def text(self, pct: bool = True) -> str:
        def fmt(x: float) -> str:
            return f"{100 * x:.3g}%" if pct else f"{x:.3g}"

        if self.low == -math.inf:
            return f"≤ {fmt(self.high)}"
        if self.high == math.inf:
            return f"≥ {fmt(self.low)}"
        return f"[{fmt(self.low)}, {fmt(self.high)}]"


# ----------------------------------------------------------------------------- intervals


def t_half_width(values: Sequence[float]) -> float:
    """Half-width of the Student-t interval of the mean (inf for fewer than 2 values)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return math.inf
    t = stats.t.ppf((1 + CONFIDENCE) / 2, len(values) - 1)
    return float(t * values.std(ddof=1) / np.sqrt(len(values)))


def t_interval(values: Sequence[float]) -> Estimate:
    """Mean of replicate values and its Student-t interval (unbounded for one value; undefined,
    NaN, for none: e.g. a paired FID where one method completed no query)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return Estimate(math.nan, math.nan, math.nan)
    mean = float(values.mean())
    half = t_half_width(values)
    return Estimate(mean, mean - half, mean + half)


def paired_difference(ours: Sequence[float], other: Sequence[float]) -> Estimate:
    """mean(ours − other) over seeds both ran (same order) and its Student-t interval."""
    return t_interval(np.asarray(ours, dtype=np.float64) - np.asarray(other, dtype=np.float64))


def proportion_difference(p1: float, n1: int, p2: float, n2: int) -> Estimate:
    """p1 − p2 of two proportions measured over n1 and n2 independent trials, with the normal
    (Wald) interval z·sqrt(p1(1 − p1)/n1 + p2(1 − p2)/n2); n2 = 0: p1 alone against the
    constant p2."""
    z = stats.norm.ppf((1 + CONFIDENCE) / 2)
    var = p1 * (1 - p1) / n1 + (p2 * (1 - p2) / n2 if n2 else 0.0)
    half = float(z * math.sqrt(var))
    return Estimate(p1 - p2, p1 - p2 - half, p1 - p2 + half)


def bounded_mean_interval(mean: float, n: int, value_range: float) -> Estimate:
    """Mean of n independent values that span at most `value_range`, with the normal interval
    of the worst-case standard deviation value_range / 2 (when only the mean was kept)."""
    half = float(stats.norm.ppf((1 + CONFIDENCE) / 2) * value_range / 2 / math.sqrt(n))
    return Estimate(mean, mean - half, mean + half)


def ratio_of_means(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """mean(num) / mean(den) along the last axis: inf when only the denominator is 0, NaN
    when both are."""
    a, b = num.mean(axis=-1), den.mean(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.where(a > 0, math.inf, math.nan))


def bootstrap_ratio(
    num: Sequence[float],
    den: Sequence[float],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Estimate:
    """mean(num) / mean(den) over paired seeds, with the percentile interval of a bootstrap
    that resamples seeds (the same seeds for both): unbounded above when more than 2.5% of the
    resamples have a zero denominator, undefined (NaN) when any resample is 0 / 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    if num.shape != den.shape or num.ndim != 1 or len(num) == 0:
        raise ValueError(
            f"bootstrap_ratio: paired 1-D samples needed, got {num.shape}, {den.shape}"
        )
    value = float(ratio_of_means(num, den))
    pick = np.random.default_rng(seed).integers(0, len(num), size=(resamples, len(num)))
    ratios = ratio_of_means(num[pick], den[pick])
    if np.isnan(ratios).any():
        return Estimate(value, math.nan, math.nan)
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha], method="inverted_cdf")
    return Estimate(value, float(low), float(high))


def fid_tie(other_fid: float) -> float:
    """The FID tie band of a comparison with `other_fid`."""
    return FID_TIE_REL * abs(other_fid)


def fid_estimator_error(fid_methods: Iterable[object]) -> tuple[str, float]:
    """(estimator, its out-of-sample FID error) of a comparison whose runs report
    `fid_methods` (their summaries' `fid_method`; missing values, runs that completed no query,
    are skipped). Every policy of one comparison must be scored by the same estimator."""
    from simulator.fid_error import estimator_error

    found = sorted({str(m) for m in fid_methods if isinstance(m, str)})
    if len(found) != 1:
        raise ValueError(f"a FID comparison needs exactly one estimator, got {found or 'none'}")
    return found[0], estimator_error(found[0])


def fid_error_note(estimator: str, error: float) -> str:
    """The claim-note phrase naming a comparison's FID estimator and its error."""
    return (
        f"every FID compared here from fid_{estimator} (out-of-sample error {error:.2f} FID, "
        "tab03; a smaller difference is within estimator error)"
    )


def _within_error(verdict: str, est: Estimate, error: float) -> str:
    """WITHIN_ERROR for a decided verdict whose estimate is smaller than `error`."""
    decided = verdict in (REPRODUCED, PARTIAL, NOT_REPRODUCED)
    return WITHIN_ERROR if decided and est.defined and abs(est.value) < error else verdict


# ----------------------------------------------------------------------------- rules


def _direction(est: Estimate, direction: int, null: float, tie: float) -> str | None:
    """REPRODUCED when the direction holds, NOT_REPRODUCED when reversed, else
    INDISTINGUISHABLE (the magnitude is judged by the caller)."""
    if direction not in (LOWER, HIGHER):
        raise ValueError(f"direction must be LOWER (-1) or HIGHER (1), got {direction!r}")
    if not est.defined or abs(est.value - null) <= tie:
        return INDISTINGUISHABLE
    toward = est.low > null if direction == HIGHER else est.high < null
    against = est.high < null if direction == HIGHER else est.low > null
    if toward and direction * (est.value - null) > 0:
        return REPRODUCED
    if against:
        return NOT_REPRODUCED
    return INDISTINGUISHABLE


def difference_verdict(
    est: Estimate, direction: int, tie: float = 0.0, band: Band | None = None, error: float = 0.0
) -> str:
    """'ours − other is LOWER/HIGHER than 0' (and, with `band`, the difference — or whatever
    magnitude `est` holds, e.g. a relative reduction — lies in the band); a decided verdict
    whose |estimate| is below the estimator's `error` (same units) is WITHIN_ERROR."""
    verdict = _direction(est, direction, 0.0, tie)
    if verdict == REPRODUCED and band is not None and not band.contains(est.value):
        verdict = PARTIAL
    return _within_error(verdict, est, error)


def ratio_verdict(est: Estimate, band: Band, gap: float, tie: float) -> str:
    """'num is about band × den' (a factor > 1, e.g. a violation-reduction factor) from a
    `bootstrap_ratio` estimate; `gap` = mean(num) − mean(den): within `tie` it is a tie
    whatever the ratio (0.02% vs 0.01% is a factor of 2 but no difference)."""
    if abs(gap) <= tie:
        return INDISTINGUISHABLE
    verdict = _direction(est, HIGHER, 1.0, 0.0)
    if verdict == REPRODUCED and not (est.bounded and band.contains(est.value)):
        return PARTIAL
    return verdict


def level_verdict(est: Estimate, band: Band) -> str:
    """'ours ≈ the paper's number': the interval inside the band, outside it, or across an
    edge (undefined intervals cannot be placed)."""
    if not est.defined:
        return INDISTINGUISHABLE
    if band.low <= est.low and est.high <= band.high:
        return REPRODUCED
    if est.high < band.low or est.low > band.high:
        return NOT_REPRODUCED
    return INDISTINGUISHABLE


def no_worse_verdict(est: Estimate, better: int, margin: float, error: float = 0.0) -> str:
    """Non-inferiority of ours − other (`better` = LOWER: lower is better): reproduced when the
    whole interval is less than `margin` worse, not reproduced when all of it is more than
    `margin` worse (WITHIN_ERROR when it is worse by less than the estimator's `error`),
    indistinguishable otherwise."""
    if better not in (LOWER, HIGHER):
        raise ValueError(f"better must be LOWER (-1) or HIGHER (1), got {better!r}")
    worse = est if better == LOWER else Estimate(-est.value, -est.high, -est.low)
    verdict = level_verdict(worse, Band.at_most(margin))
    return _within_error(verdict, est, error) if verdict == NOT_REPRODUCED else verdict


_STRENGTH = {NOT_REPRODUCED: 0, INDISTINGUISHABLE: 1, WITHIN_ERROR: 1.5, PARTIAL: 2, REPRODUCED: 3}


def _evidence(verdicts: Iterable[str]) -> list[str]:
    verdicts = list(verdicts)
    if not verdicts:
        raise ValueError("a compound claim needs at least one part")
    other = [v for v in verdicts if v not in _STRENGTH]
    if other:
        raise ValueError(
            f"compound claims combine evidence verdicts (and {WITHIN_ERROR}) only, got {other}"
        )
    return verdicts


def all_of(verdicts: Iterable[str]) -> str:
    """A claim that needs every part ('every', 'both', 'lowest of all'): the weakest part."""
    return min(_evidence(verdicts), key=_STRENGTH.__getitem__)


def best_of(verdicts: Iterable[str]) -> str:
    """A claim that needs one part ('at some setting'): the strongest part (the note must say
    how many settings were tried)."""
    return max(_evidence(verdicts), key=_STRENGTH.__getitem__)


def counts(verdicts: Iterable[str]) -> dict[str, int]:
    """Number of claims per category, every category of VERDICTS in order."""
    verdicts = list(verdicts)
    unknown = sorted(set(verdicts) - set(VERDICTS))
    if unknown:
        raise ValueError(f"unknown verdicts {unknown}; known: {', '.join(VERDICTS)}")
    return {v: verdicts.count(v) for v in VERDICTS}
