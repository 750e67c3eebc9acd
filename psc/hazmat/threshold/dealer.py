"""The trusted dealer of threshold Paillier: safe primes, the sharing polynomial, key shares.

**Hazmat.**  The dealer learns every secret and must erase them (``protocols/keygen.md``).
The scheme: :mod:`psc.hazmat.threshold`.
"""

from __future__ import annotations

import math
import secrets

import gmpy2
from gmpy2 import mpz

from psc.exceptions import (
    ParameterError,
)
from psc.hazmat.paillier import DEFAULT_KEY_BITS, MIN_KEY_BITS, PaillierPublicKey, RandBelow
from psc.hazmat.threshold.keys import (
    MAX_PARTIES,
    KeyShare,
    ThresholdPublicKey,
    _in_group,
    is_known_test_modulus,
)

__all__ = [
    "deal",
]


# -- safe primes -------------------------------------------------------------------------
_SIEVE = math.prod(int(p) for p in range(3, 2000, 2) if gmpy2.is_prime(p))


def _generate_safe_prime(bits: int, randbelow: RandBelow) -> mpz:
    """A safe prime ``p = 2p' + 1`` of exactly ``bits`` bits with its top two bits set.

    Top two bits set make the product of two such primes exactly ``2 * bits`` long.  The
    search walks ``p' = 5 mod 6`` (else ``3 | p`` or ``2 | p'``) from a random start and
    sieves ``p' (2p'+1)`` against the odd primes below 2000 before any primality test.
    """
    if bits < 16:
        raise ParameterError(f"safe primes of {bits} bits are too small")
    lo = mpz(3) << (bits - 3)  # p' in [3 * 2^(bits-3), 2^(bits-1))
    span = (mpz(1) << (bits - 1)) - lo
    while True:
        pp = lo + mpz(randbelow(int(span)))
        pp += (5 - pp % 6) % 6
        for _ in range(4096):
            if pp.bit_length() != bits - 1:
                break
            p = 2 * pp + 1
            if (
                gmpy2.gcd(pp * p, _SIEVE) == 1
                and gmpy2.is_strong_prp(pp, 2)
                and gmpy2.is_strong_prp(p, 2)
                and gmpy2.is_prime(pp, 40)
                and gmpy2.is_prime(p, 40)
            ):
                return p
            pp += 6


def _check_safe_primes(p: int, q: int, parties: int) -> tuple[mpz, mpz]:
    p, q = mpz(p), mpz(q)
    if p == q:
        raise ParameterError("p and q must be distinct")
    for x in (p, q):
        if x < 11 or not (gmpy2.is_prime(x, 40) and gmpy2.is_prime((x - 1) // 2, 40)):
            raise ParameterError("p and q must be safe primes (p = 2p' + 1 with p' prime)")
    pp, qq = (p - 1) // 2, (q - 1) // 2
    if gmpy2.gcd(p * q, pp * qq) != 1:
        raise ParameterError("gcd(n, p'q') must be 1 (p' or q' equals p or q)")
    if parties >= min(pp, qq):
        raise ParameterError("the number of parties must be below p' and q'")
    return p, q


# -- dealer ------------------------------------------------------------------------------
def deal(
    k: int,
    parties: int,
    *,
    bits: int = DEFAULT_KEY_BITS,
    randbelow: RandBelow = secrets.randbelow,
    allow_insecure: bool = False,
    _primes: tuple[int, int] | None = None,
) -> tuple[ThresholdPublicKey, list[KeyShare]]:
    """Trusted dealer: a ``k``-of-``parties`` key with a ``bits``-bit modulus and its shares.

    Runs the key generation in the module docstring.  **Trust:** the dealer sees the
    factorization and every share and could decrypt everything; it must hand share ``i``
    to party ``i`` over a private channel and erase ``p, q, d`` and all shares
    (``protocols/keygen.md``).  Each holder then runs :meth:`KeyShare.check` and anyone
    :meth:`ThresholdPublicKey.check_verification_keys`.

    ``randbelow`` supplies every random choice (primes, polynomial, ``v``), so a fixed
    source gives a fixed key.  ``_primes`` is the private seam for fixed test safe primes.
    Raises :class:`ParameterError` for ``bits`` below :data:`~psc.hazmat.paillier.MIN_KEY_BITS`
    (unless ``allow_insecure``, for tests), a modulus of the wrong size, non-safe primes,
    or ``k``/``parties`` out of range.  Safe-prime search is slow in Python (tens of
    seconds to minutes at 2048 bits).
    """
    if not 1 <= parties <= MAX_PARTIES:
        raise ParameterError(f"parties must be in 1..{MAX_PARTIES}, got {parties}")
    if not 1 <= k <= parties:
        raise ParameterError(f"threshold k must be in 1..{parties}, got {k}")
    if bits < MIN_KEY_BITS and not allow_insecure:
        raise ParameterError(
            f"{bits}-bit threshold keys are insecure; use at least {MIN_KEY_BITS} "
            "(allow_insecure=True is for tests only)"
        )
    if bits % 2:
        raise ParameterError(f"bits must be even (two primes of bits/2), got {bits}")
    if _primes is None:
        p = _generate_safe_prime(bits // 2, randbelow)
        q = _generate_safe_prime(bits // 2, randbelow)
        while q == p:
            q = _generate_safe_prime(bits // 2, randbelow)
    else:
        p, q = mpz(_primes[0]), mpz(_primes[1])
    p, q = _check_safe_primes(p, q, parties)
    n = p * q
    if is_known_test_modulus(n) and not allow_insecure:
        raise ParameterError(
            "these are psc's shipped test safe primes: their factorization is public, so "
            "the key protects nothing; deal fresh primes (allow_insecure=True is for tests only)"
        )
    if n.bit_length() != bits:
        raise ParameterError(f"the primes give a {n.bit_length()}-bit modulus, not {bits}")
    m = (p - 1) // 2 * ((q - 1) // 2)
    nm = n * m
    nsq = n * n
    d = m * gmpy2.invert(m, n)  # d = 0 mod m, d = 1 mod n
    coeffs = [d] + [mpz(randbelow(int(nm))) for _ in range(k - 1)]
    secrets_ = []
    for i in range(1, parties + 1):
        acc = mpz(0)
        for a in reversed(coeffs):  # Horner
            acc = (acc * i + a) % nm
        secrets_.append(acc)
    while True:
        r = mpz(randbelow(int(nsq)))
        if _in_group(r, n, nsq):
            break
    v = r * r % nsq
    delta = math.factorial(parties)
    vks = tuple(gmpy2.powmod(v, delta * s, nsq) for s in secrets_)
    public = ThresholdPublicKey(PaillierPublicKey(n), k, parties, v, vks)
    return public, [KeyShare(public, i + 1, s) for i, s in enumerate(secrets_)]
