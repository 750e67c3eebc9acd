"""Write ``protocols/vectors/log_mirror.json``: what the aggregator's public log routes
serve and what a log replica accepts, good and ``bad_*`` (spec: ``protocols/service.md``
section 8).

Deterministic: the log, its key and timestamps are those of ``protocols/gen_log.py`` (11
entries, the key from a public seed), so regenerating is byte-identical unless the
protocol changed.  :func:`build` returns the document; ``tests/test_vectors_log_mirror.py``
checks that the file equals it and replays every case against
:mod:`psc.service.replica`.  The generator checks each expectation against the library
before writing, so a wrong vector cannot be written.

A replica holds the head at size 7 and is served the head at size 11.  Each case names
the ``stage`` whose check it exercises, in the order a replica runs them: ``head``
(decode and signature, :func:`~psc.service.replica.open_tree_head`), ``extension``
(against the held head, :func:`~psc.service.replica.check_extension`), ``page`` (decode
and range, :func:`~psc.service.replica.check_page`), ``leaves`` (the root rebuilt,
:func:`~psc.service.replica.check_leaves`).  Every bad case's ``error`` is
``InvalidMessage``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocols import gen_log
from psc.exceptions import InvalidMessage
from psc.hazmat import merkle
from psc.ledger.translog import SignedTreeHead
from psc.protocol import codec
from psc.protocol.log_messages import MAX_PAGE_LEAVES, ConsistencyProof, LogLeaves
from psc.protocol.messages import PROTOCOL_VERSION, TreeHead
from psc.service.replica import check_extension, check_leaves, check_page, open_tree_head

OUT = Path(__file__).parent / "vectors" / "log_mirror.json"
VERSION = 1
HELD, SERVED = 7, 11
T_HELD = gen_log.T0 + 60_000
T_SERVED = gen_log.T0 + 120_000


def _raw(message_type: str, fields: dict[str, Any]) -> bytes:
    """A message's CBOR written by hand (for encodings the codec refuses to write)."""
    return bytes(
        cbor2.dumps({"@t": message_type, "@v": PROTOCOL_VERSION, **fields}, canonical=True)
    )


def _tree_head(sth: SignedTreeHead) -> bytes:
    return codec.encode(TreeHead(sth.size, sth.root, sth.timestamp_ms, sth.signature))


def _page(start: int, entries: list[bytes]) -> bytes:
    return codec.encode(LogLeaves(start, tuple(entries)))


def _proof(old: int, new: int, proof: list[bytes]) -> bytes:
    return codec.encode(ConsistencyProof(old, new, tuple(proof)))


def _flip(b: bytes, at: int = 0) -> bytes:
    return b[:at] + bytes([b[at] ^ 0x01]) + b[at + 1 :]


class _World:
    """The log of ``gen_log``, a fork of it, and the heads a replica meets."""

    def __init__(self) -> None:
        self.key = gen_log.log_key()
        self.pub = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.entries = gen_log.entries()
        self.fork = self.entries[:5] + [gen_log._h(f"fork/{k}") for k in range(5, SERVED)]
        self.held = self.head(self.entries, HELD, T_HELD)
        self.served = self.head(self.entries, SERVED, T_SERVED)

    def head(
        self, entries: list[bytes], size: int, ts: int, key: Ed25519PrivateKey | None = None
    ) -> SignedTreeHead:
        return gen_log.sign_head(key or self.key, size, merkle.root(entries[:size]), ts)

    def held_hashes(self) -> list[bytes]:
        return [merkle.leaf_hash(e) for e in self.entries[:HELD]]


def replay(
    case: dict[str, Any], pub: bytes, held: SignedTreeHead, held_hashes: list[bytes]
) -> None:
    """Run a case's stage against the library; raises :class:`InvalidMessage` to refuse."""
    stage = case["stage"]
    if stage == "head":
        open_tree_head(bytes.fromhex(case["tree_head"]), pub)
    elif stage == "extension":
        new = open_tree_head(bytes.fromhex(case["tree_head"]), pub)
        raw = case.get("consistency_proof")
        proof = None if raw is None else codec.decode(bytes.fromhex(raw), ConsistencyProof)
        check_extension(held, new, proof)
    elif stage == "page":
        check_page(bytes.fromhex(case["page"]), case["start"], case["end"])
    elif stage == "leaves":
        new = open_tree_head(bytes.fromhex(case["tree_head"]), pub)
        entries: list[bytes] = []
        for p in case["pages"]:
            page = check_page(bytes.fromhex(p["page"]), p["start"], p["end"])
            entries += page.entries
        check_leaves(held_hashes, entries, new)
    else:
        raise ValueError(f"unknown stage {stage!r}")


def build() -> dict[str, Any]:
    w = _World()
    es, hx = w.entries, bytes.hex
    served_th = _tree_head(w.served)
    good_proof = merkle.consistency_proof(es[:SERVED], HELD)
    fork_head = w.head(w.fork, SERVED, T_SERVED)
    cases: list[dict[str, Any]] = [
        # -- heads ----------------------------------------------------------------------
        {"name": "served head", "stage": "head", "tree_head": hx(served_th)},
        {
            "name": "bad_head_other_key",
            "stage": "head",
            "tree_head": hx(_tree_head(w.head(es, SERVED, T_SERVED, gen_log.other_key()))),
        },
        {
            "name": "bad_head_flipped_signature",
            "stage": "head",
            "tree_head": hx(
                _tree_head(
                    SignedTreeHead(SERVED, w.served.root, T_SERVED, _flip(w.served.signature, 5))
                )
            ),
        },
        {
            "name": "bad_head_altered_root",
            "stage": "head",
            "tree_head": hx(
                _tree_head(
                    SignedTreeHead(SERVED, _flip(w.served.root), T_SERVED, w.served.signature)
                )
            ),
        },
        {
            "name": "bad_head_extra_field",
            "stage": "head",
            "tree_head": hx(
                _raw(
                    "tree-head",
                    {
                        "size": SERVED,
                        "root": w.served.root,
                        "timestamp_ms": T_SERVED,
                        "signature": w.served.signature,
                        "note": "x",
                    },
                )
            ),
        },
        # -- extension of the held head (size 7) ---------------------------------------------
        {
            "name": "larger head with its consistency proof",
            "stage": "extension",
            "tree_head": hx(served_th),
            "consistency_proof": hx(_proof(HELD, SERVED, good_proof)),
        },
        {"name": "the held head again", "stage": "extension", "tree_head": hx(_tree_head(w.held))},
        {
            "name": "bad_extension_fork_same_size",
            "stage": "extension",
            "tree_head": hx(_tree_head(w.head(w.fork, HELD, T_SERVED))),
        },
        {
            "name": "bad_extension_fork_larger_size",
            "stage": "extension",
            "tree_head": hx(_tree_head(fork_head)),
            "consistency_proof": hx(
                _proof(HELD, SERVED, merkle.consistency_proof(w.fork[:SERVED], HELD))
            ),
        },
        {
            "name": "bad_extension_altered_proof_node",
            "stage": "extension",
            "tree_head": hx(served_th),
            "consistency_proof": hx(_proof(HELD, SERVED, [_flip(good_proof[0]), *good_proof[1:]])),
        },
        {
            "name": "bad_extension_proof_for_other_sizes",
            "stage": "extension",
            "tree_head": hx(served_th),
            "consistency_proof": hx(
                _proof(HELD - 1, SERVED, merkle.consistency_proof(es[:SERVED], HELD - 1))
            ),
        },
        {"name": "bad_extension_no_proof", "stage": "extension", "tree_head": hx(served_th)},
        {
            "name": "bad_extension_shrinking_log",
            "stage": "extension",
            "tree_head": hx(_tree_head(w.head(es, HELD - 2, T_SERVED))),
        },
        {
            "name": "bad_extension_back_in_time",
            "stage": "extension",
            "tree_head": hx(_tree_head(w.head(es, SERVED, gen_log.T0))),
            "consistency_proof": hx(_proof(HELD, SERVED, good_proof)),
        },
        {
            "name": "bad_consistency_proof_short_node",
            "stage": "extension",
            "tree_head": hx(served_th),
            "consistency_proof": hx(
                _raw(
                    "consistency-proof",
                    {"old_size": HELD, "new_size": SERVED, "proof": [good_proof[0][:31]]},
                )
            ),
        },
        {
            "name": "bad_consistency_proof_old_above_new",
            "stage": "extension",
            "tree_head": hx(served_th),
            "consistency_proof": hx(
                _raw("consistency-proof", {"old_size": SERVED, "new_size": HELD, "proof": []})
            ),
        },
        # -- pages -------------------------------------------------------------------------
        {
            "name": "whole range",
            "stage": "page",
            "start": HELD,
            "end": SERVED,
            "page": hx(_page(HELD, es[HELD:SERVED])),
        },
        {
            "name": "a page that ends early (byte bound)",
            "stage": "page",
            "start": HELD,
            "end": SERVED,
            "page": hx(_page(HELD, es[HELD : HELD + 1])),
        },
        {
            "name": "bad_page_starts_elsewhere",
            "stage": "page",
            "start": HELD,
            "end": SERVED,
            "page": hx(_page(HELD + 1, es[HELD + 1 : SERVED])),
        },
        {
            "name": "bad_page_more_than_asked",
            "stage": "page",
            "start": HELD,
            "end": HELD + 2,
            "page": hx(_page(HELD, es[HELD:SERVED])),
        },
        {
            "name": "bad_page_empty",
            "stage": "page",
            "start": HELD,
            "end": SERVED,
            "page": hx(_raw("log-leaves", {"start": HELD, "entries": []})),
        },
        {
            "name": "bad_page_over_the_leaf_bound",
            "stage": "page",
            "start": 0,
            "end": MAX_PAGE_LEAVES + 1,
            "page": hx(_raw("log-leaves", {"start": 0, "entries": [b"x"] * (MAX_PAGE_LEAVES + 1)})),
        },
        {
            "name": "bad_page_negative_start",
            "stage": "page",
            "start": HELD,
            "end": SERVED,
            "page": hx(_raw("log-leaves", {"start": -1, "entries": es[HELD:SERVED]})),
        },
        # -- leaves against the served head ----------------------------------------------------
        {
            "name": "two pages rebuild the served root",
            "stage": "leaves",
            "tree_head": hx(served_th),
            "pages": [
                {"start": HELD, "end": SERVED, "page": hx(_page(HELD, es[HELD:9]))},
                {"start": 9, "end": SERVED, "page": hx(_page(9, es[9:SERVED]))},
            ],
        },
        {
            "name": "bad_leaves_rewritten_leaf",
            "stage": "leaves",
            "tree_head": hx(served_th),
            "pages": [
                {
                    "start": HELD,
                    "end": SERVED,
                    "page": hx(
                        _page(HELD, [es[HELD], _flip(es[HELD + 1]), *es[HELD + 2 : SERVED]])
                    ),
                }
            ],
        },
        {
            "name": "bad_leaves_missing_leaf",
            "stage": "leaves",
            "tree_head": hx(served_th),
            "pages": [
                {"start": HELD, "end": SERVED, "page": hx(_page(HELD, es[HELD : SERVED - 1]))}
            ],
        },
        {
            "name": "bad_leaves_of_a_fork",
            "stage": "leaves",
            "tree_head": hx(_tree_head(fork_head)),
            "pages": [{"start": HELD, "end": SERVED, "page": hx(_page(HELD, w.fork[HELD:SERVED]))}],
        },
    ]
    for case in cases:
        ok = _accepts(lambda c=case: replay(c, w.pub, w.held, w.held_hashes()))
        bad = case["name"].startswith("bad_")
        assert ok != bad, f"vector {case['name']!r} does not behave as labelled"
        case["expect"] = "reject" if bad else "accept"
        if bad:
            case["error"] = "InvalidMessage"
    good = [c for c in cases if not c["name"].startswith("bad_")]
    return {
        "version": VERSION,
        "spec": "protocols/service.md",
        "encoding": "byte strings are lowercase hex; messages are canonical CBOR",
        "log_key": {
            "private_seed": gen_log._h("log-key").hex(),
            "public_key": w.pub.hex(),
            "warning": "public test key: INSECURE, for vectors only",
        },
        "entries": [e.hex() for e in es],
        "held": {"tree_head": _tree_head(w.held).hex(), "size": HELD},
        "cases": good,
        "bad_cases": [c for c in cases if c["name"].startswith("bad_")],
    }


def _accepts(check: Callable[[], None]) -> bool:
    try:
        check()
    except InvalidMessage:
        return False
    return True


def render() -> str:
    """The exact text of the vector file."""
    return json.dumps(build(), indent=1) + "\n"


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render())
