"""The combiner's checks of members' replies: signature, binding to the request, share proofs.

A reply that fails any check excludes its member, with the reason; the combiner goes on
with the others (``protocols/reveal-dp.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from psc.exceptions import (
    InvalidMessage,
)
from psc.hazmat.threshold.encoding import decode_packed_share
from psc.hazmat.threshold.keys import PackedDecryptionShare, ThresholdPublicKey
from psc.parties.committee.params import (
    CommitteeParameters,
)
from psc.parties.committee.transport import MemberLink
from psc.protocol.committee_messages import (
    KnownAnswerShare,
    MemberDecryptionShare,
)
from psc.protocol.signing import open_signed


def _open_member_share(
    params: CommitteeParameters,
    link: MemberLink,
    reply: bytes | Exception,
    task_hash: bytes,
    req_hash: bytes,
    excluded: dict[int, str],
) -> PackedDecryptionShare | None:
    """Combiner: open one member's reply to a decryption request (signature, binding,
    framing); the share's proof is checked when it is combined.  A failure excludes the
    member, with the reason."""
    if isinstance(reply, Exception):
        excluded[link.index] = f"no decryption share: {reply}"
        return None
    try:
        msg = open_signed(
            reply, MemberDecryptionShare, _constant(params.member_keys[link.index - 1])
        )
        if (msg.member, msg.task_hash, msg.request_hash) != (link.index, task_hash, req_hash):
            raise InvalidMessage("decryption share answers another request")
        share = decode_packed_share(params.public, msg.share)
        if share.index != link.index:
            raise InvalidMessage("decryption share carries another member's index")
    except InvalidMessage as exc:
        excluded[link.index] = f"bad decryption share: {exc}"
        return None
    return share


def _share_is_valid(
    pk: ThresholdPublicKey, blocks: Sequence[int], share: PackedDecryptionShare
) -> bool:
    """Verification pool worker: does a packed share's proof verify?"""
    try:
        pk.verify_packed_share(blocks, share)
    except InvalidMessage:
        return False
    return True


def _key_of(key: bytes) -> Callable[[KnownAnswerShare], bytes]:
    return lambda m: key


def _constant(key: bytes) -> Callable[[MemberDecryptionShare], bytes]:
    return lambda m: key
