"""The aggregator's public log over HTTP: read-only routes a log mirror syncs from.

Normative: ``protocols/service.md`` section 8.  Anyone may read the transparency log
(``protocols/log.md`` section 4: it holds hashes and public metadata only) and the public
records its leaves name: the signed tree head, a bounded page of leaves, a consistency
proof between two sizes, and by hash or name the sealed envelope, registration or
adjustment a leaf's digest commits to.  Every answer is either signed by the log's key or
checkable against what is (a leaf page against a signed root, a record against its
leaf's digest), so a reader trusts none of them as served: :mod:`psc.service.replica`
verifies each before use.

Bounds: a page is at most :data:`~psc.protocol.log_messages.MAX_PAGE_LEAVES` leaves and
:data:`~psc.protocol.log_messages.MAX_PAGE_BYTES` bytes (a page ends early rather than
exceed the byte bound, and always carries one leaf).  Every route only reads; a refused
request (400 malformed, 404 unknown or beyond the log) changes nothing.

Leaks: nothing that is not already public in the log; the aggregator learns which
records a reader fetched and when (so a member's sync timing tells it when a reveal is
checked, which it knows anyway: it prepared the request).
"""

from __future__ import annotations

import re

from fastapi import FastAPI

from psc.parties.aggregator import Aggregator
from psc.protocol import codec
from psc.protocol.log_messages import MAX_PAGE_BYTES, MAX_PAGE_LEAVES, ConsistencyProof, LogLeaves
from psc.protocol.logview import stored_adjustment
from psc.protocol.messages import TreeHead
from psc.service.http import cbor_get

#: A tree size or leaf index in a path: a decimal without leading zeros, below 10**19.
SIZE_PATTERN = "^(0|[1-9][0-9]{0,18})$"
#: A SHA-256 digest in a path: 64 lowercase hex digits.
HASH_PATTERN = "^[0-9a-f]{64}$"
#: A registered party's name (``protocols/ingest.md``); ``#`` travels as ``%23``.
PARTY_PATTERN = "^[a-z0-9][a-z0-9._#:-]{0,127}$"

_SIZE = re.compile(SIZE_PATTERN)
_HASH = re.compile(HASH_PATTERN)
_PARTY = re.compile(PARTY_PATTERN)


def _size(value: str, name: str) -> int:
    if not _SIZE.match(value):
        raise ValueError(f"{name} must be a decimal integer in 0..10**19-1, got {value[:40]!r}")
    return int(value)


def _hash(value: str, name: str) -> bytes:
    if not _HASH.match(value):
        raise ValueError(f"{name} must be 64 lowercase hexadecimal digits")
    return bytes.fromhex(value)


def add_log_routes(app: FastAPI, aggregator: Aggregator) -> None:
    """Add the public log's read routes over ``aggregator``'s ledger to ``app``.

    Raises nothing itself; each route answers 400 (``ValueError``) for a malformed path
    parameter or range and 404 (``KeyError``) for a record or size the log does not have.
    """
    ledger = aggregator.ledger
    log = ledger.log

    def tree_head() -> bytes:
        sth = log.latest_tree_head()
        if sth is None:
            raise KeyError("the log has no signed tree head yet")
        return codec.encode(TreeHead(sth.size, sth.root, sth.timestamp_ms, sth.signature))

    cbor_get(
        app,
        "/v1/log/tree-head",
        tree_head,
        summary="the log's latest signed tree head (a tree-head message)",
        description="protocols/service.md section 8, protocols/log.md section 5.  "
        "404 before the first head is signed.",
        errors=(404,),
    )

    def leaves(start: str, end: str) -> bytes:
        lo, hi = _size(start, "start"), _size(end, "end")
        if not lo < hi:
            raise ValueError(f"the range {lo}..{hi} is empty: end must exceed start")
        if hi - lo > MAX_PAGE_LEAVES:
            raise ValueError(f"at most {MAX_PAGE_LEAVES} leaves per page, asked {hi - lo}")
        size = log.size
        if hi > size:
            raise KeyError(f"the log has {size} leaves; leaf {hi - 1} does not exist")
        entries: list[bytes] = []
        total = 0
        for i in range(lo, hi):
            entry = log.entry(i)
            total += len(entry)
            if entries and total > MAX_PAGE_BYTES:
                break
            entries.append(entry)
        return codec.encode(LogLeaves(lo, tuple(entries)))

    cbor_get(
        app,
        "/v1/log/leaves/{start}/{end}",
        leaves,
        summary="log leaves start..end-1, verbatim (a log-leaves page; may end early)",
        description="protocols/service.md section 8.  At most 256 leaves and 4 MiB per "
        "page: the page may carry fewer leaves than asked (ask again from where it "
        "ended).  400 for an empty or too wide range, 404 past the end of the log.",
        errors=(400, 404),
        patterns={"start": SIZE_PATTERN, "end": SIZE_PATTERN},
    )

    def consistency(old_size: str, new_size: str) -> bytes:
        old, new = _size(old_size, "old_size"), _size(new_size, "new_size")
        if old > new:
            raise ValueError(f"old_size {old} exceeds new_size {new}")
        size = log.size
        if new > size:
            raise KeyError(f"the log has {size} leaves, not {new}")
        return codec.encode(ConsistencyProof(old, new, tuple(log.consistency_proof(old, new))))

    cbor_get(
        app,
        "/v1/log/consistency/{old_size}/{new_size}",
        consistency,
        summary="the consistency proof between two tree sizes (a consistency-proof message)",
        description="protocols/service.md section 8, protocols/log.md section 6.  400 if "
        "old_size exceeds new_size, 404 past the end of the log.",
        errors=(400, 404),
        patterns={"old_size": SIZE_PATTERN, "new_size": SIZE_PATTERN},
    )

    def envelope(envelope_hash: str) -> bytes:
        rec = ledger.envelope(_hash(envelope_hash, "envelope_hash"))
        if rec is None:
            raise KeyError(f"no logged envelope {envelope_hash}")
        return rec.envelope

    cbor_get(
        app,
        "/v1/log/envelopes/{envelope_hash}",
        envelope,
        summary="a logged agency envelope, verbatim (sealed submission)",
        description="protocols/service.md section 8, protocols/submit.md.  Its SHA-256 is "
        "the digest of its submission leaf.  404 for an envelope not logged.",
        errors=(400, 404),
        patterns={"envelope_hash": HASH_PATTERN},
    )

    def party(party: str) -> bytes:
        if not _PARTY.match(party):
            raise ValueError("party is not a valid identifier")
        rec = ledger.party(party)
        if rec is None:
            raise KeyError(f"no registered party {party!r}")
        return rec.registration

    cbor_get(
        app,
        "/v1/log/parties/{party}",
        party,
        summary="a registered party's registry-signed registration, verbatim",
        description="protocols/service.md section 8, protocols/setup.md.  Its SHA-256 is "
        "the digest of the party's registration leaf.  404 for an unknown party.",
        errors=(400, 404),
        patterns={"party": PARTY_PATTERN},
    )

    def adjustment(adjustment_hash: str) -> bytes:
        sealed = stored_adjustment(ledger, _hash(adjustment_hash, "adjustment_hash"))
        if sealed is None:
            raise KeyError(f"no logged adjustment {adjustment_hash}")
        return sealed

    cbor_get(
        app,
        "/v1/log/adjustments/{adjustment_hash}",
        adjustment,
        summary="a logged rights adjustment, verbatim (sealed adjustment)",
        description="protocols/service.md section 8, protocols/rights.md.  Its SHA-256 is "
        "the digest of its adjustment-entry leaf.  404 for an adjustment not logged.",
        errors=(400, 404),
        patterns={"adjustment_hash": HASH_PATTERN},
    )


__all__ = ["HASH_PATTERN", "PARTY_PATTERN", "SIZE_PATTERN", "add_log_routes"]
