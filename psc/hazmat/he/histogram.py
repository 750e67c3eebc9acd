"""A district's grade histogram under CKKS encryption (hazmat; run by the grading authority).

The capped indicators form a thermometer code: ``T_j = [grade > j]`` is ``ind_j`` for
thresholds below the first cap and ``keep * ind_j`` above it, so bin ``g`` is ``T_{g-1} -
T_g`` (``T_{-1} = 1``, ``T_{G-1} = 0``), masked to the district's slots and slot-summed by
rotations over the whole slot cycle (Galois keys for :func:`histogram_rotation_steps` only),
which leaves the total in *every* slot.  A shorter sum would leave partial window sums in
other slots, and differences of neighbouring slots are single subjects' indicators.

The integer DP noise of each bin is added under encryption (a plaintext replicated in every
slot) by the caller, the grading authority, which draws it from the OS CSPRNG; encrypted
noise shares from other parties are not accepted, because nothing proves such a share is
a small integer rather than, say, an encryption of one subject's score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from psc.exceptions import ParameterError
from psc.hazmat.backends.bfv import TensealCiphertext
from psc.hazmat.he.contexts import ckks_vector_with_size
from psc.hazmat.he.evaluator import HomomorphicGrader


def histogram_rotation_steps(slots: int) -> tuple[int, ...]:
    """Rotation steps of a slot sum over the whole ``slots``-slot cycle: ``1, 2, ...,
    slots/2``."""
    return tuple(1 << i for i in range(max(0, math.ceil(math.log2(max(slots, 1))))))


def encrypted_histogram(
    grader: HomomorphicGrader,
    scores: TensealCiphertext,
    caps: Mapping[str, TensealCiphertext],
    district: Sequence[int],
    noise: Sequence[int],
) -> list[Any]:
    """One ciphertext per grade (lowest first): the district's count plus ``noise[g]`` in
    every slot, unflooded (the authority floods, then decrypts).

    Catalogs with more than one cap level are refused (:class:`ParameterError`);
    ``ValueError`` for a noise vector of the wrong length or a district spread over parts.
    """
    circ, ev = grader.circuit, grader._ev
    if len(circ.cap_levels) > 1:
        raise ParameterError("the encrypted histogram supports at most one cap level")
    G = len(circ.labels)
    if len(noise) != G:
        raise ValueError(f"the histogram needs one noise integer per grade ({G})")
    part, mask = grader._mask(scores, caps, district)
    prep = grader.prepare(scores, caps, part)
    therm: list[Any] = []
    for j, ind in enumerate(prep.ind):
        if j in prep.segs[0]:
            therm.append(ind.ct * (mask / (ind.factor * ev.r(ind.level))).tolist())
        else:
            therm.append(grader._times(prep.keeps[0], ind, mask).ct)
    S = circ.slots
    sums = [ckks_vector_with_size(t.sum(), S, grader.public.context) for t in therm]
    bins: list[Any] = []
    for g in range(G):
        if g == 0:
            b = sums[0].neg() + float(len(district))
        elif g < G - 1:
            b = sums[g - 1] - sums[g]
        else:
            b = sums[G - 2]
        bins.append(b + np.full(S, float(int(noise[g]))).tolist())
    return bins
