"""Packed Paillier: the dense-vector hot path (many subjects per ciphertext).

A dense vector of ``N`` signed deltas is cut into blocks of ``S`` slots
(:class:`~psc.hazmat.packing.SlotLayout`); each block is one Paillier ciphertext.  Adding two
encrypted vectors multiplies ciphertexts pairwise modulo ``n^2``, which adds every slot at
once: ``D(E(x) * E(y)) = pack(x) + pack(y) = pack(x + y)``.

Encryption is cheap through precomputed randomness: a :class:`RandomnessPool` holds values
``r^n mod n^2`` made ahead of time (the expensive exponentiation), and each is used for
exactly one ciphertext and then discarded, so online encryption is one multiplication
modulo ``n^2`` per ``S`` subjects.  Reusing a randomizer would reveal the difference of two
plaintexts (``c1 / c2 = (1+n)^(m1-m2)``), so the pool pops and never returns a value twice.
:class:`ShortExponentPool` makes the precomputation itself cheap (Damgard-Jurik-Nielsen
short exponents with fixed-base tables, :class:`~psc.hazmat.paillier.ShortExponentRandomizer`,
under the assumption stated there); its ciphertexts are ordinary Paillier ciphertexts.

What leaks to whoever holds ciphertexts: ``N``, ``S``, the slot width, the public bound on
slot values and the key fingerprint; nothing about which slots are non-zero (vectors are
dense).  Ciphertexts are malleable: authenticity comes from the signed envelope.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from collections.abc import Iterable
from dataclasses import dataclass

import gmpy2
import numpy as np
from gmpy2 import mpz

from psc.exceptions import InvalidMessage, KeyMismatch, OverflowRisk, ParameterError
from psc.hazmat.backends.base import Backend, IntArray
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import (
    MIN_KEY_BITS,
    PaillierPrivateKey,
    PaillierPublicKey,
    RandBelow,
    ShortExponentRandomizer,
)

MAGIC = b"PSCP"
VERSION = 1
_HEADER = struct.Struct(">4sB16sHIQI")  # magic, version, key fp, slot_bits, n_values, bound, count
_CHECKSUM_BYTES = 32
_CHECKSUM_DOMAIN = b"psc/packed-paillier/v1"


def _checksum(body: bytes) -> bytes:
    """SHA-256 over a domain tag and everything before it: catches any altered or lost
    byte, including header fields (``bound``, ``n_values``) whose change would otherwise
    decrypt "successfully".  Anyone can recompute it: it is a checksum, not a MAC;
    authenticity comes from the signed envelope."""
    return hashlib.sha256(_CHECKSUM_DOMAIN + body).digest()


@dataclass(frozen=True)
class PackedCiphertext:
    """An encrypted dense vector.

    ``bound`` is public: an upper bound on ``|slot value|`` that addition tracks so overflow
    is refused before it can happen.
    """

    key_fingerprint: bytes
    layout: SlotLayout
    n_values: int
    bound: int
    blocks: tuple[mpz, ...]

    def with_bound(self, bound: int) -> PackedCiphertext:
        """The same ciphertext with a bound set by policy (the aggregator, on ingest)."""
        if not 0 <= bound <= self.layout.max_value:
            raise OverflowRisk(f"bound {bound} exceeds the slot range {self.layout.max_value}")
        return PackedCiphertext(
            self.key_fingerprint, self.layout, self.n_values, bound, self.blocks
        )


@dataclass(frozen=True)
class BlockOpening:
    """What the encryptor knows about one block ``c = (1 + m n) r^n mod n^2``.

    ``plaintext`` is ``m`` in ``[0, n)`` (the packed block reduced mod ``n``) and
    ``randomness`` is ``r`` in ``Z_n^*``.  Secret: it opens the ciphertext.  Zero-knowledge
    proofs about the block (plaintext knowledge, slot ranges) are computed from it.
    """

    plaintext: mpz
    randomness: mpz


class RandomnessPool:
    """Precomputed encryption randomizers ``r^n mod n^2``, each handed out exactly once.

    ``fill(k)`` does the expensive part ahead of time; ``take()`` pops one value (and makes
    one on the spot if the pool is empty, counting it in ``made_online``); ``take_opening()``
    pops ``(r, r^n mod n^2)`` for a prover.  Randomness comes from ``randbelow`` (default:
    :func:`secrets.randbelow`, the OS CSPRNG); tests inject a seeded source through this seam.
    """

    def __init__(
        self, public_key: PaillierPublicKey, *, randbelow: RandBelow = secrets.randbelow
    ) -> None:
        self.public_key = public_key
        self._randbelow = randbelow
        self._values: list[tuple[mpz, mpz]] = []
        self.made_ahead = 0
        self.made_online = 0
        self.taken = 0

    def __len__(self) -> int:
        return len(self._values)

    def fill(self, count: int) -> None:
        """Precompute ``count`` more randomizers."""
        for _ in range(count):
            self._values.append(self.public_key.random_r_rn(self._randbelow))
        self.made_ahead += count

    def add_precomputed(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Add ``(r, r^n mod n^2)`` pairs the caller's own workers computed (unchecked:
        a wrong pair only makes this party's own proofs fail to verify)."""
        added = [(mpz(r), mpz(rn)) for r, rn in pairs]
        self._values.extend(added)
        self.made_ahead += len(added)

    def take(self) -> mpz:
        """One randomizer ``r^n mod n^2``, never handed out before."""
        return self.take_opening()[1]

    def take_opening(self) -> tuple[mpz, mpz]:
        """One ``(r, r^n mod n^2)``, never handed out before."""
        self.taken += 1
        if self._values:
            return self._values.pop()
        self.made_online += 1
        return self.public_key.random_r_rn(self._randbelow)


class ShortExponentPool(RandomnessPool):
    """A :class:`RandomnessPool` whose randomizers are Damgard-Jurik-Nielsen short-exponent
    powers ``r = h^alpha mod n``, ``r^n = h_s^alpha mod n^2`` (see
    :class:`~psc.hazmat.paillier.ShortExponentRandomizer` for the algebra, the assumption and the
    exponent length): about 50 multiplications modulo ``n^2`` per randomizer at 2048 bits
    instead of a 2048-bit exponentiation.

    It keeps ``(alpha, r^n)`` and computes the opening ``r`` only when :meth:`take_opening`
    asks (provers); :meth:`take` never does.  Each ``alpha`` is drawn once from
    ``randbelow`` and the pool pops, so no randomizer is handed out twice (a repeated draw
    among ``k`` from ``[1, 2^l)`` has probability below ``k^2 / 2^(l+1)``, ``l >= 2s``).  Pairs ``(r, r^n)``
    given to :meth:`add_precomputed` and exponents given to :meth:`add_exponents` (computed
    by the same encryptor's workers from :attr:`randomizer`'s base) are handed out first.
    """

    def __init__(
        self,
        public_key: PaillierPublicKey,
        *,
        randbelow: RandBelow = secrets.randbelow,
        randomizer: ShortExponentRandomizer | None = None,
        exponent_bits: int | None = None,
    ) -> None:
        super().__init__(public_key, randbelow=randbelow)
        if randomizer is None:
            randomizer = ShortExponentRandomizer.generate(
                public_key, randbelow, exponent_bits=exponent_bits
            )
        elif randomizer.public_key.n != public_key.n:
            raise KeyMismatch("the short-exponent randomizer belongs to another key")
        self.randomizer = randomizer
        self._exponents: list[tuple[int, mpz]] = []

    def __len__(self) -> int:
        return len(self._values) + len(self._exponents)

    def fill(self, count: int) -> None:
        """Precompute ``count`` more randomizers (``alpha`` and ``h_s^alpha``)."""
        z = self.randomizer
        z.prepare(count)
        for _ in range(count):
            alpha = z.draw(self._randbelow)
            self._exponents.append((alpha, z.rn(alpha)))
        self.made_ahead += count

    def add_exponents(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Add ``(alpha, h_s^alpha mod n^2)`` pairs made by this encryptor's own workers
        with :attr:`randomizer`'s base (unchecked, as :meth:`add_precomputed`)."""
        added = [(int(a), mpz(rn)) for a, rn in pairs]
        self._exponents.extend(added)
        self.made_ahead += len(added)

    def _pop_exponent(self) -> tuple[int, mpz]:
        if self._exponents:
            return self._exponents.pop()
        self.made_online += 1
        alpha = self.randomizer.draw(self._randbelow)
        return alpha, self.randomizer.rn(alpha)

    def take(self) -> mpz:
        """One randomizer ``r^n mod n^2``, never handed out before (no opening computed)."""
        if self._values:
            return self.take_opening()[1]
        self.taken += 1
        return self._pop_exponent()[1]

    def take_opening(self) -> tuple[mpz, mpz]:
        """One ``(r, r^n mod n^2)`` with ``r = h^alpha mod n``, never handed out before."""
        self.taken += 1
        if self._values:
            return self._values.pop()
        alpha, rn = self._pop_exponent()
        return self.randomizer.r(alpha), rn


class PackedPaillier(Backend[PackedCiphertext]):
    """The packed Paillier backend (public side).

    ``PackedPaillier(public_key, layout)``: encrypt, add, serialize.  ``decrypt`` takes the
    :class:`~psc.hazmat.paillier.PaillierPrivateKey` and is for the key holder only.
    """

    name = "paillier-packed"

    def __init__(
        self,
        public_key: PaillierPublicKey,
        layout: SlotLayout,
        *,
        pool: RandomnessPool | None = None,
        allow_insecure_key: bool = False,
    ) -> None:
        if public_key.bits < MIN_KEY_BITS and not allow_insecure_key:
            raise ParameterError(
                f"{public_key.bits}-bit key is below the {MIN_KEY_BITS}-bit minimum "
                "(allow_insecure_key=True is for tests only)"
            )
        if layout.plaintext_bits + 1 > public_key.bits - 1:
            raise ParameterError(
                f"layout needs {layout.plaintext_bits} plaintext bits but the key has {public_key.bits}"
            )
        self.public_key = public_key
        self.layout = layout
        self.pool = pool if pool is not None else RandomnessPool(public_key)
        if self.pool.public_key.n != public_key.n:
            raise KeyMismatch("randomness pool belongs to another key")

    # -- encryption ------------------------------------------------------------------
    def encrypt(self, vector: IntArray, *, bound: int | None = None) -> PackedCiphertext:
        """Encrypt a dense vector whose entries satisfy ``|v| <= bound``.

        ``bound`` defaults to the largest ``|v|`` present; protocol code passes the
        contributor's catalog bound instead, so the public bound reveals nothing about the
        data.  Raises :class:`OverflowRisk` if a value exceeds ``bound`` or the slot range.
        """
        return self._encrypt(vector, bound, openings=False)[0]

    def encrypt_with_openings(
        self, vector: IntArray, *, bound: int | None = None
    ) -> tuple[PackedCiphertext, tuple[BlockOpening, ...]]:
        """:meth:`encrypt`, also returning each block's :class:`BlockOpening` (secret: keep
        it only as long as a proof about the ciphertext needs it)."""
        return self._encrypt(vector, bound, openings=True)

    def _encrypt(
        self, vector: IntArray, bound: int | None, *, openings: bool
    ) -> tuple[PackedCiphertext, tuple[BlockOpening, ...]]:
        v = np.asarray(vector, dtype=np.int64)
        if v.ndim != 1 or v.size == 0:
            raise ValueError("encrypt() takes a non-empty 1-d vector")
        vmax = int(np.abs(v).max())
        b = vmax if bound is None else bound
        if vmax > b:
            raise OverflowRisk(f"a value of magnitude {vmax} exceeds the declared bound {b}")
        if b > self.layout.max_value:
            raise OverflowRisk(f"bound {b} exceeds the slot range +-{self.layout.max_value}")
        pk, S = self.public_key, self.layout.slots
        n = pk.n
        blocks: list[mpz] = []
        out: list[BlockOpening] = []
        for i in range(0, v.size, S):
            m = mpz(self.layout.pack(v[i : i + S])) % n
            if openings:
                r, rn = self.pool.take_opening()
                out.append(BlockOpening(m, r))
            else:
                rn = self.pool.take()
            blocks.append(pk.raw_encrypt(m, rn))
        ct = PackedCiphertext(pk.fingerprint, self.layout, int(v.size), b, tuple(blocks))
        return ct, tuple(out)

    # -- homomorphic addition --------------------------------------------------------
    def _check(self, c: PackedCiphertext) -> None:
        if c.key_fingerprint != self.public_key.fingerprint:
            raise KeyMismatch("ciphertext was encrypted under a different Paillier key")
        if c.layout != self.layout:
            raise KeyMismatch(
                f"ciphertext layout {c.layout} differs from this backend's {self.layout}"
            )

    def add(self, a: PackedCiphertext, b: PackedCiphertext) -> PackedCiphertext:
        """``E(x) * E(y) mod n^2 = E(x + y)``, slot-wise.  Refuses foreign keys and overflow."""
        return self.sum((a, b))

    def sum(self, items: Iterable[PackedCiphertext]) -> PackedCiphertext:
        """Sum of many encrypted vectors in one pass (the aggregator's hot path)."""
        cts = list(items)
        if not cts:
            raise ValueError("sum() needs at least one ciphertext")
        for c in cts:
            self._check(c)
            if c.n_values != cts[0].n_values:
                raise ValueError(f"vector lengths differ: {c.n_values} != {cts[0].n_values}")
        bound = sum(c.bound for c in cts)
        if bound > self.layout.max_value:
            raise OverflowRisk(
                f"this sum could reach {bound}, beyond the slot range +-{self.layout.max_value}; "
                "decrypt partial sums or use a layout with wider slots"
            )
        nsq = self.public_key.nsquare
        acc = list(cts[0].blocks)
        for c in cts[1:]:
            for j, x in enumerate(c.blocks):
                acc[j] = acc[j] * x % nsq
        return PackedCiphertext(
            self.public_key.fingerprint, self.layout, cts[0].n_values, bound, tuple(acc)
        )

    # -- decryption (key holder) -----------------------------------------------------
    def decrypt(self, ct: PackedCiphertext, secret_key: PaillierPrivateKey) -> IntArray:
        """Decrypt and unpack.  Raises :class:`KeyMismatch` for the wrong key and
        :class:`InvalidMessage` if a block does not decode within its bound."""
        self._check(ct)
        if secret_key.public.fingerprint != ct.key_fingerprint:
            raise KeyMismatch("this private key does not match the ciphertext's key")
        S = self.layout.slots
        n = int(self.public_key.n)
        out = np.empty(len(ct.blocks) * S, dtype=np.int64)
        for j, c in enumerate(ct.blocks):
            count = min(S, ct.n_values - j * S)
            vals = self.layout.unpack(int(secret_key.raw_decrypt(c)), n, count, ct.bound)
            out[j * S : j * S + count] = vals
        return out[: ct.n_values]

    # -- serialization ---------------------------------------------------------------
    def serialize(self, ct: PackedCiphertext) -> bytes:
        """``MAGIC | version | key fingerprint | slot_bits | n_values | bound | count |
        blocks | checksum``.

        Integers big-endian; each block is exactly ``public_key.ciphertext_bytes`` long;
        the checksum is ``SHA-256("psc/packed-paillier/v1" || everything before it)``.
        """
        self._check(ct)
        width = self.public_key.ciphertext_bytes
        head = _HEADER.pack(
            MAGIC,
            VERSION,
            ct.key_fingerprint,
            self.layout.slot_bits,
            ct.n_values,
            ct.bound,
            len(ct.blocks),
        )
        body = head + b"".join(int(c).to_bytes(width, "big") for c in ct.blocks)
        return body + _checksum(body)

    def byte_size(self, ct: PackedCiphertext) -> int:
        return _HEADER.size + len(ct.blocks) * self.public_key.ciphertext_bytes + _CHECKSUM_BYTES

    def deserialize(self, data: bytes) -> PackedCiphertext:
        """Parse and validate every field; raises :class:`InvalidMessage` (one opaque error
        for bad bytes) or :class:`KeyMismatch` when the bytes are for another key."""
        data = bytes(data)
        if len(data) < _HEADER.size + _CHECKSUM_BYTES:
            raise InvalidMessage("packed ciphertext is truncated")
        magic, version, fp, w, n_values, bound, count = _HEADER.unpack_from(data)
        if magic != MAGIC or version != VERSION:
            raise InvalidMessage("not a psc packed Paillier ciphertext of a supported version")
        body, check = data[:-_CHECKSUM_BYTES], data[-_CHECKSUM_BYTES:]
        if _checksum(body) != check:
            raise InvalidMessage("packed ciphertext is corrupted (checksum mismatch)")
        if fp != self.public_key.fingerprint:
            raise KeyMismatch("ciphertext was encrypted under a different Paillier key")
        if w != self.layout.slot_bits:
            raise InvalidMessage(
                f"slot width {w} differs from the layout's {self.layout.slot_bits}"
            )
        if n_values < 1 or count != self.layout.blocks(n_values):
            raise InvalidMessage("block count does not match the vector length")
        if bound > self.layout.max_value:
            raise InvalidMessage("declared bound exceeds the slot range")
        width = self.public_key.ciphertext_bytes
        if len(body) != _HEADER.size + count * width:
            raise InvalidMessage("packed ciphertext has the wrong length (truncated or padded)")
        n, nsq = self.public_key.n, self.public_key.nsquare
        blocks = []
        for j in range(count):
            off = _HEADER.size + j * width
            c = mpz(int.from_bytes(data[off : off + width], "big"))
            if not 0 < c < nsq or gmpy2.gcd(c, n) != 1:
                raise InvalidMessage("a block is not a valid ciphertext for this key")
            blocks.append(c)
        return PackedCiphertext(fp, self.layout, n_values, bound, tuple(blocks))
