"""Threshold Paillier keys and decryption shares with their Chaum-Pedersen proofs.

**Hazmat.**  The public key with its verification keys, a holder's key share, the
decryption shares it makes and the proofs that bind them.  The scheme, its algebra and
what each party learns: :mod:`psc.hazmat.threshold`.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gmpy2
from gmpy2 import mpz

from psc.exceptions import (
    InvalidMessage,
    KeyMismatch,
    ParameterError,
)
from psc.hazmat.backends.paillier import PackedCiphertext
from psc.hazmat.paillier import PaillierPublicKey, RandBelow

__all__ = [
    "CHALLENGE_BITS",
    "MAX_PARTIES",
    "DecryptionShare",
    "KeyShare",
    "PackedDecryptionShare",
    "ShareProof",
    "ThresholdPublicKey",
    "is_known_test_modulus",
]

#: Fiat-Shamir challenge length (SHA-256 output).
CHALLENGE_BITS = 256
#: Statistical zero-knowledge slack of the proof nonce.
STATISTICAL_BITS = 128
#: Bits of each batching weight of a packed proof.
WEIGHT_BITS = 128
#: Largest committee; ``Delta = N!`` enters every exponent (64! has 296 bits).
MAX_PARTIES = 64

DST_KEY = b"psc/threshold-paillier/v1/key"
DST_SHARE_PROOF = b"psc/threshold-paillier/v1/share-proof"
DST_PACKED_WEIGHTS = b"psc/threshold-paillier/v1/packed-weights"
DST_PACKED_PROOF = b"psc/threshold-paillier/v1/packed-share-proof"

#: SHA-256 fingerprints (domain ``psc/test-modulus/v1``) of the moduli of the test safe
#: primes shipped in ``protocols/vectors/threshold.json``: their factorization is public,
#: so :func:`deal` and the committee refuse them unless the caller opts in to insecure keys.
KNOWN_TEST_MODULI = frozenset(
    bytes.fromhex(h)
    for h in (
        "617ca3b89f48c1423d88983c9f6dc89a4e47cf716af61e59d4afc2ede056cc09",  # 512 bits
        "01c96c2fc874d7994fcc19bf0d644a8373f0959822883dc0334f758dd12d8554",  # 1024 bits
        "6e3f5d407eeb44c4c6720d13f4b3e24dde39fdec9e6a348120d90c4991637efa",  # 2048 bits
    )
)


def is_known_test_modulus(n: int) -> bool:
    """Is ``n`` the modulus of one of psc's shipped (publicly factored) test prime pairs?"""
    m = int(n)
    data = m.to_bytes((m.bit_length() + 7) // 8, "big")
    return hashlib.sha256(b"psc/test-modulus/v1" + data).digest() in KNOWN_TEST_MODULI


# -- integer helpers ---------------------------------------------------------------------
def _fixed(x: int, width: int) -> bytes:
    return int(x).to_bytes(width, "big")


def _in_group(x: int, n: mpz, nsquare: mpz) -> bool:
    """``x`` in ``Z_{n^2}^*`` (a unit: ``0 < x < n^2`` and ``gcd(x, n) = 1``)."""
    return bool(0 < x < nsquare and gmpy2.gcd(x, n) == 1)


def _lagrange(delta: int, indices: Sequence[int], x: int) -> list[int]:
    """Integer coefficients ``Delta * prod_{j' != j} (x - j') / (j - j')`` for ``j`` in ``indices``.

    Exact: ``prod_{j' != j} (j - j')`` divides ``(j-1)! (N-j)!``, which divides ``N! = Delta``.
    """
    out = []
    for j in indices:
        num, den = delta, 1
        for jp in indices:
            if jp != j:
                num *= x - jp
                den *= j - jp
        out.append(num // den)
    return out


# -- keys --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ThresholdPublicKey:
    """The committee's public key: a Paillier key plus the share-verification keys.

    ``public`` is what encryptors use (``n``, ``g = n+1``).  ``k`` shares of ``parties``
    decrypt.  ``v`` generates the squares of ``Z_{n^2}^*`` (with overwhelming probability)
    and ``verification_keys[i-1] = v^(Delta s_i) mod n^2`` for party ``i``.  ``fingerprint``
    (32 bytes) is a domain-separated SHA-256 over all of it; every proof is bound to it.

    Raises :class:`ParameterError` for out-of-range ``k``/``parties`` or elements outside
    ``Z_{n^2}^*``.
    """

    public: PaillierPublicKey
    k: int
    parties: int
    v: mpz
    verification_keys: tuple[mpz, ...]
    delta: int = field(init=False, repr=False)
    fingerprint: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.parties <= MAX_PARTIES:
            raise ParameterError(f"parties must be in 1..{MAX_PARTIES}, got {self.parties}")
        if not 1 <= self.k <= self.parties:
            raise ParameterError(f"threshold k must be in 1..{self.parties}, got {self.k}")
        if len(self.verification_keys) != self.parties:
            raise ParameterError(
                f"{self.parties} parties need {self.parties} verification keys, "
                f"got {len(self.verification_keys)}"
            )
        n, nsq = self.public.n, self.public.nsquare
        v = mpz(self.v)
        vks = tuple(mpz(x) for x in self.verification_keys)
        if not all(_in_group(x, n, nsq) for x in (v, *vks)):
            raise ParameterError("v and every verification key must be units modulo n^2")
        object.__setattr__(self, "v", v)
        object.__setattr__(self, "verification_keys", vks)
        object.__setattr__(self, "delta", math.factorial(self.parties))
        w = self.public.ciphertext_bytes
        h = hashlib.sha256(DST_KEY)
        h.update(struct.pack(">HHH", self.k, self.parties, (int(n.bit_length()) + 7) // 8))
        h.update(_fixed(n, (int(n.bit_length()) + 7) // 8))
        for x in (v, *vks):
            h.update(_fixed(x, w))
        object.__setattr__(self, "fingerprint", h.digest())

    # -- sizes -------------------------------------------------------------------------
    @property
    def element_bytes(self) -> int:
        """Bytes of one element of ``Z_{n^2}`` on the wire (= ``public.ciphertext_bytes``)."""
        return self.public.ciphertext_bytes

    @property
    def nonce_bits(self) -> int:
        """Bits of the proof nonce ``r``: covers ``e * Delta * s_i`` with 128 bits to spare."""
        return 2 * self.public.bits + self.delta.bit_length() + CHALLENGE_BITS + STATISTICAL_BITS

    @property
    def response_bytes(self) -> int:
        """Fixed width of the proof response ``z < 2^(nonce_bits + 1)``."""
        return (self.nonce_bits + 1 + 7) // 8

    def verification_key(self, index: int) -> mpz:
        """``v_i`` of party ``index`` (1-based).  Raises ``ValueError`` when out of range."""
        self._check_index(index)
        return self.verification_keys[index - 1]

    def _check_index(self, index: int) -> None:
        if not 1 <= index <= self.parties:
            raise ValueError(f"party index {index} is not in 1..{self.parties}")

    def _ciphertext(self, c: int) -> mpz:
        c = mpz(c)
        if not _in_group(c, self.public.n, self.public.nsquare):
            raise InvalidMessage("ciphertext is not an element of Z_{n^2}^* for this key")
        return c

    # -- verification ------------------------------------------------------------------
    def check_verification_keys(self) -> None:
        """Anyone's check that the dealer's verification keys are consistent.

        Checks that ``v_1..v_N`` lie on one polynomial of degree ``k-1`` in the exponent
        (``v_i^Delta = prod_{j<=k} v_j^(lambda_{i,j})`` with integer coefficients at ``i``)
        and that its value at 0 is ``0 mod m`` (``prod_{j<=k} v_j^(lambda_{0,j}) = 1 mod n``).
        It cannot check ``d = 1 mod n``: a known-answer decryption at setup does
        (``protocols/keygen.md``).  Raises :class:`InvalidMessage`.
        """
        nsq = self.public.nsquare
        base = list(range(1, self.k + 1))
        vks = self.verification_keys

        def at(x: int) -> mpz:
            acc = mpz(1)
            for j, lam in zip(base, _lagrange(self.delta, base, x), strict=True):
                acc = acc * gmpy2.powmod(vks[j - 1], lam, nsq) % nsq
            return acc

        for i in range(self.k + 1, self.parties + 1):
            if gmpy2.powmod(vks[i - 1], self.delta, nsq) != at(i):
                raise InvalidMessage(
                    f"verification key of party {i} is not on the dealer's polynomial"
                )
        if at(0) % self.public.n != 1:
            raise InvalidMessage("the shared secret is not 0 mod m: the key cannot decrypt")

    def verify_share(self, c: int, share: DecryptionShare) -> None:
        """Verify party ``share.index``'s decryption share of ``c`` (its proof).

        Accepts iff ``share.value`` is a unit mod ``n^2``, the response is in range, and
        the challenge recomputes from ``a = (c^4)^z (c_i^2)^(-e)``, ``b = v^z v_i^(-e)``.
        Raises :class:`InvalidMessage` naming the party (also for an out-of-range index
        or a ciphertext outside ``Z_{n^2}^*``).
        """
        c = self._ciphertext(c)
        i = share.index
        if not 1 <= i <= self.parties:
            raise InvalidMessage(f"decryption share names party {i}, not in 1..{self.parties}")
        ci = share.value
        if not _in_group(ci, self.public.n, self.public.nsquare):
            raise InvalidMessage(f"decryption share of party {i} is not a unit modulo n^2")
        w = self.element_bytes
        nsq = self.public.nsquare
        context = _fixed(c, w) + _fixed(ci, w)
        g1 = gmpy2.powmod(c, 4, nsq)
        h1 = ci * ci % nsq
        if not _verify_proof(self, DST_SHARE_PROOF, i, g1, h1, context, share.proof):
            raise InvalidMessage(f"decryption share of party {i} fails its proof")

    def verify_packed_share(self, blocks: Sequence[int], share: PackedDecryptionShare) -> None:
        """Verify party ``share.index``'s shares of every block with its one batched proof.

        Raises :class:`InvalidMessage` naming the party when the block count differs,
        a share is not a unit mod ``n^2``, or the proof fails.
        """
        cs = [self._ciphertext(c) for c in blocks]
        i = share.index
        if not 1 <= i <= self.parties:
            raise InvalidMessage(f"decryption share names party {i}, not in 1..{self.parties}")
        if len(share.values) != len(cs):
            raise InvalidMessage(
                f"party {i} sent {len(share.values)} block shares for {len(cs)} blocks"
            )
        if not all(_in_group(x, self.public.n, self.public.nsquare) for x in share.values):
            raise InvalidMessage(f"a block share of party {i} is not a unit modulo n^2")
        g1, h1, context = _packed_statement(self, i, cs, share.values)
        if not _verify_proof(self, DST_PACKED_PROOF, i, g1, h1, context, share.proof):
            raise InvalidMessage(f"packed decryption share of party {i} fails its proof")

    # -- JSON --------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """``{"n", "k", "parties", "v", "verification_keys"}`` with integers as hex strings."""
        return {
            "n": _hex(self.public.n),
            "k": self.k,
            "parties": self.parties,
            "v": _hex(self.v),
            "verification_keys": [_hex(x) for x in self.verification_keys],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ThresholdPublicKey:
        """Inverse of :meth:`to_json`.  Raises :class:`ParameterError` for bad values."""
        return cls(
            PaillierPublicKey(mpz(int(obj["n"], 16))),
            int(obj["k"]),
            int(obj["parties"]),
            mpz(int(obj["v"], 16)),
            tuple(mpz(int(x, 16)) for x in obj["verification_keys"]),
        )


def _hex(x: int) -> str:
    return format(int(x), "x")


@dataclass(frozen=True)
class ShareProof:
    """Non-interactive proof that ``log_{g1}(h1) = log_v(v_i)``: challenge ``e``, response ``z``.

    ``e`` is 256 bits (SHA-256), ``z = r + e * Delta * s_i`` over the integers.
    """

    challenge: int
    response: mpz


@dataclass(frozen=True)
class DecryptionShare:
    """Party ``index``'s share ``value = c^(2 Delta s_i) mod n^2`` of one ciphertext, proved."""

    index: int
    value: mpz
    proof: ShareProof


@dataclass(frozen=True)
class PackedDecryptionShare:
    """Party ``index``'s shares of every block of a packed ciphertext, under one batched proof."""

    index: int
    values: tuple[mpz, ...]
    proof: ShareProof


@dataclass(frozen=True)
class KeyShare:
    """Party ``index``'s secret share ``s_i = f(i) mod nm`` (held by that party only).

    ``secret`` is never printed (``repr=False``).  Leaks: nothing about ``d`` on its own;
    every decryption share it makes reveals ``c^(2 Delta s_i)``.
    """

    public: ThresholdPublicKey
    index: int
    secret: mpz = field(repr=False)

    def __post_init__(self) -> None:
        self.public._check_index(self.index)
        s = mpz(self.secret)
        if s < 0:
            raise ParameterError("a key share is a non-negative integer")
        object.__setattr__(self, "secret", s)

    def check(self) -> None:
        """The holder's check of its share against the public key: ``v^(Delta s_i) = v_i``.

        Raises :class:`InvalidMessage` if the dealer handed out an inconsistent share.
        """
        pk = self.public
        if gmpy2.powmod(pk.v, pk.delta * self.secret, pk.public.nsquare) != pk.verification_key(
            self.index
        ):
            raise InvalidMessage(f"key share of party {self.index} does not match v_{self.index}")

    def decryption_share(
        self, c: int, *, randbelow: RandBelow = secrets.randbelow
    ) -> DecryptionShare:
        """Key holder: the share ``c^(2 Delta s_i) mod n^2`` of ciphertext ``c``, with its proof.

        Pre-condition (protocol): ``c`` may be revealed; ``k`` shares of it decrypt it.
        ``randbelow`` draws the proof nonce (the private seam for fixed vectors).
        Raises :class:`InvalidMessage` if ``c`` is not in ``Z_{n^2}^*``.
        """
        pk = self.public
        c = pk._ciphertext(c)
        nsq = pk.public.nsquare
        x = pk.delta * self.secret
        ci = gmpy2.powmod(c, 2 * x, nsq)
        w = pk.element_bytes
        context = _fixed(c, w) + _fixed(ci, w)
        proof = _prove(
            pk, DST_SHARE_PROOF, self.index, gmpy2.powmod(c, 4, nsq), x, context, randbelow
        )
        return DecryptionShare(self.index, ci, proof)

    def packed_decryption_share(
        self, ct: PackedCiphertext, *, randbelow: RandBelow = secrets.randbelow
    ) -> PackedDecryptionShare:
        """Key holder: shares of every block of ``ct`` and one batched proof.

        Raises :class:`KeyMismatch` for a ciphertext under another key and
        :class:`InvalidMessage` for a block outside ``Z_{n^2}^*``.
        """
        pk = self.public
        if ct.key_fingerprint != pk.public.fingerprint:
            raise KeyMismatch("packed ciphertext was encrypted under a different Paillier key")
        cs = [pk._ciphertext(c) for c in ct.blocks]
        nsq = pk.public.nsquare
        x = pk.delta * self.secret
        values = tuple(gmpy2.powmod(c, 2 * x, nsq) for c in cs)
        g1, _, context = _packed_statement(pk, self.index, cs, values)
        proof = _prove(pk, DST_PACKED_PROOF, self.index, g1, x, context, randbelow)
        return PackedDecryptionShare(self.index, values, proof)

    def to_json(self) -> dict[str, Any]:
        """``{"index", "secret"}`` (hex).  Secret material: for the holder and test vectors."""
        return {"index": self.index, "secret": _hex(self.secret)}

    @classmethod
    def from_json(cls, public: ThresholdPublicKey, obj: Mapping[str, Any]) -> KeyShare:
        return cls(public, int(obj["index"]), mpz(int(obj["secret"], 16)))


# -- the proof ---------------------------------------------------------------------------
def _challenge(
    pk: ThresholdPublicKey, dst: bytes, index: int, context: bytes, a: mpz, b: mpz
) -> int:
    w = pk.element_bytes
    h = hashlib.sha256(dst)
    h.update(pk.fingerprint)
    h.update(struct.pack(">H", index))
    h.update(context)
    h.update(_fixed(a, w))
    h.update(_fixed(b, w))
    return int.from_bytes(h.digest(), "big")


def _prove(
    pk: ThresholdPublicKey,
    dst: bytes,
    index: int,
    g1: mpz,
    x: mpz,
    context: bytes,
    randbelow: RandBelow,
) -> ShareProof:
    """Chaum-Pedersen in ``Z_{n^2}^*``: ``a = g1^r``, ``b = v^r``, ``e = H(...)``, ``z = r + e x``."""
    nsq = pk.public.nsquare
    r = mpz(randbelow(1 << pk.nonce_bits))
    a = gmpy2.powmod(g1, r, nsq)
    b = gmpy2.powmod(pk.v, r, nsq)
    e = _challenge(pk, dst, index, context, a, b)
    return ShareProof(e, r + e * x)


def _verify_proof(
    pk: ThresholdPublicKey,
    dst: bytes,
    index: int,
    g1: mpz,
    h1: mpz,
    context: bytes,
    proof: ShareProof,
) -> bool:
    e, z = int(proof.challenge), mpz(proof.response)
    if not (0 <= e < 1 << CHALLENGE_BITS and 0 <= z < mpz(1) << (pk.nonce_bits + 1)):
        return False
    nsq = pk.public.nsquare
    vi = pk.verification_keys[index - 1]
    # h1 and v_i are units (checked by the callers and the key), so the inverses exist.
    a = gmpy2.powmod(g1, z, nsq) * gmpy2.powmod(h1, -e, nsq) % nsq
    b = gmpy2.powmod(pk.v, z, nsq) * gmpy2.powmod(vi, -e, nsq) % nsq
    return _challenge(pk, dst, index, context, a, b) == e


def _packed_statement(
    pk: ThresholdPublicKey, index: int, cs: Sequence[mpz], values: Sequence[mpz]
) -> tuple[mpz, mpz, bytes]:
    """``(C^4, C_i^2, context)`` for the batched proof over ``B`` blocks.

    ``seed = SHA-256(DST_PACKED_WEIGHTS | key fp | index | B | c_1..c_B | c_i1..c_iB)``,
    ``rho_j = first 16 bytes of SHA-256(seed | j)`` (``j`` as 4 bytes), ``C = prod c_j^rho_j``,
    ``C_i = prod c_ij^rho_j``; the proof's context is ``B | seed``.
    """
    w = pk.element_bytes
    nsq = pk.public.nsquare
    h = hashlib.sha256(DST_PACKED_WEIGHTS)
    h.update(pk.fingerprint)
    h.update(struct.pack(">HI", index, len(cs)))
    for x in (*cs, *values):
        h.update(_fixed(x, w))
    seed = h.digest()
    big_c, big_ci = mpz(1), mpz(1)
    for j, (c, ci) in enumerate(zip(cs, values, strict=True)):
        rho = mpz(int.from_bytes(hashlib.sha256(seed + struct.pack(">I", j)).digest()[:16], "big"))
        big_c = big_c * gmpy2.powmod(c, rho, nsq) % nsq
        big_ci = big_ci * gmpy2.powmod(ci, rho, nsq) % nsq
    g1 = gmpy2.powmod(big_c, 4, nsq)
    h1 = big_ci * big_ci % nsq
    return g1, h1, struct.pack(">I", len(cs)) + seed
