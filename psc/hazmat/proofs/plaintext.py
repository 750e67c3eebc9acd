"""Proof of plaintext knowledge for a batch of Paillier ciphertexts.  **Hazmat.**

The standard sigma protocol for ``c = (1 + m n) r^n mod n^2`` (``g = n + 1``), after
Cramer, Damgard and Nielsen, "Multiparty computation from threshold homomorphic
encryption", EUROCRYPT 2001, and Damgard and Jurik, "A generalisation, a simplification
and some applications of Paillier's probabilistic public-key system", PKC 2001; made
non-interactive by Fiat-Shamir.  Normative: ``protocols/proofs.md`` section 2.

Algebra, for every block ``j`` (one challenge for the whole batch)::

    prover:   a_j uniform in [0, n),  u_j uniform in Z_n^*
              A_j = (1 + a_j n) u_j^n                      mod n^2   (= E(a_j; u_j))
              e   = H(context, n, c_1..c_J, A_1..A_J)       128 bits
              z_j = a_j + e m_j                             mod n
              w_j = u_j r_j^e                               mod n
    verifier: (1 + z_j n) w_j^n == A_j c_j^e               mod n^2

The ``J`` equations are checked as one, with private random 64-bit exponents ``t_j``
(:mod:`psc.hazmat.proofs.multiexp`): one ``n``-th power per batch instead of one per block.

What it proves: the prover knows each ``m_j`` (from two accepting transcripts with
challenges ``e != e'``, ``m_j = (z_j - z'_j) / (e - e') mod n``; ``e - e'`` is below
``2^128``, hence invertible mod ``n``), and each ``c_j`` encrypts it: ``c_j / (1+n)^m_j``
is an element whose ``(e - e')``-th power is an ``n``-th residue, so it is one itself.
Hence nobody can submit a ciphertext derived from another party's ciphertext
(``c^(K-1)``, ``c * E(k)``) with a proof, without knowing that party's plaintext.
Small-order elements of ``Z*_{n^2}`` cannot fool the check: they are ``n``-th residues,
which change the randomness part of an equation and never its plaintext part.

What leaks: nothing about ``m_j`` (honest-verifier zero knowledge: ``(A_j, z_j, w_j)`` is
simulated by picking ``z_j, w_j`` uniform and setting ``A_j = (1 + z_j n) w_j^n c_j^-e``),
beyond the public ciphertexts themselves.  ``context`` binds a proof to one use (an
envelope, a committee task and member): the same proof under another context fails.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import gmpy2
from gmpy2 import mpz

from psc.exceptions import InvalidMessage, InvalidProof, KeyMismatch
from psc.hazmat.backends.paillier import BlockOpening, RandomnessPool
from psc.hazmat.paillier import PaillierPublicKey, RandBelow
from psc.hazmat.proofs.multiexp import batch_exponents, multi_exp
from psc.hazmat.proofs.transcript import Transcript, int_bytes

#: Bits of the Fiat-Shamir challenge ``e``: soundness error ``2^-128`` per hash query.
CHALLENGE_BITS = 128
DOMAIN = b"psc/proofs/plaintext/v1"


def _modulus_bytes(public_key: PaillierPublicKey) -> int:
    return (public_key.bits + 7) // 8


def _is_unit(x: mpz, modulus: mpz, n: mpz) -> bool:
    return bool(0 < x < modulus and gmpy2.gcd(x, n) == 1)


@dataclass(frozen=True)
class PlaintextProof:
    """One proof for a batch of blocks: ``A_j``, ``z_j``, ``w_j`` for each block ``j``."""

    commitments: tuple[int, ...]  # A_j = E(a_j; u_j), in Z*_{n^2}
    responses_m: tuple[int, ...]  # z_j = a_j + e m_j mod n
    responses_r: tuple[int, ...]  # w_j = u_j r_j^e mod n

    def to_bytes(self, public_key: PaillierPublicKey) -> bytes:
        """``A_1..A_J`` (``ciphertext_bytes`` each) ``| z_1..z_J | w_1..w_J`` (modulus
        bytes each), big-endian.  ``J`` is not encoded: the receiver knows it."""
        cw, mw = public_key.ciphertext_bytes, _modulus_bytes(public_key)
        return (
            b"".join(int_bytes(a, cw) for a in self.commitments)
            + b"".join(int_bytes(z, mw) for z in self.responses_m)
            + b"".join(int_bytes(w, mw) for w in self.responses_r)
        )

    @classmethod
    def from_bytes(cls, public_key: PaillierPublicKey, data: bytes, count: int) -> PlaintextProof:
        """Parse a proof for ``count`` blocks; raises :class:`InvalidMessage` if the length is
        not exact or a field is out of its group (``A_j`` not in ``Z*_{n^2}``, ``z_j`` not in
        ``[0, n)``, ``w_j`` not in ``Z*_n``)."""
        if count < 1:
            raise ValueError("a plaintext proof covers at least one block")
        cw, mw = public_key.ciphertext_bytes, _modulus_bytes(public_key)
        if len(data) != count * (cw + 2 * mw):
            raise InvalidMessage("plaintext proof has the wrong length (truncated or padded)")
        n, nsq = public_key.n, public_key.nsquare
        a = [mpz(int.from_bytes(data[i * cw : (i + 1) * cw], "big")) for i in range(count)]
        off = count * cw
        z = [
            mpz(int.from_bytes(data[off + i * mw : off + (i + 1) * mw], "big"))
            for i in range(count)
        ]
        off += count * mw
        w = [
            mpz(int.from_bytes(data[off + i * mw : off + (i + 1) * mw], "big"))
            for i in range(count)
        ]
        if not all(_is_unit(x, nsq, n) for x in a):
            raise InvalidMessage("a plaintext-proof commitment is not in Z*_{n^2}")
        if not all(0 <= x < n for x in z) or not all(_is_unit(x, n, n) for x in w):
            raise InvalidMessage("a plaintext-proof response is out of range")
        return cls(tuple(int(x) for x in a), tuple(int(x) for x in z), tuple(int(x) for x in w))


def _challenge(
    public_key: PaillierPublicKey,
    ciphertexts: Sequence[int],
    commitments: Sequence[int],
    context: bytes,
) -> int:
    t = Transcript(DOMAIN)
    t.absorb(b"context", context)
    t.absorb(b"n", int_bytes(public_key.n, _modulus_bytes(public_key)))
    t.absorb(b"count", len(ciphertexts).to_bytes(8, "big"))
    t.absorb_ints(b"ciphertexts", ciphertexts, public_key.ciphertext_bytes)
    t.absorb_ints(b"commitments", commitments, public_key.ciphertext_bytes)
    return t.challenge(b"e", CHALLENGE_BITS)


def prove_plaintexts(
    public_key: PaillierPublicKey,
    ciphertexts: Sequence[int],
    openings: Sequence[BlockOpening],
    context: bytes,
    *,
    randbelow: RandBelow = secrets.randbelow,
    pool: RandomnessPool | None = None,
) -> PlaintextProof:
    """Prove knowledge of the plaintext of every ``ciphertexts[j]`` (opened by ``openings[j]``).

    ``randbelow`` draws the masks ``a_j`` (and ``u_j`` when no ``pool`` is given); a
    ``pool`` of precomputed ``(u, u^n)`` pairs makes proving one multiplication per block.
    Raises ``ValueError`` if the counts differ or are zero, :class:`KeyMismatch` if the
    pool is for another key.  A wrong opening yields a proof that does not verify.
    """
    if len(ciphertexts) != len(openings) or not ciphertexts:
        raise ValueError("prove_plaintexts needs one opening per ciphertext, at least one")
    if pool is not None and pool.public_key.n != public_key.n:
        raise KeyMismatch("randomness pool belongs to another key")
    n, nsq = public_key.n, public_key.nsquare
    masks: list[mpz] = []
    units: list[mpz] = []
    commitments: list[int] = []
    for _ in ciphertexts:
        a = mpz(randbelow(int(n)))
        u, un = pool.take_opening() if pool is not None else public_key.random_r_rn(randbelow)
        masks.append(a)
        units.append(u)
        commitments.append(int((a * n + 1) * un % nsq))
    e = _challenge(public_key, ciphertexts, commitments, context)
    zs = tuple(int((a + e * o.plaintext) % n) for a, o in zip(masks, openings, strict=True))
    ws = tuple(
        int(u * gmpy2.powmod(o.randomness, e, n) % n) for u, o in zip(units, openings, strict=True)
    )
    return PlaintextProof(tuple(commitments), zs, ws)


def verify_plaintexts(
    public_key: PaillierPublicKey,
    ciphertexts: Sequence[int],
    proof: PlaintextProof,
    context: bytes,
    *,
    randbelow: RandBelow = secrets.randbelow,
) -> None:
    """Verify ``proof`` for ``ciphertexts`` under ``context``; raises :class:`InvalidProof`.

    Checks every field's group membership, recomputes the challenge and checks all blocks
    at once with private batching exponents from ``randbelow``.  Cost: one ``n``-th power
    and one 128-bit power modulo ``n^2`` per batch, plus 64-bit multi-exponentiations.
    """
    count = len(ciphertexts)
    if count == 0 or not (
        len(proof.commitments) == len(proof.responses_m) == len(proof.responses_r) == count
    ):
        raise InvalidProof("plaintext proof does not cover exactly the ciphertexts given")
    n, nsq = public_key.n, public_key.nsquare
    cs = [mpz(c) for c in ciphertexts]
    As = [mpz(a) for a in proof.commitments]
    zs = [mpz(z) for z in proof.responses_m]
    ws = [mpz(w) for w in proof.responses_r]
    if not all(_is_unit(x, nsq, n) for x in cs) or not all(_is_unit(x, nsq, n) for x in As):
        raise InvalidProof("a ciphertext or commitment is not in Z*_{n^2}")
    if not all(0 <= z < n for z in zs) or not all(_is_unit(w, n, n) for w in ws):
        raise InvalidProof("a plaintext-proof response is out of range")
    e = _challenge(public_key, [int(c) for c in cs], [int(a) for a in As], context)
    t = batch_exponents(count, randbelow)
    zsum = sum(ti * z for ti, z in zip(t, zs, strict=True)) % n
    w_prod = multi_exp(ws, t, n)
    lhs = (1 + zsum * n) * gmpy2.powmod(w_prod, n, nsq) % nsq
    rhs = multi_exp(As, t, nsq) * gmpy2.powmod(multi_exp(cs, t, nsq), e, nsq) % nsq
    if lhs != rhs:
        raise InvalidProof("plaintext proof does not verify")


def verify_plaintexts_many(
    public_key: PaillierPublicKey,
    items: Sequence[tuple[Sequence[int], PlaintextProof, bytes]],
    *,
    randbelow: RandBelow = secrets.randbelow,
) -> None:
    """Verify several proofs, each ``(ciphertexts, proof, context)``, as one batch.

    Every block equation of every proof, ``(1 + z n) w^n == A c^e`` with that proof's own
    challenge ``e``, is raised to a private random 64-bit exponent and all are multiplied
    together (the small-exponents test of :mod:`psc.hazmat.proofs.multiexp`, across proofs): one
    ``n``-th power for the whole batch instead of one per proof.  Raises
    :class:`InvalidProof` if any proof is invalid, without saying which: a caller that
    must name the culprit verifies the proofs one by one after a failure.
    """
    if not items:
        raise ValueError("verify_plaintexts_many needs at least one proof")
    n, nsq = public_key.n, public_key.nsquare
    zsum = mpz(0)
    w_bases: list[mpz] = []
    a_bases: list[mpz] = []
    t_all: list[int] = []
    rhs = mpz(1)
    for ciphertexts, proof, context in items:
        count = len(ciphertexts)
        if count == 0 or not (
            len(proof.commitments) == len(proof.responses_m) == len(proof.responses_r) == count
        ):
            raise InvalidProof("plaintext proof does not cover exactly the ciphertexts given")
        cs = [mpz(c) for c in ciphertexts]
        As = [mpz(a) for a in proof.commitments]
        zs = [mpz(z) for z in proof.responses_m]
        ws = [mpz(w) for w in proof.responses_r]
        if not all(_is_unit(x, nsq, n) for x in cs) or not all(_is_unit(x, nsq, n) for x in As):
            raise InvalidProof("a ciphertext or commitment is not in Z*_{n^2}")
        if not all(0 <= z < n for z in zs) or not all(_is_unit(w, n, n) for w in ws):
            raise InvalidProof("a plaintext-proof response is out of range")
        e = _challenge(public_key, [int(c) for c in cs], [int(a) for a in As], context)
        t = batch_exponents(count, randbelow)
        zsum += sum(ti * z for ti, z in zip(t, zs, strict=True))
        w_bases += ws
        a_bases += As
        t_all += t
        rhs = rhs * gmpy2.powmod(multi_exp(cs, t, nsq), e, nsq) % nsq
    lhs = (1 + (zsum % n) * n) * gmpy2.powmod(multi_exp(w_bases, t_all, n), n, nsq) % nsq
    rhs = rhs * multi_exp(a_bases, t_all, nsq) % nsq
    if lhs != rhs:
        raise InvalidProof("a plaintext proof in the batch does not verify")
