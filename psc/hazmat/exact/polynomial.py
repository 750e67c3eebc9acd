"""The exact grade as polynomials over Z_t (hazmat: raw scheme code).

On a finite domain ``D`` of raw live sums, any function ``D -> Z_t`` is a polynomial of
degree ``|D| - 1`` over the field ``Z_t`` (``t`` prime, ``|D| <= t``): Lagrange
interpolation, computed here in Newton form (divided differences) and expanded to
monomial coefficients, all with numpy int64 (``t < 2^17``, so products fit).

For a catalog (thresholds ``tau_1 < ... < tau_{G-1}``, base ``B``, cap labels with grade
indices ``a_1 < a_2 < ...``) and a subject with live sum ``v`` and cap counters ``c_j``::

    band(v)   = #{i : B + v > tau_i}                    (degree |D| - 1 in v)
    u_j(v)    = max(0, band(v) - a_j)                   (what cap j takes away)
    ind_j(c)  = [c >= 1]  on c in [0, C_j]              (degree C_j in c)
    grade     = band(v) - sum_j ind_j * prod_{i < j} (1 - ind_i) * u_j(v)

which is :func:`psc.oracle.grades_of` with the caps of
:func:`psc.oracle.caps_from_counts` on every point of the domain (tested exhaustively).
Values are taken modulo ``t``: a negative ``v`` is the residue ``t + v``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from psc.catalog import Catalog
from psc.exceptions import ParameterError
from psc.oracle import raw_score_bounds

I64 = npt.NDArray[np.int64]


def interpolate(xs: I64, ys: I64, t: int) -> I64:
    """Monomial coefficients (constant first) of the unique polynomial of degree
    ``< len(xs)`` over ``Z_t`` with ``p(xs[i]) = ys[i]``; ``xs`` distinct modulo ``t``."""
    x = np.asarray(xs, dtype=np.int64) % t
    if len(np.unique(x)) != len(x):
        raise ParameterError("interpolation points collide modulo t")
    inv = _inverses(t)
    c = np.asarray(ys, dtype=np.int64) % t
    d = len(x)
    for j in range(1, d):
        diff = (x[j:] - x[: d - j]) % t
        c[j:] = (c[j:] - c[j - 1 : d - 1]) % t * inv[diff] % t
    # Newton to monomial: p = c_{d-1}; p = p (X - x_j) + c_j for j = d-2 .. 0
    p = np.zeros(d, dtype=np.int64)
    p[0] = c[d - 1]
    size = 1
    for j in range(d - 2, -1, -1):
        shifted = np.zeros(size + 1, dtype=np.int64)
        shifted[1:] = p[:size]
        shifted[:size] = (shifted[:size] - x[j] * p[:size]) % t
        shifted[0] = (shifted[0] + c[j]) % t
        p[: size + 1] = shifted
        size += 1
    return p % t


def evaluate(coeffs: I64, x: I64, t: int) -> I64:
    """Horner in the clear (the reference for the encrypted evaluation)."""
    acc = np.zeros_like(np.asarray(x, dtype=np.int64))
    xs = np.asarray(x, dtype=np.int64) % t
    for c in coeffs[::-1]:
        acc = (acc * xs + int(c)) % t
    return acc


_INV: dict[int, I64] = {}


def _inverses(t: int) -> I64:
    if t not in _INV:
        inv = np.zeros(t, dtype=np.int64)
        inv[1] = 1
        for i in range(2, t):
            inv[i] = (t - (t // i) * inv[t % i] % t) % t
        _INV[t] = inv
    return _INV[t]


@dataclass(frozen=True)
class GradePolynomials:
    """The polynomials of one catalog: ``band`` and ``cap_take[j]`` in the live sum ``v``,
    ``cap_indicator[j]`` in cap counter ``j`` (labels in ``cap_labels``, ascending grade)."""

    t: int
    v_domain: tuple[int, int]  # live sums, inclusive
    band: I64
    cap_labels: tuple[str, ...]
    cap_take: tuple[I64, ...]
    cap_indicator: tuple[I64, ...]
    cap_domain: tuple[int, ...]  # C_j, inclusive upper bound of counter j

    @property
    def degree(self) -> int:
        return len(self.band) - 1


def cap_count_bound(catalog: Catalog, label: str) -> int:
    """The largest live count of events carrying cap ``label``."""
    return sum(
        catalog.retention[r.retention].months * r.max_per_period
        for r in catalog.rules
        if r.grade_cap == label
    )


def grade_polynomials(catalog: Catalog, t: int) -> GradePolynomials:
    """Interpolate the catalog's grade over its whole raw-score domain.

    Raises :class:`~psc.exceptions.ParameterError` when the domain has more than ``t``
    points (the function is then not a polynomial over ``Z_t`` on it).
    """
    lo, hi = raw_score_bounds(catalog)
    base = catalog.scheme.base_score
    vlo, vhi = lo - base, hi - base
    size = vhi - vlo + 1
    if size > t:
        raise ParameterError(
            f"the raw-score domain has {size} values, more than t = {t}: no exact polynomial"
        )
    v = np.arange(vlo, vhi + 1, dtype=np.int64)
    thr = np.array([float(x) for x in catalog.thresholds])
    band = np.searchsorted(thr, (base + v).astype(np.float64), side="left").astype(np.int64)
    labels = tuple(sorted(catalog.cap_labels(), key=catalog.grade_index))
    takes, inds, doms = [], [], []
    for label in labels:
        a = catalog.grade_index(label)
        takes.append(interpolate(v, np.maximum(band - a, 0), t))
        cmax = cap_count_bound(catalog, label)
        if cmax + 1 > t:
            raise ParameterError(f"cap counter {label!r} ranges beyond t = {t}")
        c = np.arange(0, cmax + 1, dtype=np.int64)
        inds.append(interpolate(c, (c >= 1).astype(np.int64), t))
        doms.append(cmax)
    return GradePolynomials(
        t=t,
        v_domain=(vlo, vhi),
        band=interpolate(v, band, t),
        cap_labels=labels,
        cap_take=tuple(takes),
        cap_indicator=tuple(inds),
        cap_domain=tuple(doms),
    )


def grade_in_clear(polys: GradePolynomials, v: I64, counts: dict[str, I64]) -> I64:
    """The circuit's formula evaluated in the clear (mod ``t``): what decryption yields."""
    t = polys.t
    grade = evaluate(polys.band, v, t)
    free = np.ones_like(grade)
    for label, take, ind in zip(polys.cap_labels, polys.cap_take, polys.cap_indicator, strict=True):
        if label not in counts:  # as in the circuit: an absent counter is 0 everywhere
            continue
        i = evaluate(ind, counts[label], t)
        grade = (grade - free * i % t * evaluate(take, v, t)) % t
        free = free * (1 - i) % t
    return grade
