"""Adversary: a dishonest dealer or operator at setup (attack 8 of issue 9).

The share and verification-key checks and a known-answer decryption must run at every
setup, not only in tests; the shipped, publicly factored test safe primes must be refused
unless the caller opts in to insecure keys.
"""

from __future__ import annotations

import dataclasses
import math

import gmpy2
import pytest

from protocols.gen_reveal_dp import make_committee
from protocols.gen_reveal_dp import test_primes as shipped_test_primes
from protocols.gen_threshold import Drbg
from psc.exceptions import InvalidMessage, ParameterError
from psc.hazmat.threshold.dealer import deal
from psc.hazmat.threshold.keys import KeyShare, ThresholdPublicKey
from psc.parties.committee import CommitteeMember, KeyCommittee, LocalLink


def test_deal_refuses_the_shipped_test_primes_without_an_insecure_opt_in() -> None:
    dealer = Drbg("attack/setup/dealer")
    with pytest.raises(ParameterError, match="test"):
        deal(3, 5, bits=2048, randbelow=dealer.randbelow, _primes=shipped_test_primes(2048))


def test_a_member_refuses_a_key_share_that_does_not_match_its_verification_key() -> None:
    c = make_committee()
    bad = KeyShare(c.public, 1, c.key_shares[0].secret + 1)
    from protocols.gen_reveal_dp import member_seed
    from psc.protocol.signing import _signing_key_from_seed

    with pytest.raises(InvalidMessage):
        CommitteeMember(c.params, bad, _signing_key_from_seed(member_seed(1)), log_view=c.log)


def test_the_combiner_refuses_a_committee_that_fails_a_known_answer_decryption() -> None:
    """A dealer hands out shares of the wrong secret: 2d instead of d (still 0 mod m, but
    2 mod n).  Every share matches its verification key and the keys lie on one polynomial
    whose value at 0 is 0 mod m, so the per-share and verification-key checks pass, yet
    the committee would decrypt every M as 2M.  The known-answer decryption at setup must
    catch it."""
    c = make_committee()
    pk = c.public
    p, q = (gmpy2.mpz(x) for x in shipped_test_primes(512))
    n = p * q
    m = (p - 1) // 2 * ((q - 1) // 2)
    nm = n * m
    secrets_ = [2 * s.secret % nm for s in c.key_shares]  # a sharing of 2d
    delta = math.factorial(pk.parties)
    vks = tuple(gmpy2.powmod(pk.v, delta * s, pk.public.nsquare) for s in secrets_)
    wrong = ThresholdPublicKey(pk.public, pk.k, pk.parties, pk.v, vks)
    shifted = [KeyShare(wrong, i + 1, s) for i, s in enumerate(secrets_)]
    for s in shifted:
        s.check()  # the per-share check passes: the dealer was consistent
    wrong.check_verification_keys()
    params = dataclasses.replace(c.params, public=wrong)
    from protocols.gen_reveal_dp import COMBINER_SEED, member_seed
    from psc.dp.accounting import ApproxDP
    from psc.protocol.signing import _signing_key_from_seed

    members = [
        CommitteeMember(params, s, _signing_key_from_seed(member_seed(s.index)), log_view=c.log)
        for s in shifted
    ]
    import sqlite3

    with pytest.raises((InvalidMessage, ParameterError), match="known-answer"):
        KeyCommittee(
            params,
            _signing_key_from_seed(COMBINER_SEED),
            [LocalLink(x) for x in members],
            sqlite3.connect(":memory:", isolation_level=None),
            budget=ApproxDP(4, 0),
        )
