"""Merkle trees in the style of RFC 9162 (Certificate Transparency v2), section 2.1.

Hashes
    SHA-256 throughout.  For an ordered list of leaf data ``D[n] = (d0, ..., d(n-1))``::

        MTH({})       = SHA-256()                                   (the empty string)
        MTH({d0})     = SHA-256(0x00 || d0)                         (leaf_hash)
        MTH(D[n])     = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])) (node_hash)

    where ``k`` is the largest power of two strictly smaller than ``n``.  The distinct
    0x00 / 0x01 prefixes keep a leaf from ever being read as an interior node (second
    pre-image resistance across levels).

Proofs
    An *inclusion proof* (audit path, RFC 9162 2.1.3.1) is the list of sibling hashes
    from the leaf up to the root, deepest first.  A *consistency proof* (2.1.4.1) between
    sizes ``m <= n`` is the minimal list of node hashes that lets a verifier holding
    ``MTH(D[0:m])`` recompute both that root and ``MTH(D[0:n])``.  Verification
    follows 2.1.3.2 and 2.1.4.2, including the checks that the whole proof is consumed
    and that a tree size is fully accounted for (an over-long or short proof fails).

Two implementations, checked against each other by property tests:

* the list functions (:func:`root`, :func:`inclusion_proof`, :func:`consistency_proof`
  and their ``_from_hashes`` variants) follow the recursive definitions literally and
  cost O(n) per call: they are the reference;
* :class:`MerkleTree` is an incremental, append-only tree that stores the hash of every
  complete (power-of-two, aligned) subtree, so it answers the root, inclusion and
  consistency proofs for *any* earlier size in O(log n) hashes.

What leaks
    A root hides nothing the leaves do not: if leaf data is guessable, anyone holding
    the root (or a sibling hash from a proof) can confirm a guess.  That is why event
    commitments (:func:`commitment_leaf`) carry a random 32-byte salt.  A proof also
    reveals the tree size and the leaf's position.

Errors
    Every verification failure raises :class:`psc.exceptions.InvalidMessage` and says
    nothing more.  Out-of-range arguments to proof *generation* (the prover's own data)
    raise :class:`ValueError` with a precise message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Sequence

from psc.exceptions import InvalidMessage

__all__ = [
    "COMMITMENT_DOMAIN",
    "EMPTY_ROOT",
    "HASH_SIZE",
    "SALT_SIZE",
    "MerkleTree",
    "commitment_leaf",
    "consistency_proof",
    "consistency_proof_from_hashes",
    "inclusion_proof",
    "inclusion_proof_from_hashes",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_hashes",
    "verify_consistency",
    "verify_inclusion",
    "verify_inclusion_hash",
]

#: length in bytes of every hash in a tree (SHA-256)
HASH_SIZE = 32

#: MTH of the empty list: SHA-256 of the empty string
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of one leaf holding ``data``."""
    return hashlib.sha256(_LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an interior node."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_hashes(hashes: Sequence[bytes]) -> None:
    for i, h in enumerate(hashes):
        if not isinstance(h, bytes | bytearray) or len(h) != HASH_SIZE:
            raise ValueError(
                f"leaf hash {i} must be {HASH_SIZE} bytes (a SHA-256 digest), got {h!r:.80}"
            )


# --------------------------------------------------------------------------------------
# Reference list functions: the RFC 9162 recursive definitions, literally.


def _mth(hashes: Sequence[bytes]) -> bytes:
    n = len(hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return bytes(hashes[0])
    k = _split(n)
    return node_hash(_mth(hashes[:k]), _mth(hashes[k:]))


def root_from_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH over leaves given by their leaf hashes; ``EMPTY_ROOT`` for no leaves.

    Raises ValueError if a hash is not 32 bytes.
    """
    _check_hashes(hashes)
    return _mth(hashes)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf *data* (each leaf hashed with :func:`leaf_hash`)."""
    return _mth([leaf_hash(d) for d in leaves])


def _path(m: int, hashes: Sequence[bytes]) -> list[bytes]:
    # PATH(m, D[n]): recurse into the half holding m, then append the other half's MTH.
    n = len(hashes)
    if n <= 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, hashes[:k]), _mth(hashes[k:])]
    return [*_path(m - k, hashes[k:]), _mth(hashes[:k])]


def inclusion_proof_from_hashes(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path for leaf ``index`` in the tree over ``hashes`` (deepest sibling first).

    Raises ValueError if ``index`` is not in ``0..len(hashes)-1`` or a hash is malformed.
    """
    _check_hashes(hashes)
    if not 0 <= index < len(hashes):
        raise ValueError(
            f"leaf index {index} is out of range for a tree of {len(hashes)} leaves "
            f"(valid: 0..{len(hashes) - 1})"
        )
    return _path(index, hashes)


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path for leaf ``index`` in the tree over leaf *data* ``leaves``."""
    return inclusion_proof_from_hashes([leaf_hash(d) for d in leaves], index)


def _subproof(m: int, hashes: Sequence[bytes], whole: bool) -> list[bytes]:
    # SUBPROOF(m, D[n], b): b says whether D[0:m] is the very subtree the old root was
    # computed over (then the verifier already knows its hash and it is left out).
    n = len(hashes)
    if m == n:
        return [] if whole else [_mth(hashes)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, hashes[:k], whole), _mth(hashes[k:])]
    return [*_subproof(m - k, hashes[k:], False), _mth(hashes[:k])]


def consistency_proof_from_hashes(hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """Proof that the tree over ``hashes[:old_size]`` is a prefix of the tree over ``hashes``.

    Empty when ``old_size`` is 0 or ``len(hashes)`` (nothing to prove).  Raises ValueError
    if ``old_size`` is not in ``0..len(hashes)`` or a hash is malformed.
    """
    _check_hashes(hashes)
    if not 0 <= old_size <= len(hashes):
        raise ValueError(
            f"old size {old_size} is out of range for a tree of {len(hashes)} leaves "
            f"(valid: 0..{len(hashes)})"
        )
    if old_size == 0 or old_size == len(hashes):
        return []
    return _subproof(old_size, hashes, True)


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """:func:`consistency_proof_from_hashes` over leaf *data*."""
    return consistency_proof_from_hashes([leaf_hash(d) for d in leaves], old_size)


# --------------------------------------------------------------------------------------
# Verification (RFC 9162 2.1.3.2 and 2.1.4.2).


def _is_hash(h: object) -> bool:
    return isinstance(h, bytes | bytearray) and len(h) == HASH_SIZE


def verify_inclusion_hash(
    leaf_hash_: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that the leaf with hash ``leaf_hash_`` sits at ``index`` in the tree of
    ``size`` leaves whose MTH is ``root``.

    Walks from the leaf up: at each level the bit of ``index`` says whether the proof
    element is the left or right sibling; a node on the right edge of an unbalanced tree
    has no sibling and is lifted unchanged.  The proof must be consumed exactly.

    Raises InvalidMessage on any failure (including ``index >= size`` and malformed
    hashes); returns None on success.
    """
    if (
        not isinstance(index, int)
        or not isinstance(size, int)
        or not 0 <= index < size
        or not _is_hash(leaf_hash_)
        or not _is_hash(root)
        or not all(_is_hash(p) for p in proof)
    ):
        raise InvalidMessage("inclusion proof does not verify")
    fn, sn = index, size - 1
    r = bytes(leaf_hash_)
    for p in proof:
        if sn == 0:
            raise InvalidMessage("inclusion proof does not verify")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # skip the levels where this node is the right edge and has no sibling
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise InvalidMessage("inclusion proof does not verify")


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """:func:`verify_inclusion_hash` for leaf *data* ``leaf``.  Raises InvalidMessage."""
    verify_inclusion_hash(leaf_hash(leaf), index, size, proof, root)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``old_size`` leaves with root ``old_root`` is a prefix of the
    tree of ``new_size`` leaves with root ``new_root``.

    Edge cases: equal sizes need an empty proof and equal roots; an old size of 0 needs
    an empty proof and ``old_root == EMPTY_ROOT`` (every tree extends the empty one).
    Otherwise the RFC 9162 2.1.4.2 walk recomputes both roots from the proof (prefixing
    ``old_root`` when ``old_size`` is a power of two, since then the old tree is itself a
    node of the new one) and requires the proof to be consumed exactly.

    Raises InvalidMessage on any failure; returns None on success.
    """
    if (
        not isinstance(old_size, int)
        or not isinstance(new_size, int)
        or not 0 <= old_size <= new_size
        or not _is_hash(old_root)
        or not _is_hash(new_root)
        or not all(_is_hash(p) for p in proof)
    ):
        raise InvalidMessage("consistency proof does not verify")
    if old_size == new_size:
        if proof or old_root != new_root:
            raise InvalidMessage("consistency proof does not verify")
        return
    if old_size == 0:
        if proof or old_root != EMPTY_ROOT:
            raise InvalidMessage("consistency proof does not verify")
        return
    if not proof:
        raise InvalidMessage("consistency proof does not verify")
    path = [bytes(p) for p in proof]
    if old_size & (old_size - 1) == 0:
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise InvalidMessage("consistency proof does not verify")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise InvalidMessage("consistency proof does not verify")


# --------------------------------------------------------------------------------------
# Incremental tree.


class MerkleTree:
    """An append-only Merkle tree over leaf hashes, answering for any earlier size.

    Stores ``levels[h][i]``, the hash of the complete subtree over leaves
    ``[i * 2**h, (i + 1) * 2**h)``, for every such subtree that is already full.  These
    hashes never change once written, so every size the tree has ever had can still be
    served.  Every node on the RFC 9162 decomposition of a tree is either one of these
    complete subtrees or lies on its right edge; the right edge costs O(log n) hashes to
    rebuild and proofs touch it at most once, so :meth:`root`, :meth:`inclusion_proof`
    and :meth:`consistency_proof` cost O(log n).  Memory: about ``2 n`` hashes.

    Results agree with the reference list functions of this module (property-tested).
    """

    __slots__ = ("_levels",)

    def __init__(self, hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        self.extend(hashes)

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self._levels[0])

    def __len__(self) -> int:
        return self.size

    def append(self, leaf_hash_: bytes) -> int:
        """Append one leaf by its hash; return its index.  Raises ValueError if malformed."""
        if not isinstance(leaf_hash_, bytes | bytearray) or len(leaf_hash_) != HASH_SIZE:
            raise ValueError(
                f"a leaf hash must be {HASH_SIZE} bytes (a SHA-256 digest), got {leaf_hash_!r:.80}"
            )
        levels = self._levels
        levels[0].append(bytes(leaf_hash_))
        h = 0
        # each time a level gets an even count, its last two nodes complete a parent
        while len(levels[h]) % 2 == 0:
            if h + 1 == len(levels):
                levels.append([])
            levels[h + 1].append(node_hash(levels[h][-2], levels[h][-1]))
            h += 1
        return self.size - 1

    def append_leaf(self, data: bytes) -> int:
        """Append one leaf by its *data* (hashed with :func:`leaf_hash`); return its index."""
        return self.append(leaf_hash(data))

    def extend(self, hashes: Iterable[bytes]) -> None:
        """Append leaves by their hashes, in order."""
        for h in hashes:
            self.append(h)

    def truncate(self, size: int) -> None:
        """Forget every leaf from index ``size`` on.

        Not part of the log protocol (a published log never shrinks): it exists so an
        in-memory mirror can follow a store whose uncommitted appends were rolled back.
        Raises ValueError if ``size`` is not in ``0..self.size``.
        """
        if not 0 <= size <= self.size:
            raise ValueError(f"cannot truncate a tree of {self.size} leaves to {size}")
        for h, level in enumerate(self._levels):
            del level[size >> h :]

    def leaf_hash(self, index: int) -> bytes:
        """The hash of leaf ``index``."""
        self._check_index(index, self.size)
        return self._levels[0][index]

    def hashes(self) -> list[bytes]:
        """A copy of all leaf hashes, in order."""
        return list(self._levels[0])

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ValueError(
                f"tree size {size} is out of range: this tree has {self.size} leaves "
                f"(valid: 0..{self.size})"
            )
        return size

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not 0 <= index < size:
            raise ValueError(
                f"leaf index {index} is out of range for a tree of {size} leaves "
                f"(valid: 0..{size - 1})"
            )

    def _range(self, lo: int, hi: int) -> bytes:
        """MTH of leaves ``[lo, hi)``, where ``lo`` is aligned as on the RFC decomposition."""
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        h = n.bit_length() - 1
        if n == 1 << h and lo % n == 0:
            return self._levels[h][lo >> h]
        k = _split(n)
        return node_hash(self._range(lo, lo + k), self._range(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all).  Raises ValueError if too large."""
        return self._range(0, self._check_size(size))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path of leaf ``index`` in the tree of the first ``size`` leaves (default: all).

        Raises ValueError if ``size`` exceeds the tree or ``index`` is not below ``size``.
        """
        n = self._check_size(size)
        self._check_index(index, n)
        proof: list[bytes] = []
        lo, hi = 0, n
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                proof.append(self._range(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._range(lo, lo + k))
                lo += k
        proof.reverse()
        return proof

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Consistency proof from the first ``old_size`` leaves to the first ``new_size``.

        Raises ValueError unless ``0 <= old_size <= new_size <= self.size``.
        """
        n = self._check_size(new_size)
        if not 0 <= old_size <= n:
            raise ValueError(
                f"old size {old_size} is out of range for new size {n} (valid: 0..{n})"
            )
        if old_size == 0 or old_size == n:
            return []
        proof: list[bytes] = []
        m, lo, hi, whole = old_size, 0, n, True
        while m != hi - lo:
            k = _split(hi - lo)
            if m <= k:
                proof.append(self._range(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._range(lo, lo + k))
                lo += k
                m -= k
                whole = False
        if not whole:
            proof.append(self._range(lo, hi))
        proof.reverse()
        return proof


# --------------------------------------------------------------------------------------
# Event commitments.

#: domain-separation tag at the start of every event-commitment leaf
COMMITMENT_DOMAIN = b"psc/v1/event-commitment\x00"

#: length of the per-leaf salt in bytes
SALT_SIZE = 32

_HEX64 = re.compile(r"[0-9a-f]{64}")


def commitment_leaf(
    subject: int, rule_id: str, evidence_hex: str, date: dt.date, salt: bytes
) -> bytes:
    """The leaf *data* an agency commits to for one event (see ``protocols/log.md``).

    Encoding (all integers big-endian, fixed widths, so no two inputs share an encoding)::

        "psc/v1/event-commitment" 0x00      24 bytes, domain separation
        subject                             u64, pseudonymous slot index
        len(rule_id as UTF-8)               u16
        rule_id as UTF-8                    1..65535 bytes
        evidence                            32 bytes, the SHA-256 from ``evidence_hex``
        year, month, day                    u16, u8, u8
        salt                                32 bytes, fresh and uniformly random per leaf

    Hash it with :func:`leaf_hash` (or pass a list of these to :func:`root`).

    Why the salt: the committed root is handed to the aggregator and, through
    inclusion proofs, subjects receive sibling hashes of *other* people's events.
    Without a salt every leaf is a deterministic function of low-entropy fields (a
    slot index, one of a few dozen rules, a date) and an evidence hash that is often
    guessable or public (a published judgment, a fine notice template), so anyone could
    test "did slot 4711 get a traffic violation on 3 May?" against a root or a sibling
    hash.  A 256-bit secret salt per leaf makes each leaf hash a hiding commitment; the
    salt is revealed only to the subject together with the proof for their own leaf.

    Randomness is an argument: draw ``salt`` with ``os.urandom(32)`` (or
    ``secrets.token_bytes(32)``) and keep it with the event; never reuse a salt.  To hide
    how many events were committed, place leaves in random order and pad with dummy
    leaves of 32 random bytes (every commitment leaf is at least 103 bytes, so a dummy opens to no event);
    see ``protocols/log.md`` section 3.

    Raises ValueError for a subject outside ``0..2**64-1``, an empty or over-long rule
    id, an evidence string that is not 64 lowercase hex digits, a ``datetime`` instead
    of a ``date``, or a salt that is not exactly 32 bytes.
    """
    if isinstance(subject, bool) or not isinstance(subject, int) or not 0 <= subject < 1 << 64:
        raise ValueError(f"subject must be a slot index in 0..2**64-1, got {subject!r}")
    if not isinstance(rule_id, str) or not rule_id:
        raise ValueError(f"rule_id must be a non-empty string, got {rule_id!r}")
    rule = rule_id.encode("utf-8")
    if len(rule) > 0xFFFF:
        raise ValueError(f"rule_id is {len(rule)} bytes in UTF-8; at most 65535 fit")
    if not isinstance(evidence_hex, str) or not _HEX64.fullmatch(evidence_hex):
        raise ValueError(
            "evidence_hex must be the lowercase hex SHA-256 of the official document "
            f"(64 characters 0-9a-f), got {evidence_hex!r}"
        )
    if isinstance(date, dt.datetime) or not isinstance(date, dt.date):
        raise ValueError(f"date must be a datetime.date (not a datetime), got {date!r}")
    if not isinstance(salt, bytes | bytearray) or len(salt) != SALT_SIZE:
        raise ValueError(
            f"salt must be exactly {SALT_SIZE} random bytes (e.g. os.urandom({SALT_SIZE})), "
            f"got {len(salt) if isinstance(salt, bytes | bytearray) else type(salt).__name__}"
        )
    return b"".join(
        (
            COMMITMENT_DOMAIN,
            subject.to_bytes(8, "big"),
            len(rule).to_bytes(2, "big"),
            rule,
            bytes.fromhex(evidence_hex),
            date.year.to_bytes(2, "big"),
            bytes((date.month, date.day)),
            bytes(salt),
        )
    )
