"""Fiat-Shamir transcripts: every public value of a proof, hashed in order, domain-separated.

A :class:`Transcript` absorbs labelled, length-prefixed byte strings into SHA-256 and
squeezes challenges from SHAKE-256 over the running digest and a label, so a challenge
depends on everything absorbed before it (the context, the key, every ciphertext and every
first-move commitment) and on nothing else.  Labels keep fields apart; the length prefix
keeps ``("ab", "c")`` apart from ``("a", "bc")``.

Nothing here is secret: a transcript is recomputed by every verifier.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def int_bytes(x: int, width: int) -> bytes:
    """``x`` as exactly ``width`` big-endian bytes (``ValueError`` if it does not fit)."""
    return int(x).to_bytes(width, "big")


class Transcript:
    """A running Fiat-Shamir transcript for one proof (``domain`` names the proof system)."""

    def __init__(self, domain: bytes) -> None:
        self._h = hashlib.sha256()
        self.absorb(b"domain", domain)

    def absorb(self, label: bytes, data: bytes) -> None:
        """Append ``label`` and ``data``, each prefixed by its 8-byte length."""
        for part in (label, data):
            self._h.update(len(part).to_bytes(8, "big"))
            self._h.update(part)

    def absorb_ints(self, label: bytes, values: Iterable[int], width: int) -> None:
        """Append integers, each as ``width`` big-endian bytes, under one label."""
        self.absorb(label, b"".join(int_bytes(v, width) for v in values))

    def challenges(self, label: bytes, count: int, bits: int) -> list[int]:
        """``count`` integers uniform in ``[0, 2^bits)``, bound to everything absorbed so far.

        The label and the count are absorbed first, so later challenges differ from these.
        """
        self.absorb(b"challenge", label + b"/" + str(count).encode())
        nbytes = (bits + 7) // 8
        stream = hashlib.shake_256(self._h.copy().digest()).digest(count * nbytes)
        mask = (1 << bits) - 1
        return [
            int.from_bytes(stream[i * nbytes : (i + 1) * nbytes], "big") & mask
            for i in range(count)
        ]

    def challenge(self, label: bytes, bits: int) -> int:
        """One challenge uniform in ``[0, 2^bits)``."""
        return self.challenges(label, 1, bits)[0]
