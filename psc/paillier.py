"""Paillier keys on gmpy2, compatible with python-paillier (``phe``) in both directions.

**Hazmat.** This module is the raw scheme: no slot layout, no bounds, no authentication.
Use :class:`psc.backends.paillier.PackedPaillier` (or the protocol roles) instead.

Algebra (``g = n + 1``, as phe uses)::

    E(m; r) = (1 + m*n) * r^n  mod n^2
    E(a) * E(b) = E(a + b)          E(a)^k = E(k*a)         (mod n)
    D(c) = L(c^lambda mod n^2) * mu mod n,  L(x) = (x - 1) / n

Decryption uses the CRT as phe does (``hp``, ``hq``).  What leaks: the ciphertext hides
the plaintext under DCR; sizes and the number of ciphertexts are public; a ciphertext is
malleable, so integrity comes from the signed envelope around it, never from Paillier.

Key sizes: 2048-bit modulus minimum (:data:`MIN_KEY_BITS`), 3072 the default for
anything called secure (:data:`DEFAULT_KEY_BITS`).  Smaller keys exist only for tests,
through :func:`_keypair_from_primes` with ``allow_insecure=True``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gmpy2
from gmpy2 import mpz

from psc.exceptions import KeyMismatch, ParameterError

MIN_KEY_BITS = 2048
DEFAULT_KEY_BITS = 3072

#: A source of uniform integers in ``[0, bound)``; the private seam for randomness.
RandBelow = Callable[[int], int]


def _fingerprint(n: int) -> bytes:
    return hashlib.sha256(
        b"psc/paillier-key/v1" + int(n).to_bytes((int(n).bit_length() + 7) // 8, "big")
    ).digest()[:16]


@dataclass(frozen=True)
class PaillierPublicKey:
    """A Paillier public key ``n`` with ``g = n + 1``.

    ``fingerprint`` (16 bytes of a domain-separated SHA-256 of ``n``) travels with every
    ciphertext so operands under different keys are refused rather than mixed.
    """

    n: mpz
    nsquare: mpz = field(init=False, repr=False)
    fingerprint: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = mpz(self.n)
        if n < 15 or n % 2 == 0:
            raise ParameterError("a Paillier modulus must be an odd composite n = p*q")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "nsquare", n * n)
        object.__setattr__(self, "fingerprint", _fingerprint(int(n)))

    @property
    def bits(self) -> int:
        return int(self.n.bit_length())

    @property
    def ciphertext_bytes(self) -> int:
        """Bytes of one serialized ciphertext (an element of Z_{n^2})."""
        return (int(self.nsquare.bit_length()) + 7) // 8

    def raw_encrypt(self, m: int, rn: int) -> mpz:
        """``(1 + m*n) * rn mod n^2`` for ``0 <= m < n`` and ``rn = r^n mod n^2``."""
        return ((mpz(m) * self.n + 1) * rn) % self.nsquare

    def random_rn(self, randbelow: RandBelow = secrets.randbelow) -> mpz:
        """A fresh encryption randomizer ``r^n mod n^2`` with ``r`` uniform in ``Z_n^*``."""
        return self.random_r_rn(randbelow)[1]

    def random_r_rn(self, randbelow: RandBelow = secrets.randbelow) -> tuple[mpz, mpz]:
        """``(r, r^n mod n^2)`` with ``r`` uniform in ``Z_n^*``: the randomizer with its
        opening ``r``, which a prover needs to show what a ciphertext encrypts."""
        while True:
            r = mpz(randbelow(int(self.n)))
            if r > 0 and gmpy2.gcd(r, self.n) == 1:
                return r, gmpy2.powmod(r, self.n, self.nsquare)

    # -- phe interoperability -------------------------------------------------------
    @classmethod
    def from_phe(cls, key: Any) -> PaillierPublicKey:
        """Accept a ``phe.PaillierPublicKey`` (phe always uses ``g = n + 1``)."""
        if int(key.g) != int(key.n) + 1:
            raise KeyMismatch("only phe keys with g = n + 1 are supported")
        return cls(mpz(key.n))

    def to_phe(self) -> Any:
        from phe import paillier

        return paillier.PaillierPublicKey(int(self.n))


@dataclass(frozen=True)
class PaillierPrivateKey:
    """The factorization ``p, q`` of ``public.n``, with CRT decryption constants."""

    public: PaillierPublicKey
    p: mpz
    q: mpz
    _hp: mpz = field(init=False, repr=False)
    _hq: mpz = field(init=False, repr=False)
    _q_inv_p: mpz = field(init=False, repr=False)

    def __post_init__(self) -> None:
        p, q = mpz(self.p), mpz(self.q)
        if p == q or p * q != self.public.n:
            raise KeyMismatch("p * q does not equal the public modulus")
        if p > q:  # phe's convention: p < q
            p, q = q, p
        object.__setattr__(self, "p", p)
        object.__setattr__(self, "q", q)
        object.__setattr__(self, "_hp", self._h(p))
        object.__setattr__(self, "_hq", self._h(q))
        object.__setattr__(self, "_q_inv_p", gmpy2.invert(q, p))

    def _h(self, x: mpz) -> mpz:
        xsq = x * x
        g = self.public.n + 1
        return gmpy2.invert((gmpy2.powmod(g, x - 1, xsq) - 1) // x, x)

    def raw_decrypt(self, c: int) -> mpz:
        """``D(c)`` in ``[0, n)``.  Raises :class:`KeyMismatch` if ``c`` is not in ``Z_{n^2}^*``."""
        c = mpz(c)
        if not 0 < c < self.public.nsquare:
            raise KeyMismatch("ciphertext is not an element of Z_{n^2} for this key")
        p, q = self.p, self.q
        mp = (gmpy2.powmod(c, p - 1, p * p) - 1) // p * self._hp % p
        mq = (gmpy2.powmod(c, q - 1, q * q) - 1) // q * self._hq % q
        # CRT: m = mq + q * ((mp - mq) * q^-1 mod p)
        return mq + q * ((mp - mq) * self._q_inv_p % p)

    @classmethod
    def from_phe(cls, key: Any) -> PaillierPrivateKey:
        """Accept a ``phe.PaillierPrivateKey``."""
        return cls(PaillierPublicKey.from_phe(key.public_key), mpz(key.p), mpz(key.q))

    def to_phe(self) -> Any:
        from phe import paillier

        return paillier.PaillierPrivateKey(self.public.to_phe(), int(self.p), int(self.q))


def generate_keypair(bits: int = DEFAULT_KEY_BITS) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    """A fresh keypair from phe's generator (primes from the OS CSPRNG).

    Raises :class:`ParameterError` below :data:`MIN_KEY_BITS`.
    """
    if bits < MIN_KEY_BITS:
        raise ParameterError(
            f"{bits}-bit Paillier keys are insecure; use at least {MIN_KEY_BITS} "
            f"({DEFAULT_KEY_BITS} for anything called secure). Tests use psc.testing.paillier_keypairs()."
        )
    from phe import paillier

    _, priv = paillier.generate_paillier_keypair(n_length=bits)
    return _keypair_from_primes(int(priv.p), int(priv.q))


def _keypair_from_primes(
    p: int, q: int, *, allow_insecure: bool = False
) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    """Private seam: a keypair from given primes (fixed test vectors, seeded test keys)."""
    n = mpz(p) * mpz(q)
    if n.bit_length() < MIN_KEY_BITS and not allow_insecure:
        raise ParameterError(
            f"modulus of {n.bit_length()} bits is below the {MIN_KEY_BITS}-bit minimum"
        )
    if not (gmpy2.is_prime(p) and gmpy2.is_prime(q)):
        raise ParameterError("p and q must be prime")
    if gmpy2.gcd(n, (mpz(p) - 1) * (mpz(q) - 1)) != 1:
        raise ParameterError("gcd(n, phi(n)) must be 1")
    pub = PaillierPublicKey(n)
    return pub, PaillierPrivateKey(pub, mpz(p), mpz(q))
