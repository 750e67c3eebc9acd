"""Domain-separated Ed25519 signatures on protocol messages (pyca/cryptography).

A signature is made over::

    "psc-sig\\x00" || len(label) (1 byte) || label || body

with ``label = "psc/v<PROTOCOL_VERSION>/<message TYPE>"``, so a signature is bound to one
message type and one protocol version: a signed submission can never be presented as a
receipt, nor a version-1 message as a version-2 one.  ``body`` is the canonical encoding
(:func:`psc.protocol.codec.encode`), signed exactly as sent.

Verification failures raise the one opaque :class:`~psc.exceptions.InvalidMessage`.
Keys come from 32-byte seeds at a private seam (:func:`_signing_key_from_seed`) so test
vectors are fixed; :func:`new_signing_key` uses the OS CSPRNG.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from psc.exceptions import InvalidMessage
from psc.protocol import codec
from psc.protocol.messages import KEY_BYTES, PROTOCOL_VERSION, Message, SignedMessage

M = TypeVar("M", bound=Message)

_PREFIX = b"psc-sig\x00"


def label_for(message_type: str, version: int = PROTOCOL_VERSION) -> bytes:
    """The signature label of a message type: ``psc/v1/submission``."""
    return f"psc/v{version}/{message_type}".encode()


def _signed_bytes(label: bytes, message: bytes) -> bytes:
    if not 0 < len(label) < 256:
        raise ValueError("a signature label must be 1..255 bytes")
    return _PREFIX + bytes([len(label)]) + label + message


def sign(key: Ed25519PrivateKey, label: bytes, message: bytes) -> bytes:
    """Ed25519 signature over the domain-separated ``label || message``."""
    return key.sign(_signed_bytes(label, message))


def verify(public_key: bytes, label: bytes, message: bytes, signature: bytes) -> None:
    """Check a signature made by :func:`sign`; raises :class:`InvalidMessage` if it fails."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            signature, _signed_bytes(label, message)
        )
    except (InvalidSignature, ValueError) as exc:
        raise InvalidMessage("signature does not verify") from exc


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key of a signing key."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _signing_key_from_seed(seed: bytes) -> Ed25519PrivateKey:
    """Private seam: a signing key from a fixed 32-byte seed (test vectors, seeded demos)."""
    if len(seed) != KEY_BYTES:
        raise ValueError("an Ed25519 seed is 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


def new_signing_key(randbytes: Callable[[int], bytes] = os.urandom) -> Ed25519PrivateKey:
    """A fresh signing key from ``randbytes`` (default: the OS CSPRNG)."""
    return _signing_key_from_seed(randbytes(KEY_BYTES))


def seal(message: Message, key: Ed25519PrivateKey) -> bytes:
    """Encode, sign and wrap ``message``: the bytes a party sends."""
    body = codec.encode(message)
    sig = sign(key, label_for(message.TYPE), body)
    return codec.encode(SignedMessage(body=body, signature=sig))


def open_signed(data: bytes, cls: type[M], key_of: Callable[[M], bytes]) -> M:
    """Verify and decode a sealed ``cls`` message.

    ``key_of`` maps the decoded (not yet trusted) message to its sender's registered public
    key; it may raise (e.g. :class:`~psc.exceptions.UnknownParty`) for an unknown sender.
    Nothing from the message may be acted on before this returns.  Raises
    :class:`InvalidMessage` for a malformed wrapper or body or a bad signature.
    """
    wrapper = codec.decode(data, SignedMessage)
    msg = codec.decode(wrapper.body, cls)
    verify(key_of(msg), label_for(cls.TYPE), wrapper.body, wrapper.signature)
    return msg


def digest(data: bytes) -> bytes:
    """SHA-256 of wire bytes: how envelopes, requests and responses are named."""
    return hashlib.sha256(data).digest()
