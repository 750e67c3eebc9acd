"""Combining ``k`` verified threshold Paillier decryption shares; identifying bad holders.

**Hazmat.**  The scheme, its algebra and what each party learns: :mod:`psc.hazmat.threshold`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import gmpy2
import numpy as np
from gmpy2 import mpz

from psc.exceptions import (
    InsufficientShares,
    InvalidMessage,
    KeyMismatch,
)
from psc.hazmat.backends.base import IntArray
from psc.hazmat.backends.paillier import PackedCiphertext
from psc.hazmat.threshold.keys import (
    DecryptionShare,
    PackedDecryptionShare,
    ThresholdPublicKey,
    _lagrange,
)

__all__ = [
    "CommitteeDecryption",
    "combine",
    "decrypt_packed",
    "decrypt_with_committee",
]

T = TypeVar("T")


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
