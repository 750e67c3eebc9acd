"""Adversary: the aggregator, handing the key holder blocks of its own making.

Attack 2 of issue 9 (second half): the reveal request's blocks were the aggregator's word,
so a dishonest aggregator could send ``c^K`` (or ``c * E(d)``) and turn the trusted key
holder's decryption into a score oracle.  Required: the key holder recomputes the live
sums from the log and refuses any other block; nothing is decrypted.
"""

from __future__ import annotations

import dataclasses

import gmpy2
import pytest

from psc.catalog import Catalog
from psc.exceptions import InvalidMessage
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.parties.relying_party import read_grades
from psc.protocol import codec
from psc.protocol.messages import BlockCiphertext, RevealRequest, SignedMessage
from psc.protocol.signing import seal
from tests.attacks._deployment import world

Keypair = tuple[PaillierPublicKey, PaillierPrivateKey]


def _forged(w, sealed_rr: bytes, change) -> bytes:
    """The aggregator re-signs its own reveal request with every block passed through
    ``change`` (it holds the aggregator key)."""
    rr = codec.decode(codec.decode(sealed_rr, SignedMessage).body, RevealRequest)
    backend = w.d.params.backend()
    blocks = []
    for b in rr.blocks:
        ct = backend.deserialize(b.ciphertext)
        evil = dataclasses.replace(ct, blocks=(change(ct.blocks[0]),))
        blocks.append(BlockCiphertext(b.label, b.block, backend.serialize(evil)))
    return seal(dataclasses.replace(rr, blocks=tuple(blocks)), w.d.aggregator._key)


@pytest.mark.parametrize("how", ["scaled", "offset"])
def test_the_key_holder_refuses_blocks_that_are_not_the_logged_live_sums(
    city: Catalog, test_keypair: Keypair, how: str
) -> None:
    w = world(city, keypair=test_keypair)
    pk = w.d.params.public_key
    nsq = pk.nsquare
    K = 2**16
    offset = pk.raw_encrypt(12345, 1)  # E(12345; r = 1)

    def change(c: int) -> int:
        return int(gmpy2.powmod(c, K, nsq)) if how == "scaled" else int(c * offset % nsq)

    req = w.d.registry.grade_request([3], w.period)
    honest = w.d.aggregator.prepare_reveal(req)
    with pytest.raises(InvalidMessage, match="not the live sum"):
        w.d.key_holder.answer(_forged(w, honest, change))
    # the honest request still works: the refusal changed nothing
    answer = w.d.key_holder.answer(honest)
    w.d.key_holder.check_logged(answer, w.d.aggregator.release(answer.notice))
    assert set(read_grades(w.d.params, req, answer.response)) == {3}


def test_the_key_holder_refuses_a_tree_head_the_log_does_not_have(
    city: Catalog, test_keypair: Keypair
) -> None:
    w = world(city, keypair=test_keypair)
    req = w.d.registry.grade_request([4], w.period)
    rr = codec.decode(
        codec.decode(w.d.aggregator.prepare_reveal(req), SignedMessage).body, RevealRequest
    )
    lie = seal(dataclasses.replace(rr, tree_root=b"\x00" * 32), w.d.aggregator._key)
    with pytest.raises(InvalidMessage, match="root"):
        w.d.key_holder.answer(lie)
