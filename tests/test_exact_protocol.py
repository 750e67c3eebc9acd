"""The exact reveal end to end (psc.sim.exact_deployment): agencies' signed BFV blocks in the
log, an aggregator-signed request, members that recompute and decrypt, a combiner that
cross-checks; grades equal the noiseless oracle, batch and single."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from psc import oracle
from psc.exceptions import InvalidMessage
from psc.parties.exact.inputs import SCORE
from psc.sim.exact_deployment import ExactDeployment
from tests._exact_fixtures import TEST_PARAMS, seeded, toy_catalog

RH = hashlib.sha256(b"grade request").digest()


@pytest.fixture(scope="module")
def dep():  # type: ignore[no-untyped-def]
    cat = toy_catalog()
    d = ExactDeployment.create(cat, TEST_PARAMS, 3, 5, randbytes=seeded(2), god_view=True)
    rng = np.random.default_rng(5)
    n = d.ring.n
    late = rng.integers(0, 3, size=n)  # tax.late-filing, delta -3, up to 2 per period
    ontime = rng.integers(0, 2, size=n)
    court = rng.integers(0, 3, size=n) * (rng.random(n) < 0.3)
    d.submit("tax-bureau", 0, "short", SCORE, 0, -3 * late + 2 * ontime)
    d.submit("intermediate-court", 0, "short", SCORE, 0, -1 * court)
    d.submit("intermediate-court", 0, "short", "B", 0, court)
    # a period-1 block must not count at period 0
    d.submit("tax-bureau", 1, "short", SCORE, 0, np.full(n, -3))
    raw = cat.scheme.base_score - 3 * late + 2 * ontime - court
    want = oracle.grades_of(cat, raw, oracle.caps_from_counts(cat, {"B": court}, n))
    return d, want


def test_batch_reveal_equals_the_oracle(dep) -> None:  # type: ignore[no-untyped-def]
    d, want = dep
    out = d.reveal(d.request(RH, period=0, block=0))
    got = np.array([d.catalog.grade_index(g.grade) for g in out.grades])
    assert np.array_equal(got, want)
    assert out.members == (1, 2, 3, 4, 5) and out.request_hash == RH


def test_single_reveal_with_k_members_equals_the_oracle(dep) -> None:  # type: ignore[no-untyped-def]
    d, want = dep
    out = d.reveal(d.request(RH, period=0, block=0, slots=(7, 99)), ask=(2, 3, 5))
    assert [g.slot for g in out.grades] == [7, 99]
    assert [d.catalog.grade_index(g.grade) for g in out.grades] == [want[7], want[99]]


def test_the_circuit_noise_stays_within_the_smudging_allowance(dep) -> None:  # type: ignore[no-untyped-def]
    from psc.hazmat.exact import threshold as T

    d, _ = dep
    req = d.request(RH, period=0, block=0)
    from psc.parties.exact.member import open_request

    ct = d.members[1].grade_ciphertext(open_request(d.params, req))
    assert T.noise_bits(d.ring, ct, d.god_secret) + 8 <= d.noise_allowance


def test_refused_contributions_change_nothing(dep) -> None:  # type: ignore[no-untyped-def]
    d, _ = dep
    size = d.log.head()[0]
    with pytest.raises(KeyError):  # the deployment holds no key for it: nothing is signed
        d.submit("no-such-agency", 0, "short", SCORE, 0, np.zeros(4))
    with pytest.raises(InvalidMessage, match="label"):
        d.submit("tax-bureau", 0, "short", "Z", 0, np.zeros(4))
    assert d.log.head()[0] == size


def test_members_switching_down_before_decrypting_still_equal_the_oracle() -> None:
    # decrypt_primes=3: the grade ciphertext is switched to 3 of the 7 ciphertext primes
    # before decryption; smudging is sized for that level and still covers its noise
    from psc.hazmat.exact import threshold as T
    from psc.parties.exact.member import open_request

    cat = toy_catalog()
    d = ExactDeployment.create(
        cat, TEST_PARAMS, 2, 3, randbytes=seeded(12), god_view=True, decrypt_primes=3
    )
    n = d.ring.n
    v = np.arange(n) % 11 - 8
    c = (np.arange(n) // 11) % 3
    d.submit("tax-bureau", 0, "short", SCORE, 0, v)
    d.submit("intermediate-court", 0, "short", "B", 0, c)
    want = oracle.grades_of(
        cat, cat.scheme.base_score + v, oracle.caps_from_counts(cat, {"B": c}, n)
    )
    out = d.reveal(d.request(RH, period=0, block=0))
    assert np.array_equal(np.array([d.catalog.grade_index(g.grade) for g in out.grades]), want)
    one = d.reveal(d.request(RH, period=0, block=0, slots=(5,)))
    assert one.grades[0].grade == cat.labels[want[5]]
    ct = d.members[1].grade_ciphertext(open_request(d.params, d.request(RH, period=0, block=0)))
    assert ct.coeff_modulus_size() == 3
    assert T.noise_bits(d.ring, ct, d.god_secret) + 8 <= d.noise_allowance
