"""BFV via TenSEAL: exact integer SIMD aggregation of dense delta vectors.

A dense vector of ``N`` signed deltas is cut into blocks of ``k * n`` values, each block one
BFV ciphertext under the published public key: BFV batching gives ``n`` SIMD slots (``n``
the ring dimension) and each slot carries ``k`` balanced base-``2^w`` digits
(``M = sum_d v_d 2^(w d)``, see :class:`~psc.hazmat.he.params.BfvParams`).  Adding ciphertexts adds
every slot modulo the plaintext modulus ``t > 2^(k w)``: ``D(E(x) + E(y)) = x + y``, exact
while every value stays within ``+-(2^(w-1) - 1)``.  Every ciphertext carries a public
``bound`` on ``|value|``; addition adds bounds and refuses
(:class:`~psc.exceptions.OverflowRisk`) a sum that could leave its digit, so a sum that
decrypts is exact.  :meth:`BfvBackend.params_for_catalog` sizes ``w`` from the catalog's
worst-case sum (:func:`psc.hazmat.packing.worst_case_sum`): for the city catalog ``w = 14``,
``k = 3`` digits per slot, ``t`` a 43-bit prime, 12,288 subjects per ciphertext.

**Parameters and security.**  Aggregation needs additions only, so N = 4096 with SEAL's
default 109-bit modulus (36 + 36 + 37 bits) suffices: exactly the HE standard's 128-bit
bound for N = 4096 (109 bits).  N = 8192 (218 bits) is accepted too.  Noise (measured:
encryptions of zero doubled until they decrypt wrong): a fresh ciphertext survives
``66 - bitlen(t)`` doublings at N = 4096 (``167 - bitlen(t)`` at N = 8192); a sum of
``2^j`` ciphertexts costs ``j`` of them.  The budget counts the *data-level* modulus only
(every coefficient prime but SEAL's last, the key-switching prime), so custom moduli in a
published context get the budget they really have
(:attr:`~psc.hazmat.he.params.BfvParams.max_doublings`).  The packing keeps at least 20 doublings
(city: 22, so ``2^21`` summands), and every ciphertext counts its ``terms``: a sum beyond
``max_summands`` is refused.  No relinearization or Galois keys are published.

**What leaks** to whoever holds ciphertexts: the vector length, the public bound, the
context fingerprint; nothing about which slots are non-zero (vectors are dense).  BFV
ciphertexts are malleable: authenticity comes from the signed envelope.

Hazmat note: this is a raw scheme backend; protocol roles wrap it.
"""

from __future__ import annotations

import struct
from abc import abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import tenseal as ts

from psc.catalog import Catalog
from psc.exceptions import InvalidMessage, KeyMismatch, OverflowRisk, ParameterError
from psc.hazmat.backends.base import Backend, IntArray
from psc.hazmat.he.contexts import PublicContext, SecretContext
from psc.hazmat.he.params import BfvParams
from psc.hazmat.packing import worst_case_sum

_VERSION = 1
# magic, version, context fingerprint, n_values, bound, unit, terms, count
_HEADER = struct.Struct(">4sB16sIQdQI")
_LEN = struct.Struct(">I")


@dataclass(frozen=True)
class TensealCiphertext:
    """An encrypted dense vector: ``parts[k]`` holds values ``k*slots .. (k+1)*slots - 1``.

    ``bound`` (public) bounds ``|value|``; ``unit`` is the CKKS encoding unit (slots hold
    ``value / unit``; always 1 for BFV); ``terms`` counts the fresh encryptions summed in
    (noise grows with it and is refused past the parameters' ``max_summands``).
    """

    fingerprint: bytes
    n_values: int
    bound: int
    unit: float
    parts: tuple[Any, ...]
    terms: int = 1


class TensealBackend(Backend[TensealCiphertext]):
    """Shared dense-vector logic of the BFV and CKKS backends (public side)."""

    name: ClassVar[str]
    _magic: ClassVar[bytes]

    def __init__(self, public: PublicContext, *, unit: float = 1.0) -> None:
        if public.context.has_secret_key():  # PublicContext refuses this; belt and braces
            raise ParameterError("a backend is built from a public context only")
        self.public = public
        self.unit = float(unit)
        if not self.unit > 0:
            raise ParameterError("unit must be positive")

    # -- scheme specifics -----------------------------------------------------------
    @property
    def slots(self) -> int:
        return self.public.params.slots

    @property
    @abstractmethod
    def max_value(self) -> int:
        """Largest ``|value|`` one slot can hold after any allowed sum."""

    @property
    @abstractmethod
    def max_summands(self) -> int:
        """How many fresh ciphertexts may be added before the noise budget runs out."""

    @abstractmethod
    def _encrypt_block(self, block: IntArray) -> Any:
        """Encrypt one block of at most ``slots`` values (scheme-specific encoding)."""

    @abstractmethod
    def _load_block(self, data: bytes) -> Any:
        """Deserialize one block under the public context."""

    @abstractmethod
    def _decrypt_block(self, part: Any, secret_context: ts.Context) -> IntArray:
        """Decrypt one block back to int64 values."""

    # -- Backend --------------------------------------------------------------------
    def encrypt(self, vector: IntArray, *, bound: int | None = None) -> TensealCiphertext:
        """Encrypt a dense vector with ``|v| <= bound`` under the public key.

        ``bound`` defaults to the largest ``|v|``; protocol code passes the agency's catalog
        bound so the public bound says nothing about the data.  Raises
        :class:`OverflowRisk` if a value exceeds the bound or the bound exceeds the slot range.
        """
        v = np.asarray(vector, dtype=np.int64)
        if v.ndim != 1 or v.size == 0:
            raise ValueError("encrypt() takes a non-empty 1-d vector")
        vmax = int(np.abs(v).max())
        b = vmax if bound is None else int(bound)
        if vmax > b:
            raise OverflowRisk(f"a value of magnitude {vmax} exceeds the declared bound {b}")
        if b > self.max_value:
            raise OverflowRisk(f"bound {b} exceeds the slot range +-{self.max_value}")
        S = self.slots
        parts = tuple(self._encrypt_block(v[i : i + S]) for i in range(0, v.size, S))
        return TensealCiphertext(self.public.fingerprint, int(v.size), b, self.unit, parts)

    def _check(self, c: TensealCiphertext) -> None:
        if c.fingerprint != self.public.fingerprint:
            raise KeyMismatch("ciphertext was encrypted under a different context")
        if c.unit != self.unit:
            raise KeyMismatch(f"ciphertext unit {c.unit} differs from this backend's {self.unit}")

    def add(self, a: TensealCiphertext, b: TensealCiphertext) -> TensealCiphertext:
        """Slot-wise ``E(x) + E(y) = E(x + y)``; refuses foreign contexts and overflow."""
        return self.sum((a, b))

    def sum(self, items: Iterable[TensealCiphertext]) -> TensealCiphertext:
        """Sum of many encrypted vectors, accumulated in place (the aggregator's hot path)."""
        cts = list(items)
        if not cts:
            raise ValueError("sum() needs at least one ciphertext")
        for c in cts:
            self._check(c)
            if c.n_values != cts[0].n_values:
                raise ValueError(f"vector lengths differ: {c.n_values} != {cts[0].n_values}")
        bound = sum(c.bound for c in cts)
        self._check_room(bound, sum(c.terms for c in cts))
        if len(cts) == 1:
            return cts[0]
        # one fresh accumulator per part (TenSEAL's copy() is a serialization round trip,
        # about 1000x an addition), then in-place additions: operands are never mutated
        acc = TensealCiphertext(
            self.public.fingerprint,
            cts[0].n_values,
            cts[0].bound + cts[1].bound,
            self.unit,
            tuple(p + q for p, q in zip(cts[0].parts, cts[1].parts, strict=True)),
            cts[0].terms + cts[1].terms,
        )
        for c in cts[2:]:
            acc = self.accumulate(acc, c)
        return acc

    def accumulate(self, acc: TensealCiphertext, ct: TensealCiphertext) -> TensealCiphertext:
        """Add ``ct`` into ``acc`` **in place** (the aggregator's hot path) and return ``acc``
        with its new bound.

        ``acc`` must be an accumulator the caller owns (a result of :meth:`sum` over two or
        more ciphertexts), never a received ciphertext: its parts are modified.  Refuses
        foreign contexts and overflow before touching anything.
        """
        self._check(acc)
        self._check(ct)
        if ct.n_values != acc.n_values:
            raise ValueError(f"vector lengths differ: {ct.n_values} != {acc.n_values}")
        bound, terms = acc.bound + ct.bound, acc.terms + ct.terms
        self._check_room(bound, terms)
        for a, p in zip(acc.parts, ct.parts, strict=True):
            a.add_(p)
        return TensealCiphertext(acc.fingerprint, acc.n_values, bound, acc.unit, acc.parts, terms)

    def _check_room(self, bound: int, terms: int) -> None:
        if bound > self.max_value:
            raise OverflowRisk(
                f"this sum could reach {bound}, beyond the slot range +-{self.max_value}; "
                "decrypt partial sums or use a larger plaintext modulus"
            )
        if terms > self.max_summands:
            raise OverflowRisk(
                f"a sum of {terms} ciphertexts exceeds the noise budget ({self.max_summands} "
                "summands); decrypt partial sums or use a smaller plaintext modulus"
            )

    def decrypt(self, ct: TensealCiphertext, secret_key: SecretContext) -> IntArray:
        """Decrypt with the key holder's :class:`~psc.hazmat.he.contexts.SecretContext`.

        Raises :class:`KeyMismatch` for a foreign ciphertext or a secret context of another
        key, :class:`InvalidMessage` if a value does not decode within its bound.
        """
        self._check(ct)
        if not isinstance(secret_key, SecretContext) or not secret_key.context.has_secret_key():
            raise KeyMismatch("decryption needs the key holder's secret context")
        if secret_key.fingerprint != ct.fingerprint:
            raise KeyMismatch("this secret context does not match the ciphertext's context")
        out = np.concatenate([self._decrypt_block(p, secret_key.context) for p in ct.parts])
        out = out[: ct.n_values]
        if out.size != ct.n_values or (out.size and int(np.abs(out).max()) > ct.bound):
            raise InvalidMessage("decrypted values are outside their declared bound")
        return out

    # -- serialization --------------------------------------------------------------
    def serialize(self, ct: TensealCiphertext) -> bytes:
        """``magic | version | fingerprint | n_values | bound | unit | count | (len | bytes)*``.

        Integers big-endian, ``unit`` an IEEE double; each part is TenSEAL's serialization.
        """
        self._check(ct)
        head = _HEADER.pack(
            self._magic,
            _VERSION,
            ct.fingerprint,
            ct.n_values,
            ct.bound,
            ct.unit,
            ct.terms,
            len(ct.parts),
        )
        body = []
        for p in ct.parts:
            b = p.serialize()
            body.append(_LEN.pack(len(b)) + b)
        return head + b"".join(body)

    def deserialize(self, data: bytes) -> TensealCiphertext:
        """Parse and validate; :class:`InvalidMessage` on bad bytes (one opaque error),
        :class:`KeyMismatch` for a ciphertext made under another context."""
        if len(data) < _HEADER.size:
            raise InvalidMessage("ciphertext is truncated")
        magic, version, fp, n_values, bound, unit, terms, count = _HEADER.unpack_from(data)
        if magic != self._magic or version != _VERSION:
            raise InvalidMessage(f"not a psc {self.name} ciphertext of a supported version")
        if fp != self.public.fingerprint:
            raise KeyMismatch("ciphertext was encrypted under a different context")
        if unit != self.unit:
            raise InvalidMessage("ciphertext unit does not match")
        if (
            n_values < 1
            or count != -(-n_values // self.slots)
            or bound > self.max_value
            or not 1 <= terms <= self.max_summands
        ):
            raise InvalidMessage("ciphertext header is inconsistent")
        off = _HEADER.size
        parts = []
        for _ in range(count):
            if off + _LEN.size > len(data):
                raise InvalidMessage("ciphertext is truncated")
            (ln,) = _LEN.unpack_from(data, off)
            off += _LEN.size
            if off + ln > len(data):
                raise InvalidMessage("ciphertext is truncated")
            parts.append(self._load_block(data[off : off + ln]))
            off += ln
        if off != len(data):
            raise InvalidMessage("ciphertext has trailing bytes")
        return TensealCiphertext(fp, n_values, bound, unit, tuple(parts), terms)


class BfvBackend(TensealBackend):
    """The BFV backend (public side): ``BfvBackend(public_context)``.

    Build the parameters with :meth:`BfvParams.for_bound` or :meth:`for_catalog`, the keys
    with :meth:`BfvParams.new_secret_context` (key holder) and publish with
    :func:`psc.hazmat.he.contexts.publish` (``relin_keys=False``).
    """

    name = "bfv"
    _magic = b"PSCB"

    def __init__(self, public: PublicContext) -> None:
        if not isinstance(public.params, BfvParams):
            raise ParameterError("BfvBackend needs a BFV context")
        super().__init__(public)
        self.params: BfvParams = public.params

    @staticmethod
    def params_for_catalog(
        catalog: Catalog,
        *,
        n: int = 4096,
        periods: int | None = None,
        multiplicity: int = 1,
        plain_modulus: int | None = None,
    ) -> BfvParams:
        """Parameters whose slots hold every lawful sum of the catalog.

        With ``plain_modulus`` given, checks it instead and raises :class:`OverflowRisk`
        when ``(t - 1) / 2`` is below the worst-case sum.
        """
        need = worst_case_sum(catalog, periods=periods, multiplicity=multiplicity)
        if plain_modulus is None:
            return BfvParams.for_bound(need, n=n)
        p = BfvParams(n, plain_modulus)
        if p.max_value < need:
            raise OverflowRisk(
                f"plain modulus {plain_modulus} holds +-{p.max_value}, below the catalog's "
                f"worst-case sum {need}; use BfvParams.for_bound({need})"
            )
        return p

    @property
    def max_value(self) -> int:
        return self.params.max_value

    @property
    def max_summands(self) -> int:
        return self.params.max_summands

    def _encrypt_block(self, block: IntArray) -> Any:
        return ts.bfv_vector(self.public.context, self._pack(block).tolist())

    def _pack(self, block: IntArray) -> IntArray:
        """``k`` values per SIMD slot: slot ``i`` holds ``sum_d v[d n + i] 2^(w d)``."""
        p = self.params
        if not p.digit_bits:
            return block
        k, n, w = p.digits, p.n, p.digit_bits
        padded = np.zeros(k * n, dtype=np.int64)
        padded[: block.size] = block
        used = -(-block.size // n)  # digits actually used
        digits = padded.reshape(k, n)[:used]
        out = np.zeros(n, dtype=np.int64)
        for d in range(used - 1, -1, -1):
            out = (out << w) + digits[d]
        return out[: min(n, block.size)] if used == 1 else out

    def _unpack(self, slots: IntArray, count: int) -> IntArray:
        p = self.params
        if not p.digit_bits:
            return slots[:count]
        k, n, w = p.digits, p.n, p.digit_bits
        half = 1 << (w - 1)
        x = np.zeros(n, dtype=np.int64)
        x[: slots.size] = slots
        out = np.empty((k, n), dtype=np.int64)
        for d in range(k):
            # balanced digit: v = ((x + half) mod 2^w) - half, then x = (x - v) / 2^w
            v = ((x + half) & ((1 << w) - 1)) - half
            out[d] = v
            x = (x - v) >> w
        if np.any(x != 0):
            raise InvalidMessage("decrypted slots do not decode into their digits")
        return out.reshape(-1)[:count]

    def _load_block(self, data: bytes) -> Any:
        try:
            return ts.bfv_vector_from(self.public.context, data)
        except Exception:  # TenSEAL raises assorted C++ exceptions on bad bytes
            raise InvalidMessage("a part is not a valid BFV ciphertext for this context") from None

    def _decrypt_block(self, part: Any, secret_context: ts.Context) -> IntArray:
        try:
            vals = part.decrypt(secret_context.secret_key())
        except Exception:
            raise KeyMismatch("this secret context cannot decrypt the ciphertext") from None
        return self._unpack(np.asarray(vals, dtype=np.int64), self.slots)
