"""Adversary: up to k-1 deviating members of the exact-reveal committee.

Claims: a member that sends a wrong decryption share, or decrypts another ciphertext than
the one the log determines, is detected and named when more than k members answer
(k + 2 answers pin it down); the reveal is aborted and nothing is released.  With exactly
k answers a wrong share cannot be detected (no lattice proofs of correct decryption): it
yields a vector that is either refused as "not a grade vector" or a wrong grade (stated
in the threat model).  k-1 members' key shares are uniform (tests/test_exact_keys.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from psc.exceptions import InsufficientShares
from psc.parties.exact.member import ExactMember
from psc.protocol.exact_messages import ExactDecryptionShare
from psc.protocol.signing import open_signed, seal
from tests.attacks._exact_fixtures import RH, deployment, submit_uniform


@pytest.fixture(scope="module")
def dep():  # type: ignore[no-untyped-def]
    d = deployment(3, 5)
    submit_uniform(d, 0, -3)
    return d


class _Shifting(ExactMember):
    """Adds D * shift to coefficient 0 of its honest share: moves every decoded slot."""

    def __init__(self, inner: ExactMember, shift: int) -> None:
        self.__dict__.update(inner.__dict__)
        self._inner = inner
        self._shift = shift

    def decryption_share(self, sealed_task: bytes) -> bytes:
        msg = open_signed(
            self._inner.decryption_share(sealed_task),
            ExactDecryptionShare,
            lambda m: self.params.member_keys[m.member],
        )
        words = (
            np.frombuffer(msg.share, dtype="<u8")
            .astype(np.uint64)
            .reshape(self.ring.levels, self.ring.n)
        )
        poly = np.zeros(self.ring.n, dtype=object)
        poly[0] = (self.ring.q // self.ring.t) * self._shift
        words = self.ring.add(words, self.ring.reduce_signed(poly))
        bad = ExactDecryptionShare(
            msg.member,
            msg.task_hash,
            msg.ciphertext_digest,
            np.ascontiguousarray(words, dtype="<u8").tobytes(),
        )
        return seal(bad, self._inner._key)


def _with(dep, i: int, member):  # type: ignore[no-untyped-def]
    saved = dep.combiner.members[i]
    dep.combiner.members[i] = member
    return saved


def test_a_wrong_share_among_k_plus_two_is_named_and_nothing_released(dep) -> None:  # type: ignore[no-untyped-def]
    saved = _with(dep, 4, _Shifting(dep.members[4], 5))
    try:
        with pytest.raises(InsufficientShares, match="suspects") as info:
            dep.reveal(dep.request(RH, period=0, block=0, slots=(1,)))
        assert info.value.bad == (4,)
    finally:
        dep.combiner.members[4] = saved


def test_a_wrong_share_among_k_plus_one_aborts(dep) -> None:  # type: ignore[no-untyped-def]
    saved = _with(dep, 2, _Shifting(dep.members[2], 1))
    try:
        with pytest.raises(InsufficientShares) as info:
            dep.reveal(dep.request(RH, period=0, block=0, slots=(1,)), ask=(1, 2, 3, 5))
        assert 2 in info.value.bad
    finally:
        dep.combiner.members[2] = saved


def test_with_exactly_k_answers_a_wrong_share_is_not_a_grade_vector(dep) -> None:  # type: ignore[no-untyped-def]
    # the documented limit: no cross-check is possible; the masked slots then decode
    # non-zero and the combiner refuses to release anything
    saved = _with(dep, 2, _Shifting(dep.members[2], 1))
    try:
        with pytest.raises(InsufficientShares, match="not a grade vector"):
            dep.reveal(dep.request(RH, period=0, block=0, slots=(1,)), ask=(1, 2, 3))
    finally:
        dep.combiner.members[2] = saved


class _OtherCiphertext(ExactMember):
    """Decrypts the ciphertext of another block's request (a score oracle attempt would
    need the combiner to accept a share for a ciphertext other members did not compute)."""

    def __init__(self, inner: ExactMember, other_request: bytes, dep) -> None:  # type: ignore[no-untyped-def]
        self.__dict__.update(inner.__dict__)
        self._inner = inner
        self._other = other_request
        self._dep = dep

    def decryption_share(self, sealed_task: bytes) -> bytes:
        from tests.attacks._exact_fixtures import task_for

        share = self._inner.decryption_share(task_for(self._dep, self._other))
        msg = open_signed(share, ExactDecryptionShare, lambda m: self.params.member_keys[m.member])
        from psc.protocol.signing import digest

        forged = ExactDecryptionShare(
            msg.member, digest(sealed_task), msg.ciphertext_digest, msg.share
        )
        return seal(forged, self._inner._key)


def test_a_member_decrypting_another_ciphertext_is_named(dep) -> None:  # type: ignore[no-untyped-def]
    other = dep.request(RH, period=0, block=0, slots=(2,))
    saved = _with(dep, 5, _OtherCiphertext(dep.members[5], other, dep))
    try:
        with pytest.raises(InsufficientShares, match="another ciphertext") as info:
            dep.reveal(dep.request(RH, period=0, block=0, slots=(1,)))
        assert info.value.bad == (5,)
    finally:
        dep.combiner.members[5] = saved
    # and the honest committee still answers
    out = dep.reveal(dep.request(RH, period=0, block=0, slots=(1,)))
    assert [g.grade for g in out.grades] == ["B"]
