"""Adversary: a corrupt committee member (up to k-1 of them; protocols/threat-model.md).

Attack 1 of issue 9: a member sends ``c^(K-1)`` (the target block raised to a power) as
its "noise share", correctly signed.  Without a proof of plaintext knowledge the combined
plaintext is ``K x + noise`` and dividing by ``K`` gives the exact score.  Required: the
share is refused, its member named, and the reveal completes with the honest members
with a value that does not depend on ``K``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from protocols.gen_reveal_dp import (
    CAPS,
    PERIOD,
    SUMS,
    TARGET,
    live_blocks,
    make_committee,
    member_seed,
)
from psc.parties.committee import LocalLink
from psc.protocol.committee_messages import NoiseShare
from psc.protocol.signing import _signing_key_from_seed, seal
from tests.attacks._committee_fixtures import ScalingMember, opened


@pytest.mark.parametrize("factor", [2**16, 3])
def test_a_scaled_noise_share_is_refused_and_its_member_named(factor: int) -> None:
    public = make_committee(draw=lambda: 0)  # the public parameters the member holds

    def links(members):
        out = [LocalLink(m) for m in members]
        out[4] = ScalingMember(out[4], public, factor)
        return out

    c = make_committee(draw=lambda: 0, links=links, quorum=4)  # 4 of 5 shares suffice
    sums = np.array(SUMS, dtype=np.int64)
    caps = {k: np.array(v, dtype=np.int64) for k, v in CAPS.items()}
    score, cap_blocks = live_blocks(c, sums, caps)
    res = c.reveal(PERIOD, [TARGET], score, cap_blocks)
    assert 5 in res.excluded, "the scaling member must be excluded and named"
    S = c.params.layout.slots
    seen = {(label, j): v for label, j, v in c.seen}
    # with every honest noise share forced to 0 the combiner sees the exact sum: never K x
    assert int(seen[("score", TARGET // S)][TARGET % S]) == SUMS[TARGET]


class CopyingMember(LocalLink):
    """Member 5 (corrupt) answers with member 4's noise share (whose plaintext it does not
    know), re-labelled with its own index and signed with its own key: were it accepted,
    member 4's noise would count twice and cancel nothing, but it would let a coalition
    choose its share as a function of an honest one."""

    def __init__(self, inner: LocalLink, other: LocalLink) -> None:
        super().__init__(inner.member)
        self.other = other

    def noise_share(self, sealed_task: bytes) -> bytes:
        copied = opened(self.other.member.noise_share(sealed_task), NoiseShare)
        assert isinstance(copied, NoiseShare)
        body = dataclasses.replace(copied, member=self.index)
        return seal(body, _signing_key_from_seed(member_seed(self.index)))


def test_a_copied_noise_share_fails_its_proof_and_its_sender_is_named() -> None:
    def links(members):
        out = [LocalLink(m) for m in members]
        out[4] = CopyingMember(out[4], out[3])
        return out

    c = make_committee(draw=lambda: 0, links=links, quorum=4)
    sums = np.array(SUMS, dtype=np.int64)
    caps = {k: np.array(v, dtype=np.int64) for k, v in CAPS.items()}
    score, cap_blocks = live_blocks(c, sums, caps)
    res = c.reveal(PERIOD, [TARGET], score, cap_blocks)
    assert 5 in res.excluded and "proof" in res.excluded[5]
