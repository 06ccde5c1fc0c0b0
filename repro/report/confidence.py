"""How sure a rate is: exact (Clopper-Pearson) bounds on the share of trials with a bad outcome, and how many
trials bound a rate below a target.

The interval is Clopper-Pearson's, at CONFIDENCE (95%): the rates p for which the count seen is not in
either 2.5% tail of Binomial(n, p). When none of the trials (or all of them) showed the outcome, the open
end is the one-sided 95% bound ("0 of 3 corrupt: rate below 63%", 1 - 0.05^(1/3)), as in the rule of three.
Each bound is found by bisection on the binomial CDF (the regularized incomplete beta function by its
continued fraction: stdlib only), to 1e-12.

``trials_for(target)``: the trials n that, if none of them harms data, bound the rate below ``target``:
the least n with 1 - (1 - C)^(1/n) <= target, that is n = ceil(ln(1 - C) / ln(1 - target)) (5%: 59).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from repro.errors import ScenarioError, shown

CONFIDENCE = 0.95
METHOD = "Clopper-Pearson"
# How every report states the method, once.
METHOD_TEXT = (f"rates are {METHOD} exact {CONFIDENCE:.0%} intervals (one-sided {CONFIDENCE:.0%} bounds when "
               "none or all of the trials showed the outcome)")


def beta_cdf(x: float, a: float, b: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction (modified Lentz, as in
    Numerical Recipes' betai): O(sqrt(max(a, b))) steps whatever the counts."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast below the mean: use the symmetry
        return 1.0 - beta_cdf(1.0 - x, b, a)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 10_000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return min(1.0, max(0.0, front * f))


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p): I_{1-p}(n - k, k + 1)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return beta_cdf(1.0 - p, n - k, k + 1)


def _bisect(k: int, n: int, tail: float, *, upper: bool) -> float:
    """The p where P(X <= k) = tail (upper bound) or P(X >= k) = tail (lower bound); both are monotone in p."""
    low, high = 0.0, 1.0
    while high - low > 1e-12:
        mid = (low + high) / 2
        if upper:
            too_low = binom_cdf(k, n, mid) > tail  # P(X <= k) falls as p grows
        else:
            too_low = 1.0 - binom_cdf(k - 1, n, mid) < tail  # P(X >= k) rises as p grows
        low, high = (mid, high) if too_low else (low, mid)
    return (low + high) / 2


@functools.lru_cache(maxsize=4096)
def interval(count: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Clopper-Pearson interval of the rate, given ``count`` of ``trials``; an end at 0 or 1 is exact
    and the other end one-sided at ``confidence``."""
    if not 0 <= count <= trials or trials < 1:
        raise ValueError(f"bad counts {count} of {trials}")
    alpha = 1.0 - confidence
    if count == 0:
        return 0.0, 1.0 - alpha ** (1.0 / trials)
    if count == trials:
        return alpha ** (1.0 / trials), 1.0
    return _bisect(count, trials, alpha / 2, upper=False), _bisect(count, trials, alpha / 2, upper=True)


def trials_for(target: float, confidence: float = CONFIDENCE) -> int:
    """The trials that bound the rate below ``target`` when none of them shows the outcome (see the module)."""
    if not 0.0 < target < 1.0:
        raise ValueError(f"a target rate must be between 0 and 1, not {target}")
    return max(1, math.ceil(math.log(1.0 - confidence) / math.log1p(-target) - 1e-9))


def auto_trials(target: str) -> tuple[int, str]:
    """``--trials auto --target-rate 5%``: the trial count (``trials_for``) and a line that says why; ScenarioError
    for a rate that is not a percentage above 0% and below 100%."""
    text = target.strip()
    try:
        rate = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ScenarioError(f"--target-rate takes a percentage such as 5%, not {shown(text)}") from None
    if not 0.0 < rate < 1.0:
        raise ScenarioError(f"--target-rate must be above 0% and below 100%, not {shown(text)}")
    count = trials_for(rate)
    return count, (f"{count} trials per scenario: if none harms data, the rate is below {text} "
                   f"({CONFIDENCE:.0%}, {METHOD}: n = ceil(ln(0.05) / ln(1 - {rate:g})))")


def percent(rate: float) -> str:
    """A rate as reports print it: a whole percent, one decimal below 10% (``63%``, ``4.9%``, ``0.1%``)."""
    value = rate * 100
    if 0 < value < 10:
        return f"{value:.1f}%".replace(".0%", "%")
    return f"{round(value)}%"


@dataclass(frozen=True)
class RateBound:
    """How often one bad outcome happened in a group, and the rates that count is compatible with."""

    outcome: str  # "corrupt", "lost writes", "harmed data"
    count: int
    trials: int

    @property
    def bounds(self) -> tuple[float, float]:
        return interval(self.count, self.trials)

    @property
    def range_text(self) -> str:
        """``below 63%``, ``above 37%`` or ``9% to 99%`` (at CONFIDENCE)."""
        low, high = self.bounds
        if self.count == 0:
            return f"below {percent(high)}"
        if self.count == self.trials:
            return f"above {percent(low)}"
        return f"{percent(low)} to {percent(high)}"

    @property
    def text(self) -> str:
        """``0 of 3 corrupt: rate below 63% (95%)``."""
        return f"{self.count} of {self.trials} {self.outcome}: rate {self.range_text} ({CONFIDENCE:.0%})"

    @property
    def numbers(self) -> list[float]:
        """``[count, trials, low, high]`` as report.json keeps them (bounds to 4 decimals)."""
        low, high = self.bounds
        return [self.count, self.trials, round(low, 4), round(high, 4)]


__all__ = ["CONFIDENCE", "METHOD", "METHOD_TEXT", "RateBound", "auto_trials", "beta_cdf", "binom_cdf", "interval", "percent", "trials_for"]
