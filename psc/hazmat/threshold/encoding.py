"""The byte encoding of threshold Paillier decryption shares (``protocols/decryption-shares.md``)."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from gmpy2 import mpz

from psc.exceptions import (
    InvalidMessage,
)
from psc.hazmat.threshold.keys import (
    DecryptionShare,
    PackedDecryptionShare,
    ShareProof,
    ThresholdPublicKey,
    _fixed,
)

__all__ = [
    "decode_packed_share",
    "decode_share",
    "encode_packed_share",
    "encode_share",
]

SHARE_MAGIC = b"PSCD"
SHARE_VERSION = 1
KIND_SINGLE = 1
KIND_PACKED = 2
_SHARE_HEADER = struct.Struct(">4sBBHI")  # magic, version, kind, index, count


# -- wire encoding (protocols/decryption-shares.md) ---------------------------------------
def _encode(
    pk: ThresholdPublicKey, kind: int, index: int, values: Sequence[mpz], proof: ShareProof
) -> bytes:
    w = pk.element_bytes
    head = _SHARE_HEADER.pack(SHARE_MAGIC, SHARE_VERSION, kind, index, len(values))
    body = b"".join(_fixed(x, w) for x in values)
    return head + body + _fixed(proof.challenge, 32) + _fixed(proof.response, pk.response_bytes)


def _decode(
    pk: ThresholdPublicKey, kind: int, data: bytes
) -> tuple[int, tuple[mpz, ...], ShareProof]:
    if len(data) < _SHARE_HEADER.size:
        raise InvalidMessage("decryption share is truncated")
    magic, version, got_kind, index, count = _SHARE_HEADER.unpack_from(data)
    if magic != SHARE_MAGIC or version != SHARE_VERSION or got_kind != kind:
        raise InvalidMessage("not a psc decryption share of the expected kind and version")
    if kind == KIND_SINGLE and count != 1:
        raise InvalidMessage("a single decryption share carries exactly one value")
    w, rb = pk.element_bytes, pk.response_bytes
    if len(data) != _SHARE_HEADER.size + count * w + 32 + rb:
        raise InvalidMessage("decryption share has the wrong length (truncated or padded)")
    off = _SHARE_HEADER.size
    values = tuple(
        mpz(int.from_bytes(data[off + j * w : off + (j + 1) * w], "big")) for j in range(count)
    )
    off += count * w
    e = int.from_bytes(data[off : off + 32], "big")
    z = mpz(int.from_bytes(data[off + 32 :], "big"))
    return index, values, ShareProof(e, z)


def encode_share(pk: ThresholdPublicKey, share: DecryptionShare) -> bytes:
    """``PSCD | 1 | kind=1 | index u16 | count=1 u32 | value | e (32) | z`` (big-endian)."""
    return _encode(pk, KIND_SINGLE, share.index, (share.value,), share.proof)


def decode_share(pk: ThresholdPublicKey, data: bytes) -> DecryptionShare:
    """Parse a single decryption share (not verified: call :meth:`ThresholdPublicKey.verify_share`).

    Raises :class:`InvalidMessage` for bad framing or length.
    """
    index, values, proof = _decode(pk, KIND_SINGLE, data)
    return DecryptionShare(index, values[0], proof)


def encode_packed_share(pk: ThresholdPublicKey, share: PackedDecryptionShare) -> bytes:
    """``PSCD | 1 | kind=2 | index u16 | B u32 | B values | e (32) | z`` (big-endian)."""
    return _encode(pk, KIND_PACKED, share.index, share.values, share.proof)


def decode_packed_share(pk: ThresholdPublicKey, data: bytes) -> PackedDecryptionShare:
    """Parse a packed decryption share (not verified).  Raises :class:`InvalidMessage`."""
    index, values, proof = _decode(pk, KIND_PACKED, data)
    return PackedDecryptionShare(index, values, proof)
