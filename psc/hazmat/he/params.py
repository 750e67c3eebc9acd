"""Lattice parameters for the TenSEAL backends: security checks and prime chains.

Hazmat: this module builds and validates raw TenSEAL (Microsoft SEAL) contexts.  Protocol
code uses :mod:`psc.hazmat.backends.bfv`, :mod:`psc.hazmat.backends.ckks` and :mod:`psc.hazmat.he`.

**Security level.**  Every context is checked against the Homomorphic Encryption Standard
(Albrecht et al., "Homomorphic Encryption Standard", 2018, Table 1, uniform ternary
secrets, 128-bit classical security): the *total* coefficient modulus (every prime,
including SEAL's special key-switching prime) may have at most

    N = 1024: 27 bits, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881.

A parameter set above its bound is refused with :class:`~psc.exceptions.ParameterError`,
whether psc builds it or an agency receives it.

Contexts built from these parameters, published and loaded: :mod:`psc.hazmat.he.contexts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import tenseal as ts

from psc.exceptions import ParameterError

#: HE standard, Table 1 (128-bit classical, ternary secret): max total log2(q) per N.
MAX_MODULUS_BITS: dict[int, int] = {
    1024: 27,
    2048: 54,
    4096: 109,
    8192: 218,
    16384: 438,
    32768: 881,
}
#: TenSEAL always builds key-switching keys, which N = 2048 cannot hold (field facts).
MIN_RING_DIM = 4096


def check_security(n: int, coeff_bits: Sequence[int]) -> None:
    """Refuse a ring dimension / modulus pair below 128-bit security (HE standard Table 1).

    Raises :class:`ParameterError` naming the bound.
    """
    if n not in MAX_MODULUS_BITS or n < MIN_RING_DIM:
        raise ParameterError(
            f"ring dimension {n} is not supported; use one of "
            f"{sorted(k for k in MAX_MODULUS_BITS if k >= MIN_RING_DIM)}"
        )
    total = sum(coeff_bits)
    if total > MAX_MODULUS_BITS[n]:
        raise ParameterError(
            f"N={n} with a {total}-bit coefficient modulus is below 128-bit security: the HE "
            f"standard allows at most {MAX_MODULUS_BITS[n]} bits at N={n}; use fewer or "
            "smaller primes or a larger ring"
        )


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    small = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)
    for p in small:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in small:  # deterministic for n < 3.3e24
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def seal_primes(n: int, coeff_bits: Sequence[int]) -> tuple[int, ...]:
    """The primes SEAL's ``CoeffModulus::Create(n, coeff_bits)`` picks, in chain order.

    SEAL takes, per bit size ``b``, the largest primes ``q < 2^b`` with ``q = 1 mod 2n``,
    found in descending order, and hands them out smallest-first to the positions of ``b``
    in ``coeff_bits``.  The CKKS grading circuit needs them: TenSEAL resets a ciphertext's
    scale to the global scale ``Delta`` after each rescale by ``q``, so the value is
    multiplied by ``Delta / q``; :mod:`psc.hazmat.he` compensates exactly.
    """
    step = 2 * n
    out: dict[int, list[int]] = {}
    for b in sorted(set(coeff_bits)):
        need = sum(1 for x in coeff_bits if x == b)
        found: list[int] = []
        q = (1 << b) - step + 1
        while len(found) < need:
            if q <= 1 << (b - 1):
                raise ParameterError(f"not enough {b}-bit primes = 1 mod {step}")
            if _is_prime(q):
                found.append(q)
            q -= step
        out[b] = found
    return tuple(out[b].pop() for b in coeff_bits)


@dataclass(frozen=True)
class CkksParams:
    """CKKS parameters: ring dimension ``n``, prime bit sizes, scale ``2^scale_bits``.

    ``coeff_bits[0]`` holds the final result, ``coeff_bits[1:-1]`` are the rescaling primes
    (one multiplicative level each) and ``coeff_bits[-1]`` is SEAL's special prime.
    """

    n: int
    coeff_bits: tuple[int, ...]
    scale_bits: int

    def __post_init__(self) -> None:
        check_security(self.n, self.coeff_bits)
        if len(self.coeff_bits) < 3:
            raise ParameterError(
                "CKKS needs at least one rescaling prime between q0 and the special prime"
            )
        if self.coeff_bits[0] < self.scale_bits + 6:
            raise ParameterError(
                f"the first prime ({self.coeff_bits[0]} bits) must exceed the scale "
                f"(2^{self.scale_bits}) by a few bits to hold the result"
            )

    @property
    def levels(self) -> int:
        """Multiplicative depth: the number of rescaling primes."""
        return len(self.coeff_bits) - 2

    @property
    def slots(self) -> int:
        return self.n // 2

    @property
    def modulus_bits(self) -> int:
        return sum(self.coeff_bits)

    @property
    def scale(self) -> float:
        return float(2**self.scale_bits)

    def primes(self) -> tuple[int, ...]:
        return seal_primes(self.n, self.coeff_bits)

    def as_json(self) -> dict[str, Any]:
        return {
            "scheme": "ckks",
            "n": self.n,
            "coeff_bits": list(self.coeff_bits),
            "scale_bits": self.scale_bits,
        }

    def new_secret_context(self, *, n_threads: int = 1) -> ts.Context:
        """A fresh context with secret, public and relinearization keys (key holder only)."""
        ctx = ts.context(
            ts.SCHEME_TYPE.CKKS,
            self.n,
            coeff_mod_bit_sizes=list(self.coeff_bits),
            n_threads=n_threads,
        )
        ctx.global_scale = self.scale
        ctx.generate_relin_keys()
        return ctx


@dataclass(frozen=True)
class BfvParams:
    """BFV parameters: ring dimension ``n``, prime plaintext modulus ``t = 1 mod 2n`` and
    the digit packing.

    ``coeff_bits`` empty means SEAL's default 128-bit-security modulus for ``n``.  With
    ``digit_bits = w > 0`` each SIMD slot carries ``k = digits`` balanced base-``2^w`` digits
    (``M = sum_i v_i 2^(w i)``, ``|v_i| <= 2^(w-1) - 1``), so one ciphertext holds
    ``k * n`` values; addition stays linear because ``t > 2^(k w)`` and every digit sum is
    kept in range by the public bounds.  ``digit_bits = 0``: one value per slot.
    """

    n: int
    plain_modulus: int
    coeff_bits: tuple[int, ...] = ()
    digit_bits: int = 0

    def __post_init__(self) -> None:
        check_security(self.n, self.coeff_bits or _bfv_default_bits(self.n))
        t = self.plain_modulus
        if not _is_prime(t) or t % (2 * self.n) != 1 or t.bit_length() > 60:
            raise ParameterError(
                f"plain modulus {t} must be a prime = 1 mod {2 * self.n} of at most 60 bits "
                "for SIMD batching"
            )
        if self.n not in BFV_NOISE_FLOOR_BITS:
            raise ParameterError(f"BFV aggregation supports N in {sorted(BFV_NOISE_FLOOR_BITS)}")
        if self.max_doublings < 2:
            raise ParameterError(
                f"a {t.bit_length()}-bit plain modulus leaves no noise budget at N={self.n}"
            )
        if self.digit_bits and not 2 <= self.digit_bits <= 30:
            raise ParameterError("digit_bits must be 0 (no packing) or 2..30")
        if self.digit_bits and t <= 1 << (self.digits * self.digit_bits):
            raise ParameterError("the plain modulus must exceed 2^(digits * digit_bits)")

    @property
    def max_doublings(self) -> int:
        """How many times a fresh ciphertext's noise can double before decryption fails:
        ``data_modulus_bits - floor(N) - bitlen(t)`` (:data:`BFV_NOISE_FLOOR_BITS`, measured
        by doubling encryptions until they decrypt wrong)."""
        return (
            self.data_modulus_bits - BFV_NOISE_FLOOR_BITS[self.n] - self.plain_modulus.bit_length()
        )

    @property
    def max_summands(self) -> int:
        """Fresh ciphertexts a sum may hold (one bit of margin): ``2^(max_doublings - 1)``."""
        return 1 << (self.max_doublings - 1)

    @property
    def digits(self) -> int:
        """Values per SIMD slot."""
        if not self.digit_bits:
            return 1
        return min(60, self.plain_modulus.bit_length() - 1) // self.digit_bits

    @property
    def slots(self) -> int:
        """Values per ciphertext (``n`` SIMD slots times ``digits``)."""
        return self.n * self.digits

    @property
    def max_value(self) -> int:
        """Largest ``|v|`` a value represents exactly."""
        if self.digit_bits:
            return (1 << (self.digit_bits - 1)) - 1
        return (self.plain_modulus - 1) // 2

    @property
    def modulus_bits(self) -> int:
        return sum(self.coeff_bits or _bfv_default_bits(self.n))

    @property
    def data_modulus_bits(self) -> int:
        """Bits of the modulus a ciphertext lives in: all primes but SEAL's last (special,
        key-switching) prime; a single prime is both."""
        return _data_bits(self.coeff_bits or _bfv_default_bits(self.n))

    def as_json(self) -> dict[str, Any]:
        return {
            "scheme": "bfv",
            "n": self.n,
            "plain_modulus": self.plain_modulus,
            "coeff_bits": list(self.coeff_bits or _bfv_default_bits(self.n)),
            "digit_bits": self.digit_bits,
        }

    def new_secret_context(self, *, n_threads: int = 1) -> ts.Context:
        """A fresh context with secret and public keys (aggregation needs no other key)."""
        return ts.context(
            ts.SCHEME_TYPE.BFV,
            self.n,
            plain_modulus=self.plain_modulus,
            coeff_mod_bit_sizes=list(self.coeff_bits),
            n_threads=n_threads,
        )

    @classmethod
    def for_bound(cls, bound: int, *, n: int = 4096, pack: bool = True) -> BfvParams:
        """Parameters whose values hold any ``|v| <= bound`` exactly.

        ``pack=True`` (the default) packs as many digits of ``w = bitlen(bound) + 1`` bits per
        slot as leave a noise budget of :data:`MIN_SUM_DOUBLINGS` doublings (``2^19``
        summands or more; at N = 4096: ``k w <= 44``), under a prime ``t`` just above ``2^(k w)``.
        ``pack=False``: the smallest prime ``t`` with ``(t - 1)/2 >= bound``.
        Raises :class:`~psc.exceptions.ParameterError` for bounds above ``2^29``.
        """
        if bound < 1:
            raise ParameterError("bound must be positive")
        if bound >= 1 << 29:
            raise ParameterError(f"bound {bound} is too large for BFV slots; sum fewer periods")
        step = 2 * n
        if pack:
            w = bound.bit_length() + 1
            # keep 2^MIN_SUM_DOUBLINGS summands of noise budget: t below 2^(kw + 1)
            room = _bfv_modulus_bits(n) - BFV_NOISE_FLOOR_BITS.get(n, 10**6) - MIN_SUM_DOUBLINGS - 1
            k = max(1, min(59, room) // w)
            floor = 1 << (k * w)
        else:
            w, floor = 0, 2 * bound
        t = step * (floor // step) + 1
        while t <= floor or not _is_prime(t):
            t += step
        return cls(n, t, (), w)


#: measured: a fresh BFV ciphertext decrypts correctly after ``data_bits - floor(N) -
#: bitlen(t)`` doublings, where ``data_bits`` is the *data-level* modulus: every coefficient
#: prime but SEAL's last, the special prime used only for key switching, which gives a
#: ciphertext no noise room.  Measured with SEAL's default moduli (72 data bits at N=4096,
#: 174 at N=8192: 42 and 50 over the floors below, with one doubling of margin) and checked on
#: custom moduli such as (30, 60) at N=4096 (7 doublings for a 16-bit ``t``; counting the
#: 60-bit special prime claimed 30, and (20, 60) failed on a sum of two)
BFV_NOISE_FLOOR_BITS: dict[int, int] = {4096: 7, 8192: 8}
#: the packing keeps at least this many doublings of noise budget (2^19 summands or more)
MIN_SUM_DOUBLINGS = 20


def _bfv_modulus_bits(n: int) -> int:
    """Data-level bits of SEAL's default modulus for ``n`` (0 if there is none)."""
    return _data_bits(_bfv_default_bits(n)) if n in (4096, 8192, 16384, 32768) else 0


def _data_bits(bits: tuple[int, ...]) -> int:
    return sum(bits[:-1]) if len(bits) > 1 else sum(bits)


def _bfv_default_bits(n: int) -> tuple[int, ...]:
    # SEAL's CoeffModulus::BFVDefault(n, sec_level_type::tc128)
    return {
        4096: (36, 36, 37),
        8192: (43, 43, 44, 44, 44),
        16384: (48, 48, 48, 49, 49, 49, 49, 49, 49),
        32768: (55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 56),
    }[n]
