"""SEAL's BFV ring, opened up for multiparty key material (hazmat: raw scheme code).

psc never implements a number-theoretic transform or a ring: every polynomial lives in a
SEAL object (``tenseal.sealapi``) and SEAL does every NTT, every key switch and every
decryption rounding.  What SEAL does not offer is multiparty key generation and threshold
decryption (Mouchet, Troncoso-Pastoriza, Bossuat, Hubaux, "Multiparty Homomorphic
Encryption from Ring-Learning-With-Errors", PETS 2021).  Those protocols only add and
multiply polynomials that are already in NTT form, which is *pointwise* arithmetic modulo
each RNS prime, so this module gives numpy views on the RNS limbs of SEAL objects:

* a SEAL ciphertext of size ``c`` at a level with ``L`` primes stores ``c * L * N``
  unsigned 64-bit words, polynomial-major, then prime-major (``[poly][prime][coeff]``);
* secret keys (a plaintext) and public/relinearization keys (ciphertexts) live at SEAL's
  *key level* (every prime, the last one being the key-switching prime ``P``) and are
  stored in NTT form, so ``a * s`` is the pointwise product of the limbs modulo each prime.

The views (:func:`limbs`) alias SEAL's memory: writing into one writes into the object,
which is how collectively generated keys become SEAL keys SEAL can use.  They are valid
while the SEAL object lives; the callers here keep the object alive beside the view.

Raises :class:`~psc.exceptions.ParameterError` for parameters SEAL refuses.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import tenseal.sealapi as seal

from psc.exceptions import ParameterError

U64 = npt.NDArray[np.uint64]
RandBytes = Callable[[int], bytes]

#: The plaintext modulus: the prime 2^16 + 1, which is 1 modulo 2N for every N <= 32768, so
#: SEAL batches N slots; every grade polynomial is interpolated over Z_65537.
PLAIN_MODULUS = 65537


@dataclass(frozen=True)
class LatticeParams:
    """BFV parameters of the exact reveal.

    ``coeff_bits`` are the bit sizes of SEAL's RNS primes; the **last** is SEAL's
    key-switching ("special") prime ``P``, the others form the ciphertext modulus ``q``.
    ``secure`` says the total modulus is within the HE standard's 128-bit bound for ``N``
    (SEAL refuses it otherwise); ``secure=False`` is for small test parameters only.
    """

    ring_degree: int
    coeff_bits: tuple[int, ...]
    plain_modulus: int = PLAIN_MODULUS
    secure: bool = True

    def __post_init__(self) -> None:
        n = self.ring_degree
        if n < 1024 or n & (n - 1):
            raise ParameterError(f"ring degree {n} is not a power of two >= 1024")
        if len(self.coeff_bits) < 2:
            raise ParameterError("need at least one ciphertext prime and the key-switching prime")
        if (self.plain_modulus - 1) % (2 * n):
            raise ParameterError(
                f"plain modulus {self.plain_modulus} is not 1 mod 2N = {2 * n}: no batching"
            )
        if self.secure:
            cap = seal.CoeffModulus.MaxBitCount(n, seal.SEC_LEVEL_TYPE.TC128)
            if sum(self.coeff_bits) > cap:
                raise ParameterError(
                    f"{sum(self.coeff_bits)} modulus bits exceed the 128-bit bound {cap} for "
                    f"N = {n}; lower the modulus or pass secure=False (tests only)"
                )

    @property
    def log_q(self) -> int:
        """Bits of the ciphertext modulus (all primes but the key-switching one)."""
        return sum(self.coeff_bits[:-1])

    def describe(self) -> str:
        return f"N={self.ring_degree}, log q={self.log_q} (+{self.coeff_bits[-1]}-bit P), t={self.plain_modulus}"


#: The city catalog's grade circuit (depth 14) at 128-bit security: 840 of the 881 bits the
#: HE standard allows at N = 32768.
CITY_PARAMS = LatticeParams(32768, (60,) * 14)


class Ring:
    """A SEAL BFV context plus the RNS facts the multiparty protocols need.

    SEAL samples secrets, errors and encryption randomness with its own CSPRNG.  There is
    deliberately no seed: a seeded SEAL factory gives *every* generator the same seed, so
    two "fresh" secrets would be equal.
    """

    def __init__(self, params: LatticeParams) -> None:
        self.params = params
        p = seal.EncryptionParameters(seal.SCHEME_TYPE.BFV)
        p.set_poly_modulus_degree(params.ring_degree)
        p.set_coeff_modulus(seal.CoeffModulus.Create(params.ring_degree, list(params.coeff_bits)))
        p.set_plain_modulus(params.plain_modulus)
        level = seal.SEC_LEVEL_TYPE.TC128 if params.secure else seal.SEC_LEVEL_TYPE.NONE
        self.context = seal.SEALContext(p, True, level)
        if not self.context.parameters_set():
            raise ParameterError(
                f"SEAL refuses {params.describe()}: {self.context.parameters_error_message()}"
            )
        self.n = params.ring_degree
        self.t = params.plain_modulus
        self.key_primes: tuple[int, ...] = tuple(m.value() for m in p.coeff_modulus())
        self.primes = self.key_primes[:-1]
        self.special = self.key_primes[-1]
        self.q = functools.reduce(lambda a, b: a * b, self.primes, 1)
        self.evaluator = seal.Evaluator(self.context)
        self.encoder = seal.BatchEncoder(self.context)
        self._qcol = np.array(self.primes, dtype=np.uint64)[:, None]
        self._kqcol = np.array(self.key_primes, dtype=np.uint64)[:, None]

    @property
    def levels(self) -> int:
        return len(self.primes)

    def at_level(self, primes: int) -> Ring:
        """This ring seen at a lower level: the first ``primes`` ciphertext primes (SEAL's
        modulus switching drops the last ones), for ciphertexts switched down before
        decryption.  Raises :class:`~psc.exceptions.ParameterError` for a level SEAL's
        chain does not have."""
        if primes == len(self.primes):
            return self
        if not 1 <= primes < len(self.primes):
            raise ParameterError(f"no level with {primes} primes (1..{len(self.primes)})")
        view = copy.copy(self)
        view.primes = self.primes[:primes]
        view.q = functools.reduce(lambda a, b: a * b, view.primes, 1)
        view._qcol = np.array(view.primes, dtype=np.uint64)[:, None]
        return view

    def parms_id_at(self, primes: int) -> Any:
        """SEAL's parameter id of the level with ``primes`` ciphertext primes."""
        data = self.context.first_context_data()
        while data is not None:
            if len(data.parms().coeff_modulus()) == primes:
                return data.parms_id()
            data = data.next_context_data()
        raise ParameterError(f"no level with {primes} primes")

    def fingerprint(self) -> bytes:
        """16 bytes naming the parameters (N, primes, t): bound into every message."""
        h = hashlib.sha256(b"psc/exact/ring/v1")
        for v in (self.n, self.t, *self.key_primes):
            h.update(v.to_bytes(8, "big"))
        return h.digest()[:16]

    def qcol(self, key_level: bool) -> U64:
        return self._kqcol if key_level else self._qcol

    # -- pointwise arithmetic on (limbs, N) arrays ---------------------------------------
    def mul(self, a: U64, b: U64, key_level: bool = False) -> U64:
        """``a * b`` limb-wise modulo each prime (the NTT-domain ring product)."""
        q = self.key_primes if key_level else self.primes
        out = np.empty_like(a)
        for j, qj in enumerate(q):
            out[j] = (a[j].astype(object) * b[j].astype(object) % qj).astype(np.uint64)
        return out

    def mul_scalar(self, a: U64, c: int, key_level: bool = False) -> U64:
        """``c * a`` for an integer ``c`` (any sign), limb-wise."""
        q = self.key_primes if key_level else self.primes
        out = np.empty_like(a)
        for j, qj in enumerate(q):
            out[j] = (a[j].astype(object) * (c % qj) % qj).astype(np.uint64)
        return out

    def add(self, a: U64, b: U64, key_level: bool = False) -> U64:
        q = self.qcol(key_level)
        s = a + b  # primes < 2^61, so no uint64 overflow
        return np.where(s >= q, s - q, s).astype(np.uint64)

    def neg(self, a: U64, key_level: bool = False) -> U64:
        q = self.qcol(key_level)
        return np.where(a == 0, a, q - a).astype(np.uint64)

    def sub(self, a: U64, b: U64, key_level: bool = False) -> U64:
        return self.add(a, self.neg(b, key_level), key_level)

    def reduce_signed(self, values: npt.NDArray[Any]) -> U64:
        """Signed integer coefficients (an object or int64 array of length N) as limbs."""
        obj = np.asarray(values).astype(object)
        return np.stack([(obj % qj).astype(np.uint64) for qj in self.primes])

    def uniform(self, randbytes: RandBytes, key_level: bool = False) -> U64:
        """A uniformly random element (any domain: the NTT is a bijection), by rejection."""
        q = self.key_primes if key_level else self.primes
        return np.stack([_uniform_mod(randbytes, qj, self.n) for qj in q])

    # -- SEAL objects ---------------------------------------------------------------------
    def new_ciphertext(self, size: int = 2) -> Any:
        ct = seal.Ciphertext(self.context)
        ct.resize(self.context, self.context.first_parms_id(), size)
        return ct


def _uniform_mod(randbytes: RandBytes, q: int, n: int) -> U64:
    bits = q.bit_length()
    mask = np.uint64((1 << bits) - 1)
    out = np.empty(0, dtype=np.uint64)
    while out.size < n:
        need = n - out.size
        draw = np.frombuffer(randbytes(8 * (need + need // 4 + 8)), dtype="<u8") & mask
        out = np.concatenate([out, draw[draw < np.uint64(q)]])
    return out[:n].astype(np.uint64)


def shake_uniform(ring: Ring, label: bytes, key_level: bool = True) -> U64:
    """A public uniform element derived from ``label`` with SHAKE-256: the common reference
    string of Mouchet et al. (anyone recomputes it, no party chooses it)."""
    xof = hashlib.shake_256(b"psc/exact/crs/v1" + ring.fingerprint() + label)
    stream = _Stream(xof)
    return ring.uniform(stream.read, key_level=key_level)


@dataclass
class _Stream:
    xof: Any
    pos: int = 0
    buf: bytes = field(default=b"")

    def read(self, k: int) -> bytes:
        end = self.pos + k
        if end > len(self.buf):
            self.buf = self.xof.digest(max(2 * len(self.buf), end, 1 << 16))
        out = self.buf[self.pos : end]
        self.pos = end
        return bytes(out)
