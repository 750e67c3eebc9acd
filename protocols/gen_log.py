"""Write ``protocols/vectors/log.json``: Merkle hashes, proofs, signed tree heads, event
commitments and whole-log audits, good and ``bad_*`` (spec: ``protocols/log.md``).

Deterministic: the log key is an Ed25519 key from a fixed seed (Ed25519 signing is
itself deterministic), entries and salts are SHA-256 of fixed labels, timestamps are
fixed, so regenerating is byte-identical unless the protocol changed.
:func:`build` returns the document; ``tests/test_vectors_log.py`` checks that the file
equals it and replays every case against the library.

Every case carries ``expect``: ``"accept"`` or ``"reject"`` (and, for log audits, the
problem kind and position :func:`psc.ledger.log_verify.verify_log` must report).  The generator
checks each expectation against the library before writing, so a wrong vector cannot be
written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from psc.exceptions import InvalidMessage, LogVerificationFailed
from psc.hazmat import merkle
from psc.ledger.log_verify import verify_log
from psc.ledger.translog import SignedTreeHead, tree_head_bytes, verify_tree_head_signature

OUT = Path(__file__).parent / "vectors" / "log.json"
VERSION = 1
SEED = b"psc/log/vectors/v1"
#: 2026-01-01T00:00:00Z in ms; tree head k is stamped a minute after head k-1
T0 = 1_767_225_600_000
N_ENTRIES = 11
HEAD_SIZES = (3, 7, 11)


def _h(label: str) -> bytes:
    return hashlib.sha256(SEED + b"|" + label.encode()).digest()


def log_key() -> Ed25519PrivateKey:
    """The vectors' log key (public seed: INSECURE, for tests only)."""
    return Ed25519PrivateKey.from_private_bytes(_h("log-key"))


def other_key() -> Ed25519PrivateKey:
    """A second key, to sign heads the log key did not."""
    return Ed25519PrivateKey.from_private_bytes(_h("other-key"))


def entries() -> list[bytes]:
    """The log's entries: stand-ins for envelope digests (opaque, no personal data)."""
    return [_h(f"entry/{k}") for k in range(N_ENTRIES)]


def sign_head(
    key: Ed25519PrivateKey, size: int, root: bytes, ts: int, *, domain: bool = True
) -> SignedTreeHead:
    msg = tree_head_bytes(size, root, ts)
    if not domain:  # a signature over the fields without the domain prefix
        msg = msg[len(b"psc/v1/tree-head\x00") :]
    return SignedTreeHead(size=size, root=root, timestamp_ms=ts, signature=key.sign(msg))


def _hex(bs: Sequence[bytes]) -> list[str]:
    return [b.hex() for b in bs]


def _flip(b: bytes, at: int = 0) -> bytes:
    return b[:at] + bytes([b[at] ^ 0x01]) + b[at + 1 :]


def _accepts(check: Callable[[], None]) -> bool:
    try:
        check()
    except InvalidMessage:
        return False
    return True


def _inclusion_case(
    name: str, leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes, expect: str
) -> dict[str, Any]:
    ok = _accepts(lambda: merkle.verify_inclusion(leaf, index, size, proof, root))
    if ok != (expect == "accept"):
        raise AssertionError(f"inclusion vector {name!r}: library disagrees with {expect!r}")
    return {
        "name": name,
        "entry": leaf.hex(),
        "index": index,
        "size": size,
        "proof": _hex(proof),
        "root": root.hex(),
        "expect": expect,
    }


def _consistency_case(
    name: str, old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes], expect: str
) -> dict[str, Any]:
    ok = _accepts(lambda: merkle.verify_consistency(old, new, old_root, new_root, proof))
    if ok != (expect == "accept"):
        raise AssertionError(f"consistency vector {name!r}: library disagrees with {expect!r}")
    return {
        "name": name,
        "old_size": old,
        "new_size": new,
        "old_root": old_root.hex(),
        "new_root": new_root.hex(),
        "proof": _hex(proof),
        "expect": expect,
    }


def _head_case(name: str, sth: SignedTreeHead, expect: str) -> dict[str, Any]:
    pub = log_key().public_key()
    ok = _accepts(lambda: verify_tree_head_signature(sth, pub))
    if ok != (expect == "accept"):
        raise AssertionError(f"tree-head vector {name!r}: library disagrees with {expect!r}")
    return {
        "name": name,
        **sth.to_json(),
        "signed_bytes": tree_head_bytes(sth.size, sth.root, sth.timestamp_ms).hex(),
        "expect": expect,
    }


def _audit_case(
    name: str,
    rows: list[tuple[int, bytes, bytes]],
    heads: list[SignedTreeHead],
    expect: str,
    problem: str | None = None,
    position: int | None = None,
) -> dict[str, Any]:
    got = audit_rows(rows, [h.to_json() for h in heads], log_key().public_key())
    want: dict[str, Any] = {"expect": expect}
    if expect == "accept":
        # independent of the audit: what the rows themselves say
        want["size"] = len(rows)
        want["root"] = merkle.root([e for _, _, e in rows]).hex()
    else:
        want["problem"] = problem
        want["position"] = position
    if {k: got[k] for k in want} != want:
        raise AssertionError(f"audit vector {name!r}: library says {got}, vector says {want}")
    return {
        "name": name,
        "leaves": [{"idx": i, "leaf_hash": h.hex(), "entry": e.hex()} for i, h, e in rows],
        "tree_heads": [h.to_json() for h in heads],
        **want,
    }


def audit_rows(
    rows: Sequence[tuple[int, bytes, bytes]], heads: Sequence[dict[str, Any]], public_key: Any
) -> dict[str, Any]:
    """Load rows and heads into an in-memory log database and run :func:`verify_log`.

    Returns ``{"expect": "accept", "size", "root"}`` or ``{"expect": "reject", "problem",
    "position"}``.  Shared by the generator and the vector test.
    """
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(
            "CREATE TABLE log_leaves (idx INTEGER PRIMARY KEY, leaf_hash BLOB NOT NULL,"
            " entry BLOB NOT NULL)"
        )
        conn.execute(
            "CREATE TABLE log_tree_heads (size INTEGER PRIMARY KEY, root BLOB NOT NULL,"
            " timestamp_ms INTEGER NOT NULL, signature BLOB NOT NULL)"
        )
        conn.executemany("INSERT INTO log_leaves VALUES (?, ?, ?)", rows)
        for obj in heads:
            h = SignedTreeHead.from_json(obj)
            conn.execute(
                "INSERT INTO log_tree_heads VALUES (?, ?, ?, ?)",
                (h.size, h.root, h.timestamp_ms, h.signature),
            )
        try:
            report = verify_log(conn, public_key)
        except LogVerificationFailed as exc:
            return {"expect": "reject", "problem": exc.problem, "position": exc.position}
        return {"expect": "accept", "size": report.size, "root": report.root.hex()}
    finally:
        conn.close()


def build() -> dict[str, Any]:
    """The whole vector document."""
    key = log_key()
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    es = entries()
    tree = merkle.MerkleTree(merkle.leaf_hash(e) for e in es)
    roots = [tree.root(n) for n in range(N_ENTRIES + 1)]
    heads = [sign_head(key, n, roots[n], T0 + 60_000 * k) for k, n in enumerate(HEAD_SIZES)]

    # -- inclusion ----------------------------------------------------------------------
    inclusion = [
        _inclusion_case(
            f"leaf {i} of {n}", es[i], i, n, tree.inclusion_proof(i, n), roots[n], "accept"
        )
        for i, n in ((0, 1), (0, 8), (5, 8), (6, 7), (3, 11), (10, 11))
    ]
    p = tree.inclusion_proof(5, 11)
    bad_inclusion = [
        _inclusion_case(
            "altered proof element", es[5], 5, 11, [p[0], _flip(p[1]), *p[2:]], roots[11], "reject"
        ),
        _inclusion_case("wrong index", es[5], 4, 11, p, roots[11], "reject"),
        _inclusion_case("wrong size (with that size's root)", es[5], 5, 10, p, roots[10], "reject"),
        _inclusion_case("wrong root", es[5], 5, 11, p, roots[10], "reject"),
        _inclusion_case("wrong entry", es[6], 5, 11, p, roots[11], "reject"),
        _inclusion_case("truncated proof", es[5], 5, 11, p[:-1], roots[11], "reject"),
        _inclusion_case("extra proof element", es[5], 5, 11, [*p, roots[11]], roots[11], "reject"),
        _inclusion_case("index not below size", es[5], 11, 11, p, roots[11], "reject"),
        _inclusion_case(
            "short proof element", es[5], 5, 11, [p[0][:31], *p[1:]], roots[11], "reject"
        ),
        _inclusion_case(
            "size beyond the proof (single leaf as a tree of 2)",
            es[0],
            0,
            2,
            [],
            roots[1],
            "reject",
        ),
    ]

    # -- consistency --------------------------------------------------------------------
    consistency = [
        _consistency_case(
            f"{m} to {n}", m, n, roots[m], roots[n], tree.consistency_proof(m, n), "accept"
        )
        for m, n in ((0, 11), (11, 11), (1, 8), (3, 7), (4, 8), (6, 11), (7, 11))
    ]
    c = tree.consistency_proof(3, 7)
    fork = [*es[:2], _h("forked entry 2"), *es[3:]]
    fork_root7 = merkle.root(fork[:7])
    bad_consistency = [
        _consistency_case(
            "altered proof element", 3, 7, roots[3], roots[7], [c[0], _flip(c[1]), *c[2:]], "reject"
        ),
        _consistency_case(
            "wrong old size (with that size's root)", 4, 7, roots[4], roots[7], c, "reject"
        ),
        _consistency_case(
            "wrong new size (with that size's root)", 3, 8, roots[3], roots[8], c, "reject"
        ),
        _consistency_case("swapped roots", 3, 7, roots[7], roots[3], c, "reject"),
        _consistency_case("empty proof", 3, 7, roots[3], roots[7], [], "reject"),
        _consistency_case("truncated proof", 3, 7, roots[3], roots[7], c[:-1], "reject"),
        _consistency_case("old size above new size", 7, 3, roots[7], roots[3], c, "reject"),
        _consistency_case(
            "inconsistent heads (forked history)", 3, 7, roots[3], fork_root7, c, "reject"
        ),
        _consistency_case(
            "inconsistent heads (forked history, its own proof)",
            3,
            7,
            roots[3],
            fork_root7,
            merkle.consistency_proof(fork[:7], 3),
            "reject",
        ),
        _consistency_case("equal sizes, different roots", 7, 7, roots[7], fork_root7, [], "reject"),
        _consistency_case("empty old tree, wrong old root", 0, 7, roots[3], roots[7], [], "reject"),
        _consistency_case(
            "new size beyond the proof (1 to 2 claimed as 1 to 3)",
            1,
            3,
            roots[1],
            roots[2],
            tree.consistency_proof(1, 2),
            "reject",
        ),
    ]

    # -- tree heads ---------------------------------------------------------------------
    h = heads[1]
    tree_heads = [_head_case(f"head at size {x.size}", x, "accept") for x in heads]
    bad_tree_heads = [
        _head_case(
            "flipped signature bit",
            SignedTreeHead(h.size, h.root, h.timestamp_ms, _flip(h.signature, 5)),
            "reject",
        ),
        _head_case(
            "altered root", SignedTreeHead(h.size, roots[6], h.timestamp_ms, h.signature), "reject"
        ),
        _head_case(
            "altered size", SignedTreeHead(8, h.root, h.timestamp_ms, h.signature), "reject"
        ),
        _head_case(
            "altered timestamp",
            SignedTreeHead(h.size, h.root, h.timestamp_ms + 1, h.signature),
            "reject",
        ),
        _head_case(
            "signed by another key", sign_head(other_key(), 7, roots[7], h.timestamp_ms), "reject"
        ),
        _head_case(
            "signature without the domain prefix",
            sign_head(key, 7, roots[7], h.timestamp_ms, domain=False),
            "reject",
        ),
    ]

    # -- event commitments --------------------------------------------------------------
    events = [
        (4711, "traffic.speeding", _h("evidence/0").hex(), dt.date(2025, 5, 3)),
        (4711, "tax.late_filing", _h("evidence/1").hex(), dt.date(2025, 6, 30)),
        (12, "traffic.speeding", _h("evidence/2").hex(), dt.date(2025, 5, 3)),
        (0, "utility.arrears", _h("evidence/3").hex(), dt.date(2025, 12, 31)),
        (2**64 - 1, "court.judgment_unfulfilled", _h("evidence/4").hex(), dt.date(2025, 1, 1)),
    ]
    salts = [_h(f"salt/{k}") for k in range(len(events))]
    leaves = [merkle.commitment_leaf(*ev, salt) for ev, salt in zip(events, salts, strict=True)]
    commit_root = merkle.root(leaves)
    commitments = {
        "root": commit_root.hex(),
        "leaves": [
            {
                "subject": s,
                "rule_id": r,
                "evidence": ev,
                "date": d.isoformat(),
                "salt": salt.hex(),
                "leaf": leaf.hex(),
                "leaf_hash": merkle.leaf_hash(leaf).hex(),
                "index": i,
                "proof": _hex(merkle.inclusion_proof(leaves, i)),
            }
            for i, ((s, r, ev, d), salt, leaf) in enumerate(zip(events, salts, leaves, strict=True))
        ],
    }
    forged = merkle.commitment_leaf(*events[0][:3], dt.date(2025, 5, 4), salts[0])
    bad_commitments = [
        _inclusion_case(
            "event with an altered date",
            forged,
            0,
            len(leaves),
            merkle.inclusion_proof(leaves, 0),
            commit_root,
            "reject",
        ),
        _inclusion_case(
            "event with another salt",
            merkle.commitment_leaf(*events[1], salts[0]),
            1,
            len(leaves),
            merkle.inclusion_proof(leaves, 1),
            commit_root,
            "reject",
        ),
    ]

    # -- whole-log audits ---------------------------------------------------------------
    rows = [(i, merkle.leaf_hash(e), e) for i, e in enumerate(es)]
    evil = _h("rewritten entry")

    def with_row(i: int, leaf_hash: bytes, entry: bytes) -> list[tuple[int, bytes, bytes]]:
        return [*rows[:i], (i, leaf_hash, entry), *rows[i + 1 :]]

    backdated = sign_head(key, 11, roots[11], T0)  # earlier than the head at size 7
    log_audits = [_audit_case("good log", rows, heads, "accept")]
    bad_log_audits = [
        _audit_case("removed leaf", [*rows[:4], *rows[5:]], heads, "reject", "missing-leaf", 4),
        _audit_case("removed tail under a head", rows[:9], heads, "reject", "missing-leaf", 9),
        _audit_case(
            "altered entry", with_row(2, rows[2][1], evil), heads, "reject", "altered-leaf", 2
        ),
        _audit_case(
            "altered entry and leaf hash",
            with_row(8, merkle.leaf_hash(evil), evil),
            heads,
            "reject",
            "root-mismatch",
            11,
        ),
        _audit_case(
            "altered tree head root",
            rows,
            [heads[0], SignedTreeHead(7, roots[6], h.timestamp_ms, h.signature), heads[2]],
            "reject",
            "bad-signature",
            7,
        ),
        _audit_case(
            "bad tree head signature",
            rows,
            [heads[0], heads[1], SignedTreeHead(11, roots[11], heads[2].timestamp_ms, bytes(64))],
            "reject",
            "bad-signature",
            11,
        ),
        _audit_case(
            "inconsistent heads (timestamp goes backwards)",
            rows,
            [heads[0], heads[1], backdated],
            "reject",
            "inconsistent-heads",
            11,
        ),
        _audit_case(
            "head over a forked history",
            rows,
            [heads[0], sign_head(key, 7, fork_root7, h.timestamp_ms), heads[2]],
            "reject",
            "root-mismatch",
            7,
        ),
    ]

    return {
        "version": VERSION,
        "spec": "protocols/log.md",
        "encoding": "byte strings are lowercase hex; sizes, indices and timestamps are JSON integers",
        "log_key": {
            "private_seed": _h("log-key").hex(),
            "public_key": pub.hex(),
            "warning": "public test key: INSECURE, for vectors only",
        },
        "entries": _hex(es),
        "roots": [{"size": n, "root": r.hex()} for n, r in enumerate(roots)],
        "inclusion": inclusion,
        "bad_inclusion": bad_inclusion,
        "consistency": consistency,
        "bad_consistency": bad_consistency,
        "tree_heads": tree_heads,
        "bad_tree_heads": bad_tree_heads,
        "commitments": commitments,
        "bad_commitments": bad_commitments,
        "log_audits": log_audits,
        "bad_log_audits": bad_log_audits,
    }


def render() -> str:
    """The exact text of the vector file."""
    return json.dumps(build(), indent=1) + "\n"


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render())
