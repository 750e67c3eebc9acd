"""Shared pieces of the committee attack tests: a corrupt member's moves.

Not a test module (leading underscore).  Every move is made the way a corrupt member
would make it: from its own key, its own honest output, and what it is sent.
"""

from __future__ import annotations

import dataclasses

import gmpy2

from protocols.gen_reveal_dp import Committee, member_seed
from psc.parties.committee import LocalLink, MemberLink
from psc.protocol import codec
from psc.protocol.committee_messages import NoiseShare, RevealTask
from psc.protocol.messages import BlockCiphertext, SignedMessage
from psc.protocol.signing import _signing_key_from_seed, seal


def opened(sealed: bytes, kind: type) -> object:
    """The body of any sealed message (no signature check: the attacker reads its own mail)."""
    return codec.decode(codec.decode(sealed, SignedMessage).body, kind)


class ScalingMember(MemberLink):
    """Member ``index`` (corrupt) answers a task with ``c^(K-1)`` for every task block ``c``
    in place of its noise share, keeping every other field of its honest share and
    signing with its own key: the combined plaintext becomes ``K x + noise``."""

    def __init__(self, inner: LocalLink, c: Committee, factor: int) -> None:
        self.index = inner.index
        self.inner = inner
        self.c = c
        self.factor = factor

    def noise_share(self, sealed_task: bytes) -> bytes:
        honest = opened(self.inner.noise_share(sealed_task), NoiseShare)
        assert isinstance(honest, NoiseShare)
        task = opened(sealed_task, RevealTask)
        assert isinstance(task, RevealTask)
        nsq = self.c.public.public.nsquare
        by_unit = {(b.label, b.block): b.ciphertext for b in task.blocks}
        shares = []
        for b in honest.shares:
            mine = self.c.backend.deserialize(b.ciphertext)
            target = self.c.backend.deserialize(by_unit[(b.label, b.block)])
            scaled = gmpy2.powmod(target.blocks[0], self.factor - 1, nsq)
            evil = dataclasses.replace(mine, blocks=(scaled,))
            shares.append(BlockCiphertext(b.label, b.block, self.c.backend.serialize(evil)))
        body = dataclasses.replace(honest, shares=tuple(shares))
        return seal(body, _signing_key_from_seed(member_seed(self.index)))

    def decryption_share(self, sealed_request: bytes) -> bytes:
        return self.inner.decryption_share(sealed_request)

    def known_answer_share(self) -> bytes:
        return self.inner.known_answer_share()
