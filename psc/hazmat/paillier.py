"""Paillier keys on gmpy2, compatible with python-paillier (``phe``) in both directions.

**Hazmat.** This module is the raw scheme: no slot layout, no bounds, no authentication.
Use :class:`psc.hazmat.backends.paillier.PackedPaillier` (or the protocol roles) instead.

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

**Short-exponent randomizers** (:class:`ShortExponentRandomizer`), after Damgard, Jurik and
Nielsen, "A generalization of Paillier's public-key system with applications to electronic
voting", IJIS 9(6), 2010 (DJN).  An encryptor draws ``x`` in ``Z_n^*`` once,
keeps ``h = -x^2 mod n`` and ``h_s = h^n mod n^2`` secret, and encrypts with::

    r = h^alpha mod n,   r^n = h_s^alpha mod n^2,   alpha uniform in [1, 2^l)

(``(h^alpha mod n)^n = h_s^alpha mod n^2`` because ``a = b mod n`` implies ``a^n = b^n mod
n^2``), so the ciphertext is an ordinary Paillier ciphertext: the same keys and phe decrypt
it, and ``(m, r)`` is an ordinary opening for proofs.  Both powers come from fixed-base
tables (:class:`FixedBaseTable`), about ``l/w`` multiplications instead of a full
``|n|``-bit exponentiation.  *Assumption* (DJN's, in addition to DCR): ``h^alpha`` for a
short ``alpha`` is indistinguishable from a uniform element of the subgroup ``<h>``; the best
known attack on a short exponent is generic (Pollard's lambda method, about ``2^(l/2)``
operations; the order of ``<h>`` is unknown without the factorization, so Pohlig-Hellman
shortcuts need factoring first).  Default ``l`` (:func:`short_exponent_bits`): ``4s`` bits for
a modulus of security level ``s`` (NIST SP 800-57 Part 1 rev. 5, table 2): 448 bits at 2048
(s = 112), 512 at 3072 (s = 128), twice the ``2s`` bits that bring the lambda method to ``2^s``
(the margin is psc's choice for an assumption less studied than DCR).  Longer exponents, up
to ``|n|`` bits (``ceil(|n|/2)`` is a common conservative choice), through ``exponent_bits``.
Below ``2s`` bits is refused.  ``h`` is the encryptor's secret (DJN publish ``h_s``; keeping it
private gives an adversary strictly less), so it adds nothing to the public key.
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
#: default window of the fixed-base tables (:func:`best_window` sizes them for a known
#: count): ``ceil(l/8)`` multiplications per power, tables of ``ceil(l/8) * 255`` elements
#: (7 MB mod ``n^2`` at 2048 bits, ``l = 448``)
FIXED_BASE_WINDOW = 8

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


# ----------------------------------------------------------------------------------------
# short-exponent (DJN) randomizers


def security_bits(modulus_bits: int) -> int:
    """Security level in bits of a factoring-based modulus of ``modulus_bits`` bits (NIST SP
    800-57 Part 1 rev. 5, table 2: 1024 -> 80, 2048 -> 112, 3072 -> 128, 7680 -> 192,
    15360 -> 256; a size between two rows gets the lower level)."""
    level = 80
    for bits, s in ((2048, 112), (3072, 128), (7680, 192), (15360, 256)):
        if modulus_bits >= bits:
            level = s
    return level


def short_exponent_bits(modulus_bits: int) -> int:
    """The default DJN exponent length ``4 * security_bits(modulus_bits)`` (see the module
    doc): 448 at 2048 bits, 512 at 3072."""
    return 4 * security_bits(modulus_bits)


def best_window(exponent_bits: int, count: int) -> int:
    """The fixed-base window in ``1..10`` that minimizes the multiplications of building a
    table and then computing ``count`` powers: ``ceil(l/w) (2^w - 1) + count (ceil(l/w) - 1)``
    (a few dozen powers favour small tables, thousands favour ``w = 8`` or more; the cap
    keeps a 448-bit table mod ``n^2`` at 2048 bits under 24 MB)."""

    def cost(w: int) -> int:
        rows = -(-exponent_bits // w)
        return rows * ((1 << w) - 1) + max(count, 0) * (rows - 1)

    return min(range(1, 11), key=cost)


class FixedBaseTable:
    """``g^e mod m`` for one fixed ``g`` and ``0 <= e < 2^exponent_bits``, by fixed-base
    windowing (Brickell, Gordon, McCurley and Wilson, "Fast exponentiation with
    precomputation", EUROCRYPT 1992).

    Row ``i`` holds ``g^(j * 2^(w*i)) mod m`` for ``j < 2^w``; ``g^e`` is the product of one
    entry per ``w``-bit digit of ``e``: at most ``ceil(exponent_bits / w) - 1``
    multiplications, no squarings.  Exponents are secret: the digit pattern drives the
    lookups (no constant-time claim, as for gmpy2's own ``powmod``).  Raises
    :class:`ParameterError` for an exponent outside the table's range.
    """

    def __init__(
        self, base: int, modulus: int, exponent_bits: int, window: int = FIXED_BASE_WINDOW
    ) -> None:
        if exponent_bits < 1 or not 1 <= window <= 16:
            raise ParameterError(
                "a fixed-base table needs exponent_bits >= 1 and 1 <= window <= 16"
            )
        self.modulus = mpz(modulus)
        self.exponent_bits = exponent_bits
        self.window = window
        rows: list[list[mpz]] = []
        g = mpz(base) % self.modulus
        for _ in range(-(-exponent_bits // window)):
            row = [mpz(1), g]
            for _ in range(2, 1 << window):
                row.append(row[-1] * g % self.modulus)
            rows.append(row)
            g = row[-1] * g % self.modulus  # g^(2^w) of this row: the next row's base
        self._rows = rows

    def pow(self, exponent: int) -> mpz:
        """``g^exponent mod m``."""
        e = int(exponent)
        if not 0 <= e < 1 << self.exponent_bits:
            raise ParameterError(f"exponent outside [0, 2^{self.exponent_bits}) for this table")
        mask, w, m = (1 << self.window) - 1, self.window, self.modulus
        acc = mpz(1)
        for row in self._rows:
            if e == 0:
                break
            d = e & mask
            if d:
                acc = row[d] if acc == 1 else acc * row[d] % m
            e >>= w
        return acc


class ShortExponentRandomizer:
    """One encryptor's DJN randomizer source (see the module doc for the algebra, the
    assumption and the exponent length).

    ``ShortExponentRandomizer.generate(public_key, randbelow)`` draws the secret base;
    :meth:`draw` draws a fresh exponent ``alpha`` in ``[1, 2^l)`` (never 0: ``r = 1`` would
    leave ``1 + m n`` in the clear); :meth:`rn` gives ``r^n mod n^2`` and :meth:`r` the
    opening ``r = h^alpha mod n``.  Each table is built on first use (only provers need the
    one mod ``n``).  Secret: ``h`` and every ``alpha``; whoever knows them
    opens the ciphertexts.  Raises :class:`ParameterError` for an exponent length below
    ``2 * security_bits`` or above the modulus size.
    """

    def __init__(
        self,
        public_key: PaillierPublicKey,
        h: int,
        *,
        exponent_bits: int | None = None,
        window: int = FIXED_BASE_WINDOW,
    ) -> None:
        n = public_key.n
        bits = short_exponent_bits(public_key.bits) if exponent_bits is None else exponent_bits
        floor = 2 * security_bits(public_key.bits)
        if not floor <= bits <= public_key.bits:
            raise ParameterError(
                f"a short exponent of {bits} bits is outside [{floor}, {public_key.bits}] for a "
                f"{public_key.bits}-bit key (below 2 x its {floor // 2}-bit security level the "
                "lambda method recovers it)"
            )
        hh = mpz(h) % n
        if hh in (0, 1, n - 1) or gmpy2.gcd(hh, n) != 1:
            raise ParameterError("the DJN base h must be a unit of Z_n other than +-1")
        self.public_key = public_key
        self.exponent_bits = bits
        self._h = hh
        self._window = window
        self._table_n2: FixedBaseTable | None = None
        self._table_n: FixedBaseTable | None = None

    @classmethod
    def generate(
        cls,
        public_key: PaillierPublicKey,
        randbelow: RandBelow = secrets.randbelow,
        *,
        exponent_bits: int | None = None,
        window: int = FIXED_BASE_WINDOW,
    ) -> ShortExponentRandomizer:
        """A fresh secret base ``h = -x^2 mod n``, ``x`` uniform in ``Z_n^*`` (as DJN)."""
        n = public_key.n
        while True:
            x = mpz(randbelow(int(n)))
            h = (-x * x) % n
            if x > 0 and gmpy2.gcd(x, n) == 1 and h not in (1, n - 1):
                return cls(public_key, int(h), exponent_bits=exponent_bits, window=window)

    @property
    def base(self) -> mpz:
        """The secret base ``h`` (worker processes rebuild the tables from it)."""
        return self._h

    def prepare(self, count: int) -> None:
        """Size the tables not built yet for about ``count`` powers (:func:`best_window`);
        a no-op once they exist.  Only speed changes, never a value."""
        if self._table_n2 is None and self._table_n is None:
            self._window = best_window(self.exponent_bits, count)

    def draw(self, randbelow: RandBelow = secrets.randbelow) -> int:
        """A fresh exponent ``alpha`` uniform in ``[1, 2^l)``."""
        return 1 + randbelow((1 << self.exponent_bits) - 1)

    def rn(self, alpha: int) -> mpz:
        """``r^n mod n^2 = h_s^alpha mod n^2``."""
        if self._table_n2 is None:
            pk = self.public_key
            hs = gmpy2.powmod(self._h, pk.n, pk.nsquare)
            self._table_n2 = FixedBaseTable(hs, pk.nsquare, self.exponent_bits, self._window)
        return self._table_n2.pow(alpha)

    def r(self, alpha: int) -> mpz:
        """The opening ``r = h^alpha mod n`` of the randomizer :meth:`rn` gives."""
        if self._table_n is None:
            self._table_n = FixedBaseTable(
                self._h, self.public_key.n, self.exponent_bits, self._window
            )
        return self._table_n.pow(alpha)
