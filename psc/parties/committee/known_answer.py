"""The known-answer decryption every committee runs at setup.

A dealer can hand out key shares that are each consistent with a published verification
key and yet are shares of the wrong secret (every per-share check passes, decryption
yields garbage).  So at every setup the combiner asks the members for proved decryption
shares of one *public* ciphertext whose plaintext and randomness everyone derives from
the key's fingerprint, combines ``k`` of them and compares.  Decrypting it reveals
nothing: anyone can compute its plaintext.
"""

from __future__ import annotations

import hashlib

import gmpy2
from gmpy2 import mpz

from psc.hazmat.threshold.keys import ThresholdPublicKey

_DOMAIN = b"psc/committee/known-answer/v1"


def _derive(public: ThresholdPublicKey, label: bytes, modulus: mpz) -> mpz:
    width = (int(modulus.bit_length()) + 7) // 8 + 16  # 128 extra bits: negligible bias
    stream = hashlib.shake_256(_DOMAIN + label + public.fingerprint).digest(width)
    return mpz(int.from_bytes(stream, "big")) % modulus


def known_answer(public: ThresholdPublicKey) -> tuple[int, int]:
    """``(m, c)``: the public known-answer plaintext and its ciphertext
    ``c = (1 + m n) r^n mod n^2`` (``m``, ``r`` derived from the key's fingerprint)."""
    n, nsq = public.public.n, public.public.nsquare
    m = _derive(public, b"/plaintext", n)
    r = _derive(public, b"/randomness", n)
    while r == 0 or gmpy2.gcd(r, n) != 1:  # negligible; keeps the derivation total
        r = (r + 1) % n
    c = (1 + m * n) * gmpy2.powmod(r, n, nsq) % nsq
    return int(m), int(c)
