"""k-of-n threshold BFV decryption with smudging (hazmat): collective key switching to
the zero key (CKS of Mouchet et al., PETS 2021) over Shamir shares of the key, with the
integer Lagrange trick of Shoup ("Practical Threshold Signatures", EUROCRYPT 2000) so a
member's share does not depend on which other members answer.

Algebra, for a BFV ciphertext ``(c0, c1)`` (coefficient form) with ``c0 + c1 s = D m + v``
(``D = floor(q / t)``, ``v`` its noise) and member ``l``'s key share ``S_l = F(l)``
(:mod:`psc.hazmat.exact.keys`), ``Delta = n!``::

    member ell:   h_l = Delta * S_l * c1 + e_l,      e_l uniform in [-2^b, 2^b)
    combiner:   for any k members T,  lambda_l = prod_{m in T, m != ell} m / (m - ell)
                x = Delta^2 c0 + sum_{l in T} (Delta lambda_l) h_l
                  = Delta^2 (D m + v) + sum_{l in T} (Delta lambda_l) e_l
                m = Delta^-2 * round(t x / q)  mod t

``Delta lambda_l`` is an integer for points ``1..n`` (the denominators divide ``n!``), so
the noise stays ``Delta^2 |v| + sum |Delta lambda_l| 2^b``: decryption is right while that
is below ``q / (2t)`` (checked by :func:`smudging_bits`, which refuses parameters where it
may not hold).  SEAL does the final rounding: the combiner decrypts ``(x, 0)``, whose
value does not depend on any key.

**What leaks** (the simulation argument, written out in ``protocols/exact-reveal.md``):
given the output ``m``, an honest share is ``h_l = Delta L_0(ell) (D m - c0) + (known to the
adversary) + Delta L_0(ell) v + e_l``, with ``Delta L_0(ell)`` an integer; the only term that
depends on anything but ``m`` is ``Delta L_0(ell) v`` (the noise, which depends on the
secret and the inputs), hidden by ``e_l``: statistical distance at most
``N |Delta L_0(ell) v| / 2^(b+1)`` per share, ``<= 2^-stat_bits`` with
:func:`smudging_bits`.  A member that omits its smudging only weakens its own share; one
honest member in ``T`` suffices for the whole of ``x`` to be smudged.

Raises :class:`~psc.exceptions.ParameterError` when the modulus cannot carry the
smudging, :class:`~psc.exceptions.InsufficientShares` with the suspects when shares
disagree (a share from a member that deviated changes the decoding of every ``k``-subset
it is in, by a multiple that depends on the subset).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
import tenseal.sealapi as seal

from psc.exceptions import InsufficientShares, ParameterError
from psc.hazmat.exact.ring import U64, RandBytes, Ring
from psc.hazmat.exact.seal_io import ct_read, ct_write

#: Statistical distance target between a member's share and its simulation from the
#: output alone: 2^-40 per reveal.
STAT_BITS = 40


def delta(n: int) -> int:
    return math.factorial(n)


def scaled_lagrange(subset: tuple[int, ...], n: int) -> dict[int, int]:
    """``Delta * lambda_l`` at 0 for the points ``subset`` (integers: Shoup's trick)."""
    d = delta(n)
    out: dict[int, int] = {}
    for ell in subset:
        lam = Fraction(1)
        for m in subset:
            if m != ell:
                lam *= Fraction(m, m - ell)
        v = lam * d
        if v.denominator != 1:  # pragma: no cover - n! clears every denominator
            raise AssertionError("Lagrange coefficient not integral")
        out[ell] = int(v)
    return out


def simulation_factor(k: int, n: int) -> int:
    """``max |Delta L_0(ell)|`` over corrupted sets ``C`` of size ``k - 1`` and honest
    ``l``: the factor by which a share exposes the ciphertext noise before smudging."""
    d = delta(n)
    best = 1
    for corrupted in itertools.combinations(range(1, n + 1), k - 1):
        for ell in range(1, n + 1):
            if ell in corrupted:
                continue
            lo = Fraction(1)
            for j in corrupted:
                lo *= Fraction(ell - j, -j)
            best = max(best, abs(int(lo * d)))
    return best


def smudging_bits(ring: Ring, k: int, n: int, noise_bits: int) -> int:
    """The smudging width ``b`` for ciphertexts whose noise is below ``2^noise_bits``.

    ``2^(b+1) >= 2^STAT_BITS * N * n * simulation_factor * 2^noise_bits`` (every honest
    share of one ciphertext within ``2^-STAT_BITS`` of its simulation, union bound), and
    the combined noise ``Delta^2 2^noise_bits + sum_l |Delta lambda_l| 2^b`` must stay below
    ``q / (4t)`` (a factor 2 of margin) for every ``k``-subset.
    """
    need = STAT_BITS + math.ceil(math.log2(ring.n * n * simulation_factor(k, n))) + noise_bits - 1
    worst = max(
        sum(abs(v) for v in scaled_lagrange(t, n).values())
        for t in itertools.combinations(range(1, n + 1), k)
    )
    total = worst * (1 << need) + delta(n) ** 2 * (1 << noise_bits)
    if total * 4 * ring.t >= ring.q:
        room = (ring.q // (4 * ring.t)).bit_length()
        raise ParameterError(
            f"the modulus cannot carry the smudging: noise 2^{noise_bits} needs 2^{need} of "
            f"smudging and a combined {total.bit_length()} bits, {room} available; use a "
            "larger modulus or a shallower circuit"
        )
    return need


def smudging(ring: Ring, bits: int, randbytes: RandBytes) -> U64:
    """Uniform integers in ``[-2^bits, 2^bits)`` per coefficient, as limbs."""
    nbytes = (bits + 1 + 7) // 8
    raw = randbytes(nbytes * ring.n)
    top = 1 << (bits + 1)
    half = 1 << bits
    vals = [
        (int.from_bytes(raw[i * nbytes : (i + 1) * nbytes], "big") % top) - half
        for i in range(ring.n)
    ]
    return ring.reduce_signed(np.array(vals, dtype=object))


def key_product(ring: Ring, ct: Any, key: U64, scalar: int = 1) -> U64:
    """``scalar * key * c1`` in coefficient form (SEAL's NTT both ways), at the
    ciphertext's level."""
    ring = ring.at_level(ct.coeff_modulus_size())
    ntt = seal.Ciphertext()
    ring.evaluator.transform_to_ntt(ct, ntt)
    polys = ct_read(ring, ntt)
    prod = ring.mul_scalar(ring.mul(polys[1], key[: ring.levels]), scalar)
    # both components carry the product: SEAL refuses to return a "transparent" (c1 = 0)
    # ciphertext, and only component 0 is read back
    scratch = ct_write(ring, ntt, np.stack([prod, prod]))
    ring.evaluator.transform_from_ntt_inplace(scratch)
    out: U64 = ct_read(ring, scratch)[0]
    return out


def decryption_share(
    ring: Ring, ct: Any, share: U64, n: int, bits: int, randbytes: RandBytes
) -> U64:
    """Member ``l``'s share ``Delta S_l c1 + e_l`` (coefficient form, one limb per prime).

    Run by a committee member on a ciphertext it computed itself.  Leaks what the module
    docstring states.
    """
    if ct.size() != 2:
        raise ParameterError("decrypt a relinearized ciphertext (size 2)")
    ring = ring.at_level(ct.coeff_modulus_size())
    return ring.add(key_product(ring, ct, share, delta(n)), smudging(ring, bits, randbytes))


def combine(ring: Ring, ct: Any, shares: Mapping[int, U64], n: int) -> npt.NDArray[np.int64]:
    """The slots ``m`` (in ``[0, t)``) from exactly ``k`` shares (no consistency check),
    at the ciphertext's level."""
    ring = ring.at_level(ct.coeff_modulus_size())
    subset = tuple(sorted(shares))
    lam = scaled_lagrange(subset, n)
    d = delta(n)
    c0 = ct_read(ring, ct)[0]
    x = ring.mul_scalar(c0, d * d)
    for ell, h in shares.items():
        x = ring.add(x, ring.mul_scalar(h, lam[ell]))
    plain = ct_write(ring, ct, np.stack([x, np.zeros_like(x)]))
    out = seal.Plaintext()
    _zero_key_decryptor(ring).decrypt(plain, out)
    slots = np.array(ring.encoder.decode_uint64(out), dtype=np.int64)
    inv = pow(d * d, -1, ring.t)
    return (slots * inv) % ring.t


def combine_checked(
    ring: Ring, ct: Any, shares: Mapping[int, U64], k: int, n: int
) -> npt.NDArray[np.int64]:
    """Decode from every ``k``-subset of the shares (more than ``k`` shares: more than one
    subset) and return the common value; raise
    :class:`~psc.exceptions.InsufficientShares` naming the suspects when subsets disagree.

    Suspects: members in no subset of the largest agreeing group (when that group has
    at least two subsets and is unique), else every member that sent a share.
    """
    members = tuple(sorted(shares))
    if len(members) < k:
        raise InsufficientShares(f"{len(members)} decryption shares, {k} needed")
    subsets = list(itertools.combinations(members, k))
    results: dict[bytes, list[tuple[int, ...]]] = {}
    values: dict[bytes, npt.NDArray[np.int64]] = {}
    for t in subsets:
        v = combine(ring, ct, {ell: shares[ell] for ell in t}, n)
        key = hashlib.sha256(v.tobytes()).digest()
        results.setdefault(key, []).append(t)
        values[key] = v
    if len(results) == 1:
        return next(iter(values.values()))
    groups = sorted(results.values(), key=len, reverse=True)
    if len(groups[0]) >= 2 and len(groups[0]) > len(groups[1]):
        trusted = set().union(*groups[0])
        suspects = [m for m in members if m not in trusted]
    else:
        suspects = list(members)
    raise InsufficientShares(
        "decryption shares disagree: the reveal is aborted and nothing is released; "
        f"suspects {suspects}",
        bad=suspects,
    )


def _zero_key_decryptor(ring: Ring) -> Any:
    # Decrypting (x, 0) reads x whatever the key: SEAL needs some key to build a decryptor.
    key = id(ring.context)
    if key not in _ZERO_DECRYPTORS:
        kg = seal.KeyGenerator(ring.context)
        _ZERO_DECRYPTORS[key] = (ring.context, seal.Decryptor(ring.context, kg.secret_key()))
    return _ZERO_DECRYPTORS[key][1]


_ZERO_DECRYPTORS: dict[int, tuple[Any, Any]] = {}


def crt_signed(ring: Ring, limbs_: U64) -> list[int]:
    """Limbs to centred integers modulo ``q`` (tests and the god view)."""
    q = ring.q
    acc = np.zeros(ring.n, dtype=object)
    for j, qj in enumerate(ring.primes):
        qhat = q // qj
        acc = acc + limbs_[j].astype(object) * (qhat * pow(qhat, -1, qj))
    return [int(v % q) - q if int(v % q) > q // 2 else int(v % q) for v in acc]


def noise_bits(ring: Ring, ct: Any, secret: U64) -> int:
    """``log2 |c0 + c1 s - D m|_inf`` of a ciphertext under the collective secret (tests
    and the simulation's god view only), at the ciphertext's level."""
    ring = ring.at_level(ct.coeff_modulus_size())
    c0 = ct_read(ring, ct)[0]
    phase = crt_signed(ring, ring.add(c0, key_product(ring, ct, secret)))
    d = ring.q // ring.t
    worst = 0
    for x in phase:
        m = round(x * ring.t / ring.q)
        worst = max(worst, abs(x - d * m))
    return worst.bit_length()


def widest_smudging(ring: Ring, k: int, n: int) -> tuple[int, int]:
    """``(b, allowance)``: the widest smudging the modulus carries and the largest noise
    bound (bits) it covers at ``2^-STAT_BITS`` (``smudging_bits(.., allowance) == b``).

    Used by deployments: smudge as widely as decryption allows, and check (god view, in
    the tests and the benchmark) that the circuit's measured noise stays below
    ``allowance``.  Raises :class:`~psc.exceptions.ParameterError` if even a noiseless
    ciphertext could not be smudged.
    """
    lo, best = 0, None
    hi = ring.q.bit_length()
    while lo <= hi:
        mid = (lo + hi) // 2
        try:
            b = smudging_bits(ring, k, n, mid)
        except ParameterError:
            hi = mid - 1
            continue
        best = (b, mid)
        lo = mid + 1
    if best is None:
        raise ParameterError("the modulus is too small for any smudged decryption")
    return best
