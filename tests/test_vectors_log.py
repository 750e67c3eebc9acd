"""Replay every case of ``protocols/vectors/log.json`` (spec ``protocols/log.md``)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocols import gen_log
from psc.exceptions import InvalidMessage, LogVerificationFailed
from psc.hazmat import merkle
from psc.ledger.log_verify import verify_log
from psc.ledger.translog import (
    SignedTreeHead,
    TransparencyLog,
    tree_head_bytes,
    verify_tree_head_signature,
)

PATH = Path(__file__).resolve().parent.parent / "protocols" / "vectors" / "log.json"
V: dict[str, Any] = json.loads(PATH.read_text())
PUB = Ed25519PublicKey.from_public_bytes(bytes.fromhex(V["log_key"]["public_key"]))


def b(h: str) -> bytes:
    return bytes.fromhex(h)


def accepts(check: Any) -> bool:
    try:
        check()
    except InvalidMessage:
        return False
    return True


def ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in cases]


def test_file_is_current_and_versioned() -> None:
    assert V["version"] == 1
    assert PATH.read_text() == gen_log.render(), "run: python -m protocols.generate log"


def test_key_and_roots() -> None:
    key = Ed25519PrivateKey.from_private_bytes(b(V["log_key"]["private_seed"]))
    assert (
        key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
        == (V["log_key"]["public_key"])
    )
    entries = [b(e) for e in V["entries"]]
    for r in V["roots"]:
        assert merkle.root(entries[: r["size"]]).hex() == r["root"]
    assert V["roots"][0]["root"] == merkle.EMPTY_ROOT.hex()


@pytest.mark.parametrize(
    "case", V["inclusion"] + V["bad_inclusion"], ids=ids(V["inclusion"] + V["bad_inclusion"])
)
def test_inclusion(case: dict[str, Any]) -> None:
    proof = [b(p) for p in case["proof"]]
    ok = accepts(
        lambda: merkle.verify_inclusion(
            b(case["entry"]), case["index"], case["size"], proof, b(case["root"])
        )
    )
    assert ok == (case["expect"] == "accept")
    if ok:  # good proofs are also what the prover produces
        entries = [b(e) for e in V["entries"][: case["size"]]]
        assert merkle.inclusion_proof(entries, case["index"]) == proof


@pytest.mark.parametrize(
    "case",
    V["consistency"] + V["bad_consistency"],
    ids=ids(V["consistency"] + V["bad_consistency"]),
)
def test_consistency(case: dict[str, Any]) -> None:
    proof = [b(p) for p in case["proof"]]
    ok = accepts(
        lambda: merkle.verify_consistency(
            case["old_size"], case["new_size"], b(case["old_root"]), b(case["new_root"]), proof
        )
    )
    assert ok == (case["expect"] == "accept")
    if ok:
        entries = [b(e) for e in V["entries"][: case["new_size"]]]
        assert merkle.consistency_proof(entries, case["old_size"]) == proof


@pytest.mark.parametrize(
    "case", V["tree_heads"] + V["bad_tree_heads"], ids=ids(V["tree_heads"] + V["bad_tree_heads"])
)
def test_tree_heads(case: dict[str, Any]) -> None:
    sth = SignedTreeHead.from_json(case)
    signed = b(case["signed_bytes"])
    assert signed == tree_head_bytes(sth.size, sth.root, sth.timestamp_ms)
    assert signed.startswith(b"psc/v1/tree-head\x00")
    try:
        PUB.verify(sth.signature, signed)  # plain Ed25519 over the documented bytes
        raw = True
    except InvalidSignature:
        raw = False
    lib = accepts(lambda: verify_tree_head_signature(sth, PUB))
    assert raw == lib == (case["expect"] == "accept")


def test_good_heads_match_a_log_built_from_the_entries() -> None:
    conn = sqlite3.connect(":memory:")
    log = TransparencyLog(conn)
    for e in V["entries"]:
        log.append(b(e))
    for case in V["tree_heads"]:
        log.verify_tree_head(SignedTreeHead.from_json(case), PUB)
    conn.close()


@pytest.mark.parametrize("i", range(len(V["commitments"]["leaves"])))
def test_commitments(i: int) -> None:
    c = V["commitments"]["leaves"][i]
    leaf = merkle.commitment_leaf(
        c["subject"], c["rule_id"], c["evidence"], dt.date.fromisoformat(c["date"]), b(c["salt"])
    )
    assert leaf.hex() == c["leaf"]
    assert merkle.leaf_hash(leaf).hex() == c["leaf_hash"]
    n = len(V["commitments"]["leaves"])
    merkle.verify_inclusion(
        leaf, c["index"], n, [b(p) for p in c["proof"]], b(V["commitments"]["root"])
    )


@pytest.mark.parametrize("case", V["bad_commitments"], ids=ids(V["bad_commitments"]))
def test_bad_commitments(case: dict[str, Any]) -> None:
    assert case["expect"] == "reject"
    assert case["root"] == V["commitments"]["root"]
    with pytest.raises(InvalidMessage):
        merkle.verify_inclusion(
            b(case["entry"]),
            case["index"],
            case["size"],
            [b(p) for p in case["proof"]],
            b(case["root"]),
        )


def _load(case: dict[str, Any]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    TransparencyLog(conn)  # creates the tables exactly as a real log does
    conn.executemany(
        "INSERT INTO log_leaves (idx, leaf_hash, entry) VALUES (?, ?, ?)",
        [(r["idx"], b(r["leaf_hash"]), b(r["entry"])) for r in case["leaves"]],
    )
    for h in case["tree_heads"]:
        conn.execute(
            "INSERT INTO log_tree_heads (size, root, timestamp_ms, signature) VALUES (?, ?, ?, ?)",
            (h["size"], b(h["root"]), h["timestamp_ms"], b(h["signature"])),
        )
    conn.commit()
    return conn


@pytest.mark.parametrize(
    "case", V["log_audits"] + V["bad_log_audits"], ids=ids(V["log_audits"] + V["bad_log_audits"])
)
def test_log_audits(case: dict[str, Any]) -> None:
    conn = _load(case)
    try:
        if case["expect"] == "accept":
            report = verify_log(conn, PUB)
            assert (report.size, report.root.hex()) == (case["size"], case["root"])
        else:
            with pytest.raises(LogVerificationFailed) as info:
                verify_log(conn, PUB)
            assert (info.value.problem, info.value.position) == (
                case["problem"],
                case["position"],
            )
    finally:
        conn.close()
