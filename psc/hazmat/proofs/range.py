"""Exact per-slot range proofs for packed Paillier plaintexts.  **Hazmat.**

Statement: ciphertexts ``C_1..C_J`` under ``n`` encrypt packed blocks (``packing.md``:
``M_j = sum_i v_i 2^(w i) mod n``) whose every slot satisfies ``lo_i <= v_i <= hi_i``
(per-slot public bounds; slots past the given bounds are padding, proven to be 0).  The
guarantee is exact, with no slack (:func:`guaranteed_range`).  Normative description,
security argument and the measured choice of technique: ``protocols/proofs.md`` section 3.

Technique: digit decomposition proven with a batched polynomial identity, in the style of
the binary-vector checks of Bulletproofs (Bunz et al., S&P 2018) and Prio's validity
circuits (Corrigan-Gibbs and Boneh, NSDI 2017), carried out on Paillier ciphertexts with
sigma-protocol responses (Cramer-Damgard-Nielsen, EUROCRYPT 2001):

1. *Digits.*  ``x_i = v_i - lo_i`` is one digit in ``[0, R_i]`` (``R_i = hi_i - lo_i``)
   when every ``R_i < 2^d``; otherwise ``x_i = v_i - lo_i`` and ``y_i = hi_i - v_i`` are
   each written with ``L`` base-``2^d`` digits (two overlapping power-of-two ranges cover a
   non-power-of-two interval).
2. *Wide phases.*  A response to a challenge needs room for ``2c + s`` bits per slot, far
   more than a ``w``-bit slot, so the digits of slot ``i`` go into *phase*
   ``r = i mod k`` ciphertexts ``X = E(sum_i' d_(k i' + r) 2^(W i'))`` with ``W = k w``.
   Linearity ties them to ``C`` homomorphically:
   ``C * E(-pack(lo)) = prod_(l,r) X_(l,r)^(2^(d l) 2^(w r)) * rho^n``.
3. *Digit validity.*  Masks ``a`` in wide layout (``A = E(pack_W(a))``), Fiat-Shamir weights
   ``gamma`` (128 bits), cross terms ``T_0..T_(D-1)`` with ``T_j`` encrypting the
   ``e^j`` coefficient of ``sum gamma_i e^(D - D_i) prod_(t=0..R_i) (a_i + e (d_i - t))``,
   a 128-bit challenge ``e``, responses ``z = a + e d`` per digit, and the verifier checks
   ``E(pack_W(z)) == A X^e`` (linear), every ``z < 2^(c+s+bits(R)+1)``, and
   ``E(sum gamma_i e^(D - D_i) prod_t (z_i - e t)) == prod T_j^(e^j)`` (a polynomial in
   ``e`` whose ``e^D`` coefficient ``sum gamma_i prod_t (d_i - t)`` must vanish).

All ciphertext equations of a proof are checked as one with private random exponents
(:mod:`psc.hazmat.proofs.multiexp`).  What leaks: nothing about the values beyond the statement
(statistical distance ``2^-s`` per response, ``s =`` :data:`HIDING_BITS`; ciphertexts hide
under DCR).  Raises :class:`~psc.exceptions.InvalidProof` on any failed check.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import gmpy2
from gmpy2 import mpz

from psc.exceptions import InvalidMessage, InvalidProof, KeyMismatch, ParameterError
from psc.hazmat.backends.paillier import BlockOpening, RandomnessPool
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import PaillierPublicKey, RandBelow
from psc.hazmat.proofs.multiexp import batch_exponents, multi_exp
from psc.hazmat.proofs.range_statement import (
    _BOUND_BYTES,
    CHALLENGE_BITS,
    DEFAULT_DIGIT_BITS,
    DOMAIN,
    MAX_DIGIT_BITS,
    _bounds_full,
    _combine,
    _elementary,
    _pack_w,
    _phase_lengths,
    _Shape,
    _shape,
    guaranteed_range,
)
from psc.hazmat.proofs.transcript import Transcript, int_bytes

__all__ = [
    "RangeProof",
    "guaranteed_range",
    "locate_failure",
    "pool_demand",
    "prove_slot_ranges",
    "verify_slot_ranges",
]


def _packed_ints(values: Sequence[int], width: int) -> bytes:
    return b"".join(int(v).to_bytes(width, "big", signed=True) for v in values)


@dataclass(frozen=True)
class RangeProof:
    """A proof that every slot of some packed blocks lies in its ``[lo, hi]``."""

    digit_bits: int  # d: the digit size the prover chose (1..MAX_DIGIT_BITS)
    response_bytes: int  # bytes of each encoded response: ceil(z_bits / 8) of the statement
    digits: tuple[int, ...]  # X: wide-phase digit ciphertexts, order (block, sign, digit, phase)
    masks: tuple[int, ...]  # A: wide-phase mask ciphertexts, same order
    cross: tuple[int, ...]  # T_0..T_(D-1): cross-term ciphertexts
    responses: tuple[int, ...]  # z = a + e d per wide slot, order (.., phase, i')
    omegas: tuple[int, ...]  # per wide ciphertext: u beta^e mod n
    rhos: tuple[int, ...]  # per (block, sign): randomness of the linear relation
    tau: int  # randomness of the cross-term relation

    def to_bytes(self, public_key: PaillierPublicKey, layout: SlotLayout) -> bytes:
        """``d`` (1 byte) ``| X | A | T`` (``L_c`` bytes each) ``| z`` (``ceil(z_bits/8)``
        each) ``| omegas | rhos | tau`` (``L_n`` bytes each), big-endian; counts follow from
        the statement (``protocols/proofs.md`` 3.5)."""
        cw, mw = public_key.ciphertext_bytes, (public_key.bits + 7) // 8
        zw = self.response_bytes
        return (
            bytes([self.digit_bits])
            + b"".join(int_bytes(x, cw) for x in (*self.digits, *self.masks, *self.cross))
            + bytes([zw])
            + b"".join(int_bytes(z, zw) for z in self.responses)
            + b"".join(int_bytes(x, mw) for x in (*self.omegas, *self.rhos, self.tau))
        )

    @classmethod
    def from_bytes(
        cls,
        public_key: PaillierPublicKey,
        layout: SlotLayout,
        blocks: int,
        lo: Sequence[int],
        hi: Sequence[int],
        data: bytes,
    ) -> RangeProof:
        """Parse a proof for ``blocks`` blocks with bounds ``lo``, ``hi``; raises
        :class:`InvalidMessage` for a wrong length or a field outside its group."""
        if len(data) < 2 or not 1 <= data[0] <= MAX_DIGIT_BITS:
            raise InvalidMessage("range proof is truncated or names an unsupported digit size")
        shape = _shape(public_key, layout, blocks, lo, hi, data[0])
        cw, mw = public_key.ciphertext_bytes, (public_key.bits + 7) // 8
        K, D = shape.wide_cts, shape.degree
        nslots = len(shape.wide_slot_ranges())
        off = 1 + (2 * K + D) * cw
        if len(data) < off + 1:
            raise InvalidMessage("range proof is truncated")
        zw = data[off]
        if zw != (shape.z_bits + 7) // 8:
            raise InvalidMessage("range proof responses have the wrong width")
        want = off + 1 + nslots * zw + (K + shape.relations + 1) * mw
        if len(data) != want:
            raise InvalidMessage("range proof has the wrong length (truncated or padded)")

        def ints(start: int, count: int, width: int) -> list[int]:
            return [
                int.from_bytes(data[start + i * width : start + (i + 1) * width], "big")
                for i in range(count)
            ]

        cts = ints(1, 2 * K + D, cw)
        zs = ints(off + 1, nslots, zw)
        tail = ints(off + 1 + nslots * zw, K + shape.relations + 1, mw)
        n, nsq = int(public_key.n), int(public_key.nsquare)
        if not all(0 < c < nsq and gmpy2.gcd(c, n) == 1 for c in cts):
            raise InvalidMessage("a range-proof ciphertext is not in Z*_{n^2}")
        if not all(0 < x < n and gmpy2.gcd(x, n) == 1 for x in tail):
            raise InvalidMessage("a range-proof randomness is not in Z*_n")
        return cls(
            data[0],
            zw,
            tuple(cts[:K]),
            tuple(cts[K : 2 * K]),
            tuple(cts[2 * K :]),
            tuple(zs),
            tuple(tail[:K]),
            tuple(tail[K:-1]),
            tail[-1],
        )


class _Fs:
    """The range proof's Fiat-Shamir transcript."""

    def __init__(
        self,
        public_key: PaillierPublicKey,
        shape: _Shape,
        lo: Sequence[int],
        hi: Sequence[int],
        context: bytes,
        ciphertexts: Sequence[int],
    ) -> None:
        t = Transcript(DOMAIN)
        t.absorb(b"context", context)
        t.absorb(b"n", int_bytes(public_key.n, (public_key.bits + 7) // 8))
        t.absorb(
            b"shape",
            b"".join(
                x.to_bytes(8, "big")
                for x in (shape.slot_bits, shape.slots, shape.digit_bits, shape.blocks)
            ),
        )
        t.absorb(b"lo", _packed_ints(lo, _BOUND_BYTES))
        t.absorb(b"hi", _packed_ints(hi, _BOUND_BYTES))
        t.absorb_ints(b"ciphertexts", ciphertexts, public_key.ciphertext_bytes)
        self.t = t
        self.cw = public_key.ciphertext_bytes

    def gammas(self, digits: Sequence[int], masks: Sequence[int], count: int) -> list[int]:
        self.t.absorb_ints(b"digits", digits, self.cw)
        self.t.absorb_ints(b"masks", masks, self.cw)
        return self.t.challenges(b"gamma", count, CHALLENGE_BITS)

    def challenge(self, cross: Sequence[int]) -> int:
        self.t.absorb_ints(b"cross", cross, self.cw)
        return self.t.challenge(b"e", CHALLENGE_BITS)


def prove_slot_ranges(
    public_key: PaillierPublicKey,
    layout: SlotLayout,
    ciphertexts: Sequence[int],
    openings: Sequence[BlockOpening],
    values: Sequence[int],
    lo: Sequence[int],
    hi: Sequence[int],
    context: bytes,
    *,
    randbelow: RandBelow = secrets.randbelow,
    pool: RandomnessPool | None = None,
    digit_bits: int = DEFAULT_DIGIT_BITS,
) -> RangeProof:
    """Prove every slot ``i`` of ``ciphertexts`` (opened by ``openings``) holds
    ``values[i]`` in ``[lo[i], hi[i]]``; slots past ``len(values)`` hold 0 and are proven 0.

    ``pool`` supplies precomputed ``(r, r^n)`` pairs (three per wide ciphertext, see
    :func:`pool_demand`); otherwise they are made on the spot from ``randbelow``.  Raises
    ``ValueError`` if a value is outside its range or counts differ (the prover never makes
    a false proof), :class:`ParameterError` if the slots are too narrow for the bounds.
    """
    return _prove(
        public_key,
        layout,
        ciphertexts,
        openings,
        values,
        lo,
        hi,
        context,
        randbelow=randbelow,
        pool=pool,
        digit_bits=digit_bits,
        honest=True,
    )


def _prove(
    public_key: PaillierPublicKey,
    layout: SlotLayout,
    ciphertexts: Sequence[int],
    openings: Sequence[BlockOpening],
    values: Sequence[int],
    lo: Sequence[int],
    hi: Sequence[int],
    context: bytes,
    *,
    randbelow: RandBelow,
    pool: RandomnessPool | None,
    digit_bits: int,
    honest: bool,
) -> RangeProof:
    """The prover.  ``honest=False`` is the private seam attack tests use: it runs the same
    algorithm on values outside their ranges (a cheating agency that follows the protocol
    with a false witness), skipping the refusals; its proofs must not verify."""
    if len(ciphertexts) != len(openings):
        raise ValueError("prove_slot_ranges needs one opening per ciphertext")
    if pool is not None and pool.public_key.n != public_key.n:
        raise KeyMismatch("randomness pool belongs to another key")
    shape = _shape(public_key, layout, len(ciphertexts), lo, hi, digit_bits)
    los, his = _bounds_full(shape, lo, hi)
    vals = list(values) + [0] * (len(los) - len(values))
    if len(values) != len(lo):
        raise ValueError("need one value per (lo, hi) pair")
    if honest and any(not a <= v <= b for v, a, b in zip(vals, los, his, strict=True)):
        raise ValueError("a value lies outside its range: refusing to prove a false statement")
    n, nsq = public_key.n, public_key.nsquare
    S, W, d, L = shape.slots, shape.wide_bits, shape.digit_bits, shape.digits

    def fresh() -> tuple[mpz, mpz]:
        return pool.take_opening() if pool is not None else public_key.random_r_rn(randbelow)

    # 1. digits per (block, sign, digit, slot)
    digit_vals: list[int] = []
    for j in range(shape.blocks):
        for sign in shape.signs:
            for i_l in range(L):
                for i in range(S):
                    g = j * S + i
                    x = vals[g] - los[g] if sign == 1 else his[g] - vals[g]
                    # one digit: x itself (a cheat's x may be out of range or negative)
                    digit_vals.append(x if L == 1 else (x >> (d * i_l)) & ((1 << d) - 1))
    # 2. wide-phase digit and mask ciphertexts
    a_bits = shape.z_bits - 1
    wide_digits: list[int] = []
    wide_ranges = shape.wide_slot_ranges()
    X: list[int] = []
    A: list[int] = []
    betas: list[mpz] = []
    units: list[mpz] = []
    masks: list[int] = []
    for q in range(shape.blocks * len(shape.signs) * L):
        base = q * S
        for phase in shape.phases:
            dg = [digit_vals[base + i] for i in phase]
            ms = [randbelow(1 << a_bits) for _ in phase]
            wide_digits.extend(dg)
            masks.extend(ms)
            beta, beta_n = fresh()
            u, u_n = fresh()
            X.append(int((_pack_w(dg, W) % n * n + 1) * beta_n % nsq))
            A.append(int((_pack_w(ms, W) % n * n + 1) * u_n % nsq))
            betas.append(beta)
            units.append(u)
    fs = _Fs(public_key, shape, los, his, context, ciphertexts)
    gammas = fs.gammas(X, A, len(wide_digits))
    # 3. cross terms: coefficient of e^j in sum_i gamma_i e^(D-D_i) prod_t (a_i + e(d_i - t))
    D = shape.degree
    coef = [mpz(0)] * (D + 1)
    for gm, a, digit, r in zip(gammas, masks, wide_digits, wide_ranges, strict=True):
        sig = _elementary(digit, r)  # sigma_k, k = 0..r+1; e^(k + D - D_i) carries a^(D_i - k)
        Di = r + 1
        apow = mpz(1)
        am = mpz(a)
        for k in range(Di, -1, -1):  # a^(Di - k) grows as k falls
            if sig[k]:
                coef[k + D - Di] += gm * sig[k] * apow
            apow = apow * am % n
    if honest and coef[D] != 0:
        raise AssertionError("digit polynomial does not vanish for an in-range witness")
    T: list[int] = []
    taus: list[mpz] = []
    for jj in range(D):
        tau_j, tau_n = fresh()
        T.append(int((coef[jj] % n * n + 1) * tau_n % nsq))
        taus.append(tau_j)
    e = fs.challenge(T)
    # 4. responses
    z = tuple(int(a + e * dg) for a, dg in zip(masks, wide_digits, strict=True))
    omegas = tuple(int(u * gmpy2.powmod(b, e, n) % n) for u, b in zip(units, betas, strict=True))
    per_rel = L * len(shape.phases)
    rhos: list[int] = []
    for j in range(shape.blocks):
        r_c = mpz(openings[j].randomness)
        for si, sign in enumerate(shape.signs):
            q = j * len(shape.signs) + si
            hb = _combine(shape, betas[q * per_rel : (q + 1) * per_rel], n)
            rho = r_c * gmpy2.invert(hb, n) % n if sign == 1 else gmpy2.invert(r_c * hb % n, n)
            rhos.append(int(rho))
    tau = mpz(1)
    for tj in reversed(taus):
        tau = gmpy2.powmod(tau, e, n) * tj % n
    return RangeProof(
        d, (shape.z_bits + 7) // 8, tuple(X), tuple(A), tuple(T), z, omegas, tuple(rhos), int(tau)
    )


def pool_demand(
    public_key: PaillierPublicKey,
    layout: SlotLayout,
    blocks: int,
    lo: Sequence[int],
    hi: Sequence[int],
    *,
    digit_bits: int = DEFAULT_DIGIT_BITS,
) -> int:
    """How many ``(r, r^n)`` pairs one proof takes from a pool (for precomputation)."""
    shape = _shape(public_key, layout, blocks, lo, hi, digit_bits)
    return 2 * shape.wide_cts + shape.degree


def verify_slot_ranges(
    public_key: PaillierPublicKey,
    layout: SlotLayout,
    ciphertexts: Sequence[int],
    lo: Sequence[int],
    hi: Sequence[int],
    proof: RangeProof,
    context: bytes,
    *,
    randbelow: RandBelow = secrets.randbelow,
) -> None:
    """Verify that every slot of ``ciphertexts`` lies in its ``[lo, hi]`` (padding slots in
    ``[0, 0]``); raises :class:`InvalidProof`.  One ``n``-th power, one Horner chain of
    128-bit powers over the cross terms, and 64-bit multi-exponentiations over the rest."""
    try:
        shape = _shape(public_key, layout, len(ciphertexts), lo, hi, proof.digit_bits)
    except (ParameterError, ValueError) as exc:
        raise InvalidProof(f"range proof statement is malformed: {exc}") from exc
    K, D = shape.wide_cts, shape.degree
    wide_ranges = shape.wide_slot_ranges()
    if (
        len(proof.digits) != K
        or len(proof.masks) != K
        or len(proof.omegas) != K
        or len(proof.cross) != D
        or len(proof.responses) != len(wide_ranges)
        or len(proof.rhos) != shape.relations
        or proof.response_bytes != (shape.z_bits + 7) // 8
    ):
        raise InvalidProof("range proof does not have the statement's shape")
    n, nsq = public_key.n, public_key.nsquare
    ints = [mpz(c) for c in (*ciphertexts, *proof.digits, *proof.masks, *proof.cross)]
    if not all(0 < c < nsq and gmpy2.gcd(c, n) == 1 for c in ints):
        raise InvalidProof("a ciphertext is not in Z*_{n^2}")
    units = [mpz(x) for x in (*proof.omegas, *proof.rhos, proof.tau)]
    if not all(0 < x < n and gmpy2.gcd(x, n) == 1 for x in units):
        raise InvalidProof("a range-proof randomness is not in Z*_n")
    zlimit = 1 << shape.z_bits
    if not all(0 <= z < zlimit for z in proof.responses):
        raise InvalidProof("a range-proof response is out of range")
    los, his = _bounds_full(shape, lo, hi)
    fs = _Fs(public_key, shape, los, his, context, ciphertexts)
    gammas = fs.gammas(proof.digits, proof.masks, len(wide_ranges))
    e = fs.challenge(proof.cross)
    # (a) digit validity: sum gamma_i e^(D - D_i) prod_t (z_i - e t) == D(prod T_j^(e^j))
    q = mpz(0)
    e_m = mpz(e)
    epow = [mpz(1)]
    for _ in range(D):
        epow.append(epow[-1] * e_m % n)
    for gm, z, r in zip(gammas, proof.responses, wide_ranges, strict=True):
        acc = mpz(z)
        cur = mpz(z)
        for _ in range(r):
            cur -= e_m
            acc = acc * cur % n
        q += gm * acc * epow[D - r - 1]
    q %= n
    rhs = mpz(1)
    for tj in reversed(proof.cross):
        rhs = gmpy2.powmod(rhs, e_m, nsq) * tj % nsq
    if (1 + q * n) * gmpy2.powmod(mpz(proof.tau), n, nsq) % nsq != rhs:
        raise InvalidProof("range proof does not verify")
    # (b) linear relations, batched: E(pack_W(z_k); omega_k) == A_k X_k^e for every wide
    # ciphertext k, and C * E(-pack lo) == H * rho^n (sign +1) or E(pack hi) == C H rho^n
    t = batch_exponents(K, randbelow)
    s = batch_exponents(shape.relations, randbelow)
    X = [mpz(x) for x in proof.digits]
    zsum = mpz(0)
    pos = 0
    for k, phase_len in enumerate(_phase_lengths(shape)):
        zsum += t[k] * _pack_w(proof.responses[pos : pos + phase_len], shape.wide_bits)
        pos += phase_len
    per_rel = shape.digits * len(shape.phases)
    nsign = len(shape.signs)
    S, w = shape.slots, shape.slot_bits
    kappa = mpz(0)
    c_pos: list[mpz] = []
    c_pos_e: list[int] = []
    c_neg: list[mpz] = []
    c_neg_e: list[int] = []
    for j, c in enumerate(ciphertexts):
        for si, sign in enumerate(shape.signs):
            sq = s[j * nsign + si]
            if sign == 1:
                kappa -= sq * _pack_w(los[j * S : (j + 1) * S], w)
                c_pos.append(mpz(c))
                c_pos_e.append(sq)
            else:
                kappa += sq * _pack_w(his[j * S : (j + 1) * S], w)
                c_neg.append(mpz(c))
                c_neg_e.append(sq)
    # prod_q H_q^s_q, H_q = prod_(l,r) X_(q,l,r)^(2^(dl) 2^(wr)): either Horner per relation
    # then one multi-exponentiation, or one multi-exponentiation per (digit, phase) then one
    # Horner; the first is cheaper for few relations (blocks), the second for many
    if shape.relations < 64:
        hs = [
            _combine(shape, X[q * per_rel : (q + 1) * per_rel], nsq) for q in range(shape.relations)
        ]
        h = multi_exp(hs, s, nsq)
    else:
        ys = [
            multi_exp([X[qq * per_rel + idx] for qq in range(shape.relations)], s, nsq)
            for idx in range(per_rel)
        ]
        h = _combine(shape, ys, nsq)
    lhs = multi_exp([mpz(a) for a in proof.masks], t, nsq)
    lhs = lhs * gmpy2.powmod(multi_exp(X, t, nsq), e_m, nsq) % nsq
    lhs = lhs * h % nsq * multi_exp(c_neg, c_neg_e, nsq) % nsq
    w_all = multi_exp([mpz(o) for o in proof.omegas], t, n)
    w_all = w_all * gmpy2.invert(multi_exp([mpz(r) for r in proof.rhos], s, n), n) % n
    rhs2 = (1 + (zsum + kappa) % n * n) * gmpy2.powmod(w_all, n, nsq) % nsq
    rhs2 = rhs2 * multi_exp(c_pos, c_pos_e, nsq) % nsq
    if lhs != rhs2:
        raise InvalidProof("range proof does not verify")


def locate_failure(
    public_key: PaillierPublicKey,
    layout: SlotLayout,
    ciphertexts: Sequence[int],
    lo: Sequence[int],
    hi: Sequence[int],
    proof: RangeProof,
    context: bytes,
) -> int | None:
    """After :func:`verify_slot_ranges` refused ``proof``: the first block whose own linear
    equations fail, checked one by one without batching, or ``None`` when every block's
    equations hold (then the joint digit identity failed, which no single block owns).
    For error messages only; it proves nothing."""
    try:
        shape = _shape(public_key, layout, len(ciphertexts), lo, hi, proof.digit_bits)
    except (ParameterError, ValueError):
        return None
    if len(proof.digits) != shape.wide_cts or len(proof.rhos) != shape.relations:
        return 0
    n, nsq = public_key.n, public_key.nsquare
    los, his = _bounds_full(shape, lo, hi)
    fs = _Fs(public_key, shape, los, his, context, ciphertexts)
    fs.gammas(proof.digits, proof.masks, len(proof.responses))
    e = fs.challenge(proof.cross)
    lens = _phase_lengths(shape)
    per_block = len(shape.signs) * shape.digits * len(shape.phases)
    per_rel = shape.digits * len(shape.phases)
    S, w = shape.slots, shape.slot_bits
    pos = 0
    for j in range(shape.blocks):
        for k in range(j * per_block, (j + 1) * per_block):
            z = proof.responses[pos : pos + lens[k]]
            pos += lens[k]
            left = (1 + _pack_w(z, shape.wide_bits) % n * n) * gmpy2.powmod(proof.omegas[k], n, nsq)
            right = proof.masks[k] * gmpy2.powmod(proof.digits[k], e, nsq)
            if left % nsq != right % nsq:
                return j
        c = mpz(ciphertexts[j])
        for si, sign in enumerate(shape.signs):
            q = j * len(shape.signs) + si
            h = _combine(
                shape, [mpz(x) for x in proof.digits[q * per_rel : (q + 1) * per_rel]], nsq
            )
            h = h * gmpy2.powmod(proof.rhos[q], n, nsq) % nsq
            if sign == 1:
                left = c * (1 + (-_pack_w(los[j * S : (j + 1) * S], w)) % n * n) % nsq
            else:
                left = (1 + _pack_w(his[j * S : (j + 1) * S], w) % n * n) % nsq
                h = h * c % nsq
            if left != h:
                return j
    return None
