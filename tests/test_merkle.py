"""Merkle trees (RFC 9162 2.1): known answers, proofs that verify, tampering that fails,
the incremental tree against the reference list functions, and event commitments."""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from psc.exceptions import InvalidMessage
from psc.hazmat import merkle
from psc.hazmat.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    commitment_leaf,
    consistency_proof,
    consistency_proof_from_hashes,
    inclusion_proof,
    inclusion_proof_from_hashes,
    leaf_hash,
    node_hash,
    root,
    root_from_hashes,
    verify_consistency,
    verify_inclusion,
    verify_inclusion_hash,
)


def sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def leaves_of(n: int) -> list[bytes]:
    """Distinct leaf data (distinct leaves keep index swaps from verifying by symmetry)."""
    return [b"leaf-" + i.to_bytes(4, "big") for i in range(n)]


def flip(h: bytes, bit: int = 0) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


# -- known answers --------------------------------------------------------------------

# The Certificate Transparency reference data (RFC 6962 test inputs, shared by the C++
# log, Trillian and most other implementations): eight leaves and the root of each prefix.
CT_LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243")] + [
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (index, size, proof): inclusion proofs from the same reference data
CT_INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# (old size, new size, proof)
CT_CONSISTENCY = [
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def test_hashes_follow_the_definition() -> None:
    assert EMPTY_ROOT == sha(b"") == root([]) == root_from_hashes([])
    assert leaf_hash(b"abc") == sha(b"\x00abc")
    a, b = sha(b"a"), sha(b"b")
    assert node_hash(a, b) == sha(b"\x01" + a + b)
    d = [b"x", b"y", b"z"]
    lh = [sha(b"\x00" + x) for x in d]
    assert root(d[:1]) == lh[0]
    assert root(d[:2]) == sha(b"\x01" + lh[0] + lh[1])
    # three leaves: the split is at the largest power of two below 3, i.e. ((0 1) 2)
    assert root(d) == sha(b"\x01" + sha(b"\x01" + lh[0] + lh[1]) + lh[2])


def test_certificate_transparency_roots() -> None:
    for n, want in enumerate(CT_ROOTS):
        assert root(CT_LEAVES[:n]).hex() == want
        assert MerkleTree(leaf_hash(d) for d in CT_LEAVES).root(n).hex() == want


@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION)
def test_certificate_transparency_inclusion(index: int, size: int, proof: list[str]) -> None:
    want = [bytes.fromhex(p) for p in proof]
    assert inclusion_proof(CT_LEAVES[:size], index) == want
    assert MerkleTree(leaf_hash(d) for d in CT_LEAVES).inclusion_proof(index, size) == want
    verify_inclusion(CT_LEAVES[index], index, size, want, bytes.fromhex(CT_ROOTS[size]))


@pytest.mark.parametrize(("old", "new", "proof"), CT_CONSISTENCY)
def test_certificate_transparency_consistency(old: int, new: int, proof: list[str]) -> None:
    want = [bytes.fromhex(p) for p in proof]
    assert consistency_proof(CT_LEAVES[:new], old) == want
    assert MerkleTree(leaf_hash(d) for d in CT_LEAVES).consistency_proof(old, new) == want
    verify_consistency(old, new, bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new]), want)


# -- property tests: proofs verify, tampering fails -----------------------------------


@st.composite
def sizes_and_indices(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(1, 300))
    return n, draw(st.integers(0, n - 1))


@settings(max_examples=150)
@given(sizes_and_indices(), st.data())
def test_inclusion_proofs_verify_and_tampering_fails(
    case: tuple[int, int], data: st.DataObject
) -> None:
    n, i = case
    leaves = leaves_of(n)
    r = root(leaves)
    proof = inclusion_proof(leaves, i)
    verify_inclusion(leaves[i], i, n, proof, r)
    verify_inclusion_hash(leaf_hash(leaves[i]), i, n, proof, r)
    assert len(proof) <= max(1, (n - 1).bit_length())

    def fails(leaf: bytes, idx: int, size: int, pf: list[bytes], rt: bytes) -> None:
        with pytest.raises(InvalidMessage):
            verify_inclusion(leaf, idx, size, pf, rt)

    bit = data.draw(st.integers(0, 7), label="bit")
    if proof:
        j = data.draw(st.integers(0, len(proof) - 1), label="element")
        fails(leaves[i], i, n, [*proof[:j], flip(proof[j], bit), *proof[j + 1 :]], r)
        fails(leaves[i], i, n, proof[:-1], r)  # truncated
    fails(leaves[i], i, n, [*proof, r], r)  # over-long
    fails(leaves[i], i, n, proof, flip(r, bit))  # altered root
    fails(leaves[i] + b"!", i, n, proof, r)  # altered leaf
    other = data.draw(st.integers(0, n).filter(lambda k: k != i), label="other index")
    fails(leaves[i], other, n, proof, r)  # altered index (n itself is out of range)
    # An inclusion proof does not authenticate the size by itself; the size comes with
    # its root from one signed tree head.  Paired with the root of that size, it fails.
    size2 = data.draw(st.integers(1, 310).filter(lambda s: s != n and s > i), label="size")
    fails(leaves[i], i, size2, proof, root(leaves_of(size2)))
    # With the same root, a size whose audit path has another length must fail (the
    # verifier consumes exactly the path of (index, size)); equal lengths may verify.
    if len(inclusion_proof_from_hashes([bytes(32)] * size2, i)) != len(proof):
        fails(leaves[i], i, size2, proof, r)


@st.composite
def old_and_new_sizes(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(1, 300))
    return draw(st.integers(0, new)), new


@settings(max_examples=150)
@given(old_and_new_sizes(), st.data())
def test_consistency_proofs_verify_and_tampering_fails(
    case: tuple[int, int], data: st.DataObject
) -> None:
    old, new = case
    leaves = leaves_of(new)
    r_old, r_new = root(leaves[:old]), root(leaves)
    proof = consistency_proof(leaves, old)
    verify_consistency(old, new, r_old, r_new, proof)
    if old in (0, new):
        assert proof == []
        return

    def fails(m: int, n: int, ro: bytes, rn: bytes, pf: list[bytes]) -> None:
        with pytest.raises(InvalidMessage):
            verify_consistency(m, n, ro, rn, pf)

    bit = data.draw(st.integers(0, 7), label="bit")
    j = data.draw(st.integers(0, len(proof) - 1), label="element")
    fails(old, new, r_old, r_new, [*proof[:j], flip(proof[j], bit), *proof[j + 1 :]])
    fails(old, new, r_old, r_new, proof[:-1])
    fails(old, new, r_old, r_new, [*proof, r_new])
    fails(old, new, r_old, r_new, [])
    fails(old, new, flip(r_old, bit), r_new, proof)
    fails(old, new, r_old, flip(r_new, bit), proof)
    fails(old, new, r_new, r_old, proof)  # swapped roots
    fails(new, old, r_old, r_new, proof)  # time travel
    # altered sizes, each paired with the honest root of the size claimed
    m2 = data.draw(st.integers(1, new).filter(lambda s: s != old), label="old size")
    fails(m2, new, root(leaves[:m2]), r_new, proof)
    n2 = data.draw(st.integers(old + 1, 310).filter(lambda s: s != new), label="new size")
    fails(old, n2, r_old, root(leaves_of(n2)), proof)
    # the same roots under a new size whose proof has another length
    if len(consistency_proof_from_hashes([bytes(32)] * n2, old)) != len(proof):
        fails(old, n2, r_old, r_new, proof)


def test_trivial_consistency_edge_cases() -> None:
    r = root(leaves_of(5))
    verify_consistency(5, 5, r, r, [])
    verify_consistency(0, 5, EMPTY_ROOT, r, [])
    with pytest.raises(InvalidMessage):
        verify_consistency(5, 5, r, flip(r), [])
    with pytest.raises(InvalidMessage):
        verify_consistency(5, 5, r, r, [r])
    with pytest.raises(InvalidMessage):
        verify_consistency(0, 5, r, r, [])  # the empty tree has exactly one root
    with pytest.raises(InvalidMessage):
        verify_consistency(0, 5, EMPTY_ROOT, r, [EMPTY_ROOT])


@pytest.mark.parametrize(
    "call",
    [
        lambda r: verify_inclusion(b"x", 0, 0, [], r),  # empty tree has no leaves
        lambda r: verify_inclusion(b"x", -1, 3, [], r),
        lambda r: verify_inclusion(b"x", 0, 1, [], r[:31]),  # short root
        lambda r: verify_inclusion(b"x", 0, 2, [b"\x00" * 31], r),  # short element
        lambda r: verify_inclusion_hash(b"\x00" * 31, 0, 1, [], r),
        lambda r: verify_consistency(1, 2, r, r, [b""]),
        lambda r: verify_consistency(-1, 2, r, r, []),
    ],
)
def test_malformed_verification_inputs_are_invalid_messages(
    call: Callable[[bytes], None],
) -> None:
    with pytest.raises(InvalidMessage):
        call(root([b"x"]))


def test_single_leaf_tree_has_an_empty_proof() -> None:
    verify_inclusion(b"x", 0, 1, [], leaf_hash(b"x"))
    assert inclusion_proof([b"x"], 0) == []


def test_a_proof_must_account_for_the_whole_size() -> None:
    # the final sn == 0 checks of RFC 9162: a proof too short for the claimed size fails
    # even when the hashes it does have reach the given root
    with pytest.raises(InvalidMessage):
        verify_inclusion(b"x", 0, 2, [], leaf_hash(b"x"))
    two = leaves_of(2)
    with pytest.raises(InvalidMessage):
        verify_consistency(1, 3, root(two[:1]), root(two), consistency_proof(two, 1))


def test_generation_rejects_out_of_range_with_value_errors() -> None:
    with pytest.raises(ValueError, match=r"leaf index 3 is out of range for a tree of 3"):
        inclusion_proof(leaves_of(3), 3)
    with pytest.raises(ValueError, match=r"old size 4 is out of range"):
        consistency_proof(leaves_of(3), 4)
    with pytest.raises(ValueError, match=r"leaf hash 1 must be 32 bytes"):
        root_from_hashes([bytes(32), b"short"])
    with pytest.raises(ValueError, match=r"leaf hash 0 must be 32 bytes"):
        inclusion_proof_from_hashes([b"x"], 0)
    with pytest.raises(ValueError, match=r"leaf hash 0 must be 32 bytes"):
        consistency_proof_from_hashes([b"x", bytes(32)], 1)
    tree = MerkleTree(leaf_hash(d) for d in leaves_of(4))
    with pytest.raises(ValueError, match=r"tree size 5 is out of range"):
        tree.root(5)
    with pytest.raises(ValueError, match=r"leaf index 2 is out of range for a tree of 2"):
        tree.inclusion_proof(2, 2)
    with pytest.raises(ValueError, match=r"old size 3 is out of range for new size 2"):
        tree.consistency_proof(3, 2)
    with pytest.raises(ValueError, match=r"a leaf hash must be 32 bytes"):
        tree.append(b"not a hash")


# -- the incremental tree against the reference ---------------------------------------


@settings(max_examples=60)
@given(st.integers(0, 300), st.data())
def test_merkle_tree_agrees_with_list_functions(n: int, data: st.DataObject) -> None:
    hashes = [leaf_hash(d) for d in leaves_of(n)]
    tree = MerkleTree()
    for k, h in enumerate(hashes):
        assert tree.append(h) == k
    assert tree.size == len(tree) == n
    assert tree.hashes() == hashes
    assert tree.root() == root_from_hashes(hashes)
    for _ in range(5):
        size = data.draw(st.integers(0, n), label="size")
        assert tree.root(size) == root_from_hashes(hashes[:size])
        old = data.draw(st.integers(0, size), label="old")
        assert tree.consistency_proof(old, size) == consistency_proof_from_hashes(
            hashes[:size], old
        )
        if size:
            i = data.draw(st.integers(0, size - 1), label="index")
            assert tree.leaf_hash(i) == hashes[i]
            assert tree.inclusion_proof(i, size) == inclusion_proof_from_hashes(hashes[:size], i)


@settings(max_examples=40)
@given(st.integers(0, 120), st.data())
def test_truncate_then_append_matches_a_fresh_tree(n: int, data: st.DataObject) -> None:
    hashes = [leaf_hash(d) for d in leaves_of(n)]
    cut = data.draw(st.integers(0, n))
    tree = MerkleTree(hashes)
    tree.truncate(cut)
    other = [leaf_hash(b"other" + bytes([k])) for k in range(data.draw(st.integers(0, 40)))]
    tree.extend(other)
    fresh = MerkleTree([*hashes[:cut], *other])
    assert tree.size == fresh.size
    assert tree.root() == fresh.root()
    assert [tree.root(s) for s in range(tree.size + 1)] == [
        fresh.root(s) for s in range(fresh.size + 1)
    ]
    with pytest.raises(ValueError, match="cannot truncate"):
        tree.truncate(tree.size + 1)


def test_merkle_tree_proofs_cost_logarithmic_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    n = (1 << 15) + 12_345  # unbalanced, deep
    tree = MerkleTree(leaf_hash(k.to_bytes(4, "big")) for k in range(n))
    calls = 0
    real = merkle.node_hash

    def counting(left: bytes, right: bytes) -> bytes:
        nonlocal calls
        calls += 1
        return real(left, right)

    monkeypatch.setattr(merkle, "node_hash", counting)
    depth = n.bit_length()
    for size, i, old in ((n, 7, 5), (n - 1, n - 2, n // 3), (40_000, 39_999, 33_000)):
        calls = 0
        r = tree.root(size)
        proof = tree.inclusion_proof(i, size)
        cproof = tree.consistency_proof(old, size)
        assert calls <= 6 * depth, calls
        verify_inclusion(i.to_bytes(4, "big"), i, size, proof, r)
        verify_consistency(old, size, tree.root(old), r, cproof)


# -- event commitments ----------------------------------------------------------------

EVIDENCE = hashlib.sha256(b"judgment 2025-17").hexdigest()
SALT = bytes(range(32))


def test_commitment_leaf_layout() -> None:
    leaf = commitment_leaf(4711, "traffic.speeding", EVIDENCE, dt.date(2025, 5, 3), SALT)
    rule = b"traffic.speeding"
    want = (
        b"psc/v1/event-commitment\x00"
        + struct.pack(">QH", 4711, len(rule))
        + rule
        + bytes.fromhex(EVIDENCE)
        + struct.pack(">HBB", 2025, 5, 3)
        + SALT
    )
    assert leaf == want
    assert len(leaf) == 24 + 8 + 2 + len(rule) + 32 + 4 + 32


@settings(max_examples=200)
@given(
    st.tuples(
        st.integers(0, 2**64 - 1),
        st.text(min_size=1, max_size=12),
        st.binary(min_size=32, max_size=32),
        st.dates(),
        st.binary(min_size=32, max_size=32),
    ),
    st.tuples(
        st.integers(0, 2**64 - 1),
        st.text(min_size=1, max_size=12),
        st.binary(min_size=32, max_size=32),
        st.dates(),
        st.binary(min_size=32, max_size=32),
    ),
)
def test_commitment_leaf_is_injective(
    a: tuple[int, str, bytes, dt.date, bytes], b: tuple[int, str, bytes, dt.date, bytes]
) -> None:
    def enc(t: tuple[int, str, bytes, dt.date, bytes]) -> bytes:
        return commitment_leaf(t[0], t[1], t[2].hex(), t[3], t[4])

    assert (enc(a) == enc(b)) == (a == b)


def test_salt_hides_otherwise_equal_events() -> None:
    args = (3, "tax.late_filing", EVIDENCE, dt.date(2025, 1, 31))
    one = leaf_hash(commitment_leaf(*args, salt=bytes(32)))
    two = leaf_hash(commitment_leaf(*args, salt=bytes(31) + b"\x01"))
    assert one != two


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subject": -1}, "subject must be a slot index"),
        ({"subject": 2**64}, "subject must be a slot index"),
        ({"subject": True}, "subject must be a slot index"),
        ({"rule_id": ""}, "rule_id must be a non-empty string"),
        ({"rule_id": "x" * 70_000}, "at most 65535 fit"),
        ({"evidence_hex": EVIDENCE.upper()}, "lowercase hex SHA-256"),
        ({"evidence_hex": EVIDENCE[:-2]}, "lowercase hex SHA-256"),
        ({"date": dt.datetime(2025, 1, 1, 12, 0)}, "not a datetime"),
        ({"salt": bytes(16)}, "salt must be exactly 32 random bytes"),
    ],
)
def test_commitment_leaf_rejects_bad_input(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "subject": 1,
        "rule_id": "r",
        "evidence_hex": EVIDENCE,
        "date": dt.date(2025, 1, 1),
        "salt": SALT,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        commitment_leaf(**args)  # type: ignore[arg-type]


def test_commitments_prove_membership() -> None:
    events = [
        commitment_leaf(
            s, "transport.fare_evasion", EVIDENCE, dt.date(2025, 3, s + 1), bytes([s]) * 32
        )
        for s in range(11)
    ]
    r = root(events)
    for i, leaf in enumerate(events):
        verify_inclusion(leaf, i, len(events), inclusion_proof(events, i), r)
