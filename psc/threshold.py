"""Threshold Paillier: k-of-n decryption with a trusted dealer and proved decryption shares.

**Hazmat.** This module is the raw scheme.  Protocol code should go through the key
committee role, which adds envelopes, signatures and the rule that only masked, noised
ciphertexts are ever decrypted.  Normative specs: ``protocols/keygen.md`` and
``protocols/decryption-shares.md``; vectors: ``protocols/vectors/threshold.json``.

Scheme: Shoup's threshold RSA technique carried over to Paillier (Fouque, Poupard and
Stern 2000; Damgard and Jurik 2001 with ``s = 1``).  Notation: ``N`` key holders
(``parties``), threshold ``k``, ``Delta = N!``.

Key generation by a trusted dealer (:func:`deal`)::

    p = 2p' + 1, q = 2q' + 1 safe primes,  n = p q,  m = p' q'
    d = 0 mod m,  d = 1 mod n                      (CRT; gcd(n, m) = 1)
    f(X) = d + a_1 X + ... + a_{k-1} X^{k-1}       a_j uniform in Z_{nm}
    s_i = f(i) mod nm                              (key share of party i = 1..N)
    v = r^2 mod n^2,  v_i = v^(Delta s_i) mod n^2  (public verification keys)

The public side is an ordinary :class:`~psc.hazmat.paillier.PaillierPublicKey` (``n``, ``g = n+1``):
anything encrypted by :class:`~psc.hazmat.backends.paillier.PackedPaillier` or by ``phe`` under it
decrypts with the committee.

Decryption of ``c = (1+n)^M r^n mod n^2``::

    c_i = c^(2 Delta s_i) mod n^2                                  (share of party i)
    proof that log_{c^4}(c_i^2) = log_v(v_i)   (= Delta s_i; Chaum-Pedersen, Fiat-Shamir)
    for any set S of k indices, lambda_j = Delta prod_{j' in S, j' != j} j' / (j' - j)  (integers)
    c' = prod_{j in S} c_j^(2 lambda_j) = c^(4 Delta^2 d) = (1+n)^(4 Delta^2 M) mod n^2
    M  = L(c') * (4 Delta^2)^(-1) mod n,   L(x) = (x - 1) / n

The exponent identity holds because ``sum_j lambda_j s_j = Delta d (mod nm)``, ``c^4`` has
order dividing ``nm``, ``d = 0 mod m`` kills the randomizer ``r^(4n Delta^2 d)`` and
``d = 1 mod n`` leaves ``(1+n)^(4 Delta^2 M)``.

**Fewer than k shares cannot decrypt.**  For any ``k-1`` indices ``i_1..i_{k-1}`` the map
``(a_1..a_{k-1}) -> (f(i_1) - d, ..., f(i_{k-1}) - d)`` is a Vandermonde system whose
determinant ``prod i_j prod (i_j - i_l)`` is a unit mod ``nm`` (every factor is below
``N < min(p', q')``), so for *every* candidate secret ``d*`` there is exactly one polynomial
through ``(0, d*)`` and the ``k-1`` shares: ``k-1`` key shares are uniform and independent
of ``d`` (information-theoretically).  Their decryption shares and the public ``v_i`` add
nothing a simulator could not produce from the public key (Shoup 2000, Thm. 2; FPS 2000),
so a coalition of ``k-1`` holders decrypts only by breaking Paillier itself (DCR).
:func:`combine` refuses fewer than ``k`` shares; interpolating ``k-1`` of them gives
garbage (``tests/test_threshold.py`` shows both).

What each party learns:

* the **dealer** learns ``p, q``, ``d`` and every share; it must erase all of it after
  handing out the shares (see ``protocols/keygen.md`` for replacing it by distributed key
  generation);
* a **key holder** learns its own ``s_i`` (uniform, independent of ``d`` when ``k >= 2``);
* anyone who sees **decryption shares** of ``c`` learns ``c^(2 Delta s_i)``; with ``k`` valid
  ones they learn ``M`` (so shares are only ever produced for ciphertexts that may be
  revealed), with fewer nothing beyond the public key (zero-knowledge proofs, random oracle);
* the **combiner** holds no secret; anyone can verify shares and combine them.

A share comes with a non-interactive proof binding the key (its fingerprint covers ``n``,
``k``, ``N``, ``v`` and every ``v_i``), the party index, the ciphertext and the share, so a
wrong share, a share for another ciphertext or under another index fails verification and
its holder is identified; :func:`decrypt_with_committee` and :func:`decrypt_packed`
exclude such holders and still decrypt with any ``k`` good shares.

For a packed ciphertext of ``B`` blocks a holder sends one share per block and *one*
batched proof (:class:`PackedDecryptionShare`): both sides derive 128-bit weights
``rho_j`` from a hash of every block and share, and the proof is made for
``C = prod c_j^rho_j`` and ``C_i = prod c_ij^rho_j``.  If any ``c_ij^2 != c_j^(4 Delta s_i)``
the combined statement is false except with probability ``2^-128`` (every non-trivial
element of the squares group has order divisible by a prime of more than 128 bits).

Reference flow (each line is one role; ``tests/test_threshold.py`` runs it)::

    pk, key_shares = deal(3, 5, bits=3072)                 # dealer, once; then erases
    key_shares[i].check(); pk.check_verification_keys()    # each holder; anyone
    ct = PackedPaillier(pk.public, layout).encrypt(x)      # agencies encrypt as usual
    sh = key_shares[i].packed_decryption_share(ct)         # holder i, if authorised
    out = decrypt_packed(pk, ct, received_shares)          # combiner: out.plaintext, out.bad

Errors: :class:`~psc.exceptions.InvalidMessage` for every verification failure (the
message names the party index); :class:`~psc.exceptions.InsufficientShares` when fewer
than ``k`` valid shares are left; :class:`~psc.exceptions.ParameterError` for insecure or
inconsistent parameters; plain ``ValueError`` for other caller mistakes (duplicate or
out-of-range indices); :class:`~psc.exceptions.KeyMismatch` for a ciphertext under another
key.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import gmpy2
import numpy as np
from gmpy2 import mpz

from psc.exceptions import (
    InsufficientShares,
    InvalidMessage,
    KeyMismatch,
    ParameterError,
)
from psc.hazmat.backends.base import IntArray
from psc.hazmat.backends.paillier import PackedCiphertext
from psc.hazmat.paillier import DEFAULT_KEY_BITS, MIN_KEY_BITS, PaillierPublicKey, RandBelow

__all__ = [
    "CHALLENGE_BITS",
    "MAX_PARTIES",
    "CommitteeDecryption",
    "DecryptionShare",
    "KeyShare",
    "PackedDecryptionShare",
    "ShareProof",
    "ThresholdPublicKey",
    "combine",
    "deal",
    "decode_packed_share",
    "decode_share",
    "decrypt_packed",
    "decrypt_with_committee",
    "encode_packed_share",
    "encode_share",
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

SHARE_MAGIC = b"PSCD"
SHARE_VERSION = 1
KIND_SINGLE = 1
KIND_PACKED = 2
_SHARE_HEADER = struct.Struct(">4sBBHI")  # magic, version, kind, index, count

T = TypeVar("T")


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


# -- combination -------------------------------------------------------------------------
def _combine_values(
    pk: ThresholdPublicKey, values: Mapping[int, mpz], *, check: bool = True
) -> int:
    """``L(prod c_j^(2 lambda_j)) * (4 Delta^2)^(-1) mod n`` over the given ``index -> c_j``.

    With ``k`` valid shares this is the plaintext.  ``check=False`` skips the
    ``c' = 1 mod n`` test so tests can show what interpolating too few shares gives.
    """
    n, nsq = pk.public.n, pk.public.nsquare
    idx = sorted(values)
    acc = mpz(1)
    for j, lam in zip(idx, _lagrange(pk.delta, idx, 0), strict=True):
        acc = acc * gmpy2.powmod(values[j], 2 * lam, nsq) % nsq
    if check and acc % n != 1:
        raise InvalidMessage("combined shares are not a power of 1 + n: inconsistent key")
    inv = gmpy2.invert(4 * pk.delta * pk.delta, n)
    return int((acc - 1) // n * inv % n)


def combine(pk: ThresholdPublicKey, c: int, shares: Sequence[DecryptionShare]) -> int:
    """Combiner (anyone): the plaintext ``M`` in ``[0, n)`` of ``c`` from ``k`` valid shares.

    Every share is verified first; the first ``k`` are combined (any ``k`` valid shares
    give the same ``M``).  Raises :class:`InsufficientShares` with fewer than ``k`` shares,
    ``ValueError`` for a duplicate index, :class:`InvalidMessage` naming the first party
    whose share fails (use :func:`decrypt_with_committee` to exclude bad shares instead).
    """
    seen: set[int] = set()
    for s in shares:
        if s.index in seen:
            raise ValueError(f"duplicate decryption share index {s.index}")
        seen.add(s.index)
    if len(shares) < pk.k:
        raise InsufficientShares(
            f"{len(shares)} decryption share(s) given, {pk.k} needed: nothing was decrypted"
        )
    for s in shares:
        pk.verify_share(c, s)
    return _combine_values(pk, {s.index: s.value for s in shares[: pk.k]})


@dataclass(frozen=True)
class CommitteeDecryption(Generic[T]):
    """A committee's decryption: the plaintext, whose shares were combined, whose failed."""

    plaintext: T
    #: indices of the ``k`` shares that were combined
    used: tuple[int, ...]
    #: indices whose share failed verification (excluded), sorted
    bad: tuple[int, ...]


_S = TypeVar("_S", DecryptionShare, PackedDecryptionShare)


def _sort_shares(
    pk: ThresholdPublicKey, shares: Iterable[_S], verify: Callable[[_S], None]
) -> tuple[dict[int, _S], tuple[int, ...]]:
    """Verify every share; a party with any failing share is excluded entirely."""
    good: dict[int, _S] = {}
    bad: set[int] = set()
    for s in shares:
        try:
            verify(s)
        except InvalidMessage:
            bad.add(int(s.index))
            continue
        good.setdefault(int(s.index), s)
    for i in bad:
        good.pop(i, None)
    if len(good) < pk.k:
        raise InsufficientShares(
            f"{len(good)} valid decryption share(s), {pk.k} needed; "
            f"failed verification: {sorted(bad) or 'none'}. Nothing was decrypted",
            sorted(bad),
        )
    used = dict(sorted(good.items())[: pk.k])
    return used, tuple(sorted(bad))


def decrypt_with_committee(
    pk: ThresholdPublicKey, c: int, shares: Iterable[DecryptionShare]
) -> CommitteeDecryption[int]:
    """Combiner: verify every share of ``c``, exclude bad ones, decrypt with ``k`` good ones.

    A party is in ``bad`` when any share under its index fails (altered value or proof,
    a share for another ciphertext, a share relabelled with another index, or an index
    outside ``1..N``); duplicates of a valid share are harmless.  The ``k`` lowest good
    indices are combined.  Raises :class:`InsufficientShares` (with ``.bad``) when fewer
    than ``k`` good shares remain, and :class:`InvalidMessage` if ``c`` itself is not a
    ciphertext for this key.
    """
    c = pk._ciphertext(c)
    used, bad = _sort_shares(pk, shares, lambda s: pk.verify_share(c, s))
    m = _combine_values(pk, {i: s.value for i, s in used.items()})
    return CommitteeDecryption(m, tuple(used), bad)


def decrypt_packed(
    pk: ThresholdPublicKey, ct: PackedCiphertext, shares: Iterable[PackedDecryptionShare]
) -> CommitteeDecryption[IntArray]:
    """Combiner: the int64 vector of a packed ciphertext from ``k`` good packed shares.

    Returns what :meth:`~psc.hazmat.backends.paillier.PackedPaillier.decrypt` returns with the
    full key (blocks unpacked with ``ct.layout``), plus which parties were used and which
    were excluded as bad.  Raises :class:`KeyMismatch` for a ciphertext under another key,
    :class:`InsufficientShares` with fewer than ``k`` good shares, and
    :class:`InvalidMessage` when a block does not decode within its layout and bound.
    """
    if ct.key_fingerprint != pk.public.fingerprint:
        raise KeyMismatch("packed ciphertext was encrypted under a different Paillier key")
    if len(ct.blocks) != ct.layout.blocks(ct.n_values):
        raise ValueError(
            f"packed ciphertext has {len(ct.blocks)} blocks for {ct.n_values} values "
            f"({ct.layout.blocks(ct.n_values)} expected)"
        )
    blocks = [pk._ciphertext(c) for c in ct.blocks]
    used, bad = _sort_shares(pk, shares, lambda s: pk.verify_packed_share(blocks, s))
    layout, S, n = ct.layout, ct.layout.slots, int(pk.public.n)
    out = np.empty(len(blocks) * S, dtype=np.int64)
    for j in range(len(blocks)):
        m = _combine_values(pk, {i: s.values[j] for i, s in used.items()})
        count = min(S, ct.n_values - j * S)
        out[j * S : j * S + count] = layout.unpack(m, n, count, ct.bound)
    values: IntArray = out[: ct.n_values]
    return CommitteeDecryption(values, tuple(used), bad)


# -- wire encoding (protocols/decryption-shares.md) ---------------------------------------
def _encode(
    pk: ThresholdPublicKey, kind: int, index: int, values: Sequence[mpz], proof: ShareProof
) -> bytes:
    w = pk.element_bytes
    head = _SHARE_HEADER.pack(SHARE_MAGIC, SHARE_VERSION, kind, index, len(values))
    body = b"".join(_fixed(x, w) for x in values)
    return head + body + _fixed(proof.challenge, 32) + _fixed(proof.response, pk.response_bytes)


def _decode(
    pk: ThresholdPublicKey, kind: int, data: bytes
) -> tuple[int, tuple[mpz, ...], ShareProof]:
    if len(data) < _SHARE_HEADER.size:
        raise InvalidMessage("decryption share is truncated")
    magic, version, got_kind, index, count = _SHARE_HEADER.unpack_from(data)
    if magic != SHARE_MAGIC or version != SHARE_VERSION or got_kind != kind:
        raise InvalidMessage("not a psc decryption share of the expected kind and version")
    if kind == KIND_SINGLE and count != 1:
        raise InvalidMessage("a single decryption share carries exactly one value")
    w, rb = pk.element_bytes, pk.response_bytes
    if len(data) != _SHARE_HEADER.size + count * w + 32 + rb:
        raise InvalidMessage("decryption share has the wrong length (truncated or padded)")
    off = _SHARE_HEADER.size
    values = tuple(
        mpz(int.from_bytes(data[off + j * w : off + (j + 1) * w], "big")) for j in range(count)
    )
    off += count * w
    e = int.from_bytes(data[off : off + 32], "big")
    z = mpz(int.from_bytes(data[off + 32 :], "big"))
    return index, values, ShareProof(e, z)


def encode_share(pk: ThresholdPublicKey, share: DecryptionShare) -> bytes:
    """``PSCD | 1 | kind=1 | index u16 | count=1 u32 | value | e (32) | z`` (big-endian)."""
    return _encode(pk, KIND_SINGLE, share.index, (share.value,), share.proof)


def decode_share(pk: ThresholdPublicKey, data: bytes) -> DecryptionShare:
    """Parse a single decryption share (not verified: call :meth:`ThresholdPublicKey.verify_share`).

    Raises :class:`InvalidMessage` for bad framing or length.
    """
    index, values, proof = _decode(pk, KIND_SINGLE, data)
    return DecryptionShare(index, values[0], proof)


def encode_packed_share(pk: ThresholdPublicKey, share: PackedDecryptionShare) -> bytes:
    """``PSCD | 1 | kind=2 | index u16 | B u32 | B values | e (32) | z`` (big-endian)."""
    return _encode(pk, KIND_PACKED, share.index, share.values, share.proof)


def decode_packed_share(pk: ThresholdPublicKey, data: bytes) -> PackedDecryptionShare:
    """Parse a packed decryption share (not verified).  Raises :class:`InvalidMessage`."""
    index, values, proof = _decode(pk, KIND_PACKED, data)
    return PackedDecryptionShare(index, values, proof)
