"""The proportionality scale: how far one rule may move a score, by severity class.

State Council General Office Opinions 2020 No. 49 require punishment proportional to the
fault; the EU AI Act Art. 5(1)(c)(ii) (the contrast) forbids treatment disproportionate to
the behaviour or its gravity.  psc makes that checkable relative to the catalog's own
scale, so one table serves a 1,000-point city scheme and a 100-point company scheme:

=========  ======================  ==========================  ==============  ==========
severity   max share of the base   max band thresholds one     max share per   grade cap
           per event (|delta|)     event may cross             period (warn)   allowed
=========  ======================  ==========================  ==============  ==========
positive   3 %                     1                           10 %            no
minor      3 %                     1                           10 %            no
moderate   10 %                    2                           25 %            no
serious    25 %                    any                         50 %            yes, not to the lowest band
=========  ======================  ==========================  ==============  ==========

"Band thresholds crossed" is the worst case over every starting score: a move of ``d``
points crosses the thresholds in an open interval ``(s - d, s)``, so the maximum is the
largest number of thresholds within any window of ``d - 1`` points (thresholds are
half-integers, scores integers).  The per-period share is ``|delta| * max_per_period``
and is only a warning: many small events in one month are still small events.  A cap at
the lowest band would let one event decide the worst grade whatever else is recorded, the
equivalent of a listing, and is refused.

The figures are a policy choice of this project, not numbers from the instruments; they
are chosen so that the reported Rongcheng figures (-5 for a traffic ticket, a cap for
drunk driving) and the shipped catalogs sit inside the scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class SeverityScale:
    """The limits of one severity class (see the module docstring)."""

    severity: str
    max_share: Fraction  # of the base score, per event
    max_bands: int | None  # thresholds one event may cross; None: no limit
    max_period_share: Fraction  # of the base score, per period (warning only)
    cap_allowed: bool


SCALE: dict[str, SeverityScale] = {
    "positive": SeverityScale("positive", Fraction(3, 100), 1, Fraction(10, 100), False),
    "minor": SeverityScale("minor", Fraction(3, 100), 1, Fraction(10, 100), False),
    "moderate": SeverityScale("moderate", Fraction(10, 100), 2, Fraction(25, 100), False),
    "serious": SeverityScale("serious", Fraction(25, 100), None, Fraction(50, 100), True),
}


def max_bands_crossed(thresholds: Sequence[Fraction], delta: int) -> int:
    """The most band thresholds one move of ``|delta|`` points can cross, over all scores.

    From integer score ``s`` a move of ``d > 0`` crosses the thresholds ``t`` with
    ``s - d < t < s``.  With half-integer thresholds the window holding a given lowest
    crossed ``t_i`` reaches up to ``t_i + d - 1``, so the answer is
    ``max_i #{j : t_i <= t_j <= t_i + d - 1}`` (0 for ``d == 0``).
    """
    d = abs(delta)
    if d == 0 or not thresholds:
        return 0
    ts = sorted(thresholds)
    return max(sum(1 for u in ts if t <= u <= t + d - 1) for t in ts)


def max_delta(base_score: int, severity: str) -> Fraction:
    """The largest |delta| one event of ``severity`` may carry on a scheme with ``base_score``."""
    return SCALE[severity].max_share * base_score
