"""Adversary: the combiner of the exact reveal (alone or with k-1 members' shares it sees).

Claim (protocols/threat-model.md, exact reveal): the combiner's view of a reveal (the
members' decryption shares and the decrypted ciphertext) is, up to statistical distance
2^-40, a function of the released grades alone.  Tested by its sharpest consequence: two
blocks whose every subject has a different score *in the same band* give identically
distributed views.  The statistic is everything the shares show beyond the output,
``|x - Delta^2 floor(q/t) m|`` per coefficient, compared by a median test; the test is
shown to have power against members that smudge too little.  A combiner also cannot make
members decrypt anything but the grade ciphertext they compute themselves.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tenseal.sealapi as sealapi

from psc.exceptions import InvalidMessage
from psc.hazmat.exact import threshold as T
from psc.hazmat.exact.circuit import encode
from psc.hazmat.exact.keys import secret_key_from
from psc.hazmat.exact.seal_io import ct_read, ct_write, pt_read
from psc.protocol.exact_messages import ExactRevealRequest, ExactRevealTask
from psc.protocol.signing import seal
from tests.attacks._exact_fixtures import (
    RH,
    deployment,
    median_test_bound,
    residues,
    submit_uniform,
    task_for,
    view,
)

# toy catalog: base 10, band B is 7..11, so live sums 0 and -3 are the same grade
SAME_BAND = (0, -3)
REVEALS = 3


@pytest.fixture(scope="module")
def dep():  # type: ignore[no-untyped-def]
    return deployment()


def _samples(dep, value: int, first_period: int):  # type: ignore[no-untyped-def]
    out: list[int] = []
    for p in range(first_period, first_period + REVEALS):
        submit_uniform(dep, p, value)
        ct, shares = view(dep, dep.request(RH, period=p, block=0), (1, 2, 3))
        assert set(shares) == {1, 2, 3}
        out += [abs(r) for r in residues(dep, ct, shares)]
    return out


def _median_statistic(a: list[int], b: list[int]) -> float:
    pooled = np.median(np.array(a + b, dtype=float))
    above = sum(1 for x in a if x > pooled)
    return abs(above / len(a) - 0.5)


def test_views_of_two_scores_in_the_same_band_are_identically_distributed(dep) -> None:  # type: ignore[no-untyped-def]
    a = _samples(dep, SAME_BAND[0], 10)
    b = _samples(dep, SAME_BAND[1], 20)
    # false failure below 1e-7 (Hoeffding, without replacement)
    assert _median_statistic(a, b) < median_test_bound(len(a))


def _recover_key_and_scores(dep, value: int, period: int):  # type: ignore[no-untyped-def]
    """The distinguisher: from one view, solve ``c1 s = v + D m - c0`` for ``s`` (needs
    ``v``, which the residues show exactly when nothing is smudged), then decrypt the
    logged input block with the recovered key: the live sums themselves."""
    submit_uniform(dep, period, value)
    sealed = dep.request(RH, period=period, block=0)
    ct, shares = view(dep, sealed, (1, 2, 3))
    ring = dep.ring
    d2 = T.delta(dep.params.n) ** 2
    r = residues(dep, ct, shares)
    v = [(x + d2 // 2) // d2 for x in r]  # exact when |smudging| < Delta^2 / 2
    m = T.combine(ring, ct, shares, dep.params.n)
    coeffs = pt_read(ring, encode(ring, m)).astype(object)
    c0 = ct_read(ring, ct)[0]
    y = ring.sub(
        ring.reduce_signed(
            np.array(
                [vi + (ring.q // ring.t) * int(mi) for vi, mi in zip(v, coeffs, strict=True)],
                dtype=object,
            )
        ),
        c0,
    )
    ntt = sealapi.Ciphertext()
    ring.evaluator.transform_to_ntt(ct, ntt)
    c1_ntt = ct_read(ring, ntt)[1]
    y_ntt = ct_read(ring, _to_ntt(ring, ct, y))[0]
    s = np.stack(
        [
            (
                y_ntt[j].astype(object)
                * np.array([pow(int(c), qj - 2, qj) for c in c1_ntt[j]], dtype=object)
                % qj
            ).astype(np.uint64)
            for j, qj in enumerate(ring.primes)
        ]
    )
    full = np.vstack([s, np.zeros((1, ring.n), dtype=np.uint64)])
    inputs = dep.log.live_inputs(period, 0, *dep.log.head())
    out = sealapi.Plaintext()
    sealapi.Decryptor(ring.context, secret_key_from(ring, full)).decrypt(inputs["score"], out)
    sums = np.array(ring.encoder.decode_uint64(out), dtype=np.int64)
    return s, np.where(sums > ring.t // 2, sums - ring.t, sums)


def _to_ntt(ring, like, poly):  # type: ignore[no-untyped-def]
    tmp = ct_write(ring, like, np.stack([poly, poly]))
    out = sealapi.Ciphertext()
    ring.evaluator.transform_to_ntt(tmp, out)
    return out


def test_the_distinguisher_wins_against_members_that_do_not_smudge(dep) -> None:  # type: ignore[no-untyped-def]
    # the broken variant: no smudging (b = 0); the view then determines the secret key,
    # hence the score of every subject: the two same-band scores are told apart surely
    broken = dataclasses.replace(dep.params, smudging_bits=0)
    saved = {i: m.params for i, m in dep.members.items()}
    try:
        for m in dep.members.values():
            m.params = broken
        for period, value in ((70, SAME_BAND[0]), (71, SAME_BAND[1])):
            s, sums = _recover_key_and_scores(dep, value, period)
            assert np.array_equal(s, dep.god_secret[: dep.ring.levels])
            assert np.all(sums == value)
    finally:
        for i, m in dep.members.items():
            m.params = saved[i]


def test_the_same_distinguisher_fails_against_smudged_shares(dep) -> None:  # type: ignore[no-untyped-def]
    s, sums = _recover_key_and_scores(dep, SAME_BAND[1], 72)
    assert not np.array_equal(s, dep.god_secret[: dep.ring.levels])
    # what it "decrypts" is unrelated to the live sums (each slot right with prob ~1/t)
    assert np.mean(sums == SAME_BAND[1]) < 0.01


def test_members_refuse_a_task_whose_request_the_combiner_rewrote(dep) -> None:  # type: ignore[no-untyped-def]
    submit_uniform(dep, 50, 1)
    sealed = dep.request(RH, period=50, block=0, slots=(3,))
    from psc.parties.exact.member import open_request

    req = open_request(dep.params, sealed)
    # widen the request to every slot, re-signed by the combiner (not the aggregator)
    forged = seal(dataclasses.replace(req, slots=()), dep.combiner._key)
    with pytest.raises(InvalidMessage):
        dep.members[1].decryption_share(task_for(dep, forged))
    # a task not signed by the combiner is refused too
    stranger = seal(ExactRevealTask(authorization=sealed, issued_at=0), dep.aggregator_key)
    with pytest.raises(InvalidMessage):
        dep.members[1].decryption_share(stranger)


def test_a_share_cannot_be_replayed_into_another_task(dep) -> None:  # type: ignore[no-untyped-def]
    submit_uniform(dep, 60, 1)
    first = task_for(dep, dep.request(RH, period=60, block=0, slots=(1,)))
    share = dep.members[1].decryption_share(first)
    other = task_for(dep, dep.request(RH, period=60, block=0, slots=(2,)))
    from psc.protocol.signing import digest

    with pytest.raises(InvalidMessage, match="another task"):
        dep.combiner._open_share(share, digest(other))


def test_request_types_are_not_interchangeable(dep) -> None:  # type: ignore[no-untyped-def]
    # an aggregator-signed request presented as a task (signature labels differ)
    sealed = dep.request(RH, period=60, block=0)
    with pytest.raises(InvalidMessage):
        dep.members[2].decryption_share(sealed)
    assert isinstance(ExactRevealRequest.TYPE, str)
