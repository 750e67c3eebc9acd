"""``psc log verify`` and ``psc log show``: audit and describe a transparency log.

``psc log verify --db PATH --public-key KEY [--trusted-head FILE] [--receipts FILE]``
checks the log's own tables, then the heads and receipts parties kept (a rewritten and
re-signed history fails here), then, when the database is an aggregator's ledger, maps
every envelope, adjustment and reveal row to its log entry and back and recounts every
accumulator from the logged envelopes.

Exit codes: 0 the log verifies (or was shown), 1 verification found a problem (printed
with its kind and position), 2 the input could not be read (no such database, not a
psc log, unreadable public key).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sqlite3
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from psc.exceptions import LogFormatError, LogVerificationFailed
from psc.ledger.log_verify import summarize_log, verify_log
from psc.ledger.translog import SignedTreeHead
from psc.protocol.log_audit import LedgerAudit, audit_ledger, verify_receipts

_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "log", help="audit (verify) or describe (show) a transparency log"
    )
    actions = p.add_subparsers(dest="log_command", required=True, metavar="ACTION")

    v = actions.add_parser(
        "verify",
        help="re-derive every leaf, check every signed tree head and their consistency",
    )
    v.add_argument("--db", required=True, help="the SQLite database holding the log")
    v.add_argument(
        "--public-key",
        required=True,
        help="the log's Ed25519 public key: 64 hex digits, or a file (hex, 32 raw bytes, or PEM)",
    )
    v.add_argument(
        "--trusted-head",
        action="append",
        default=[],
        metavar="FILE",
        help="signed tree heads a party kept (JSON: one head or a list, as psc log show and "
        "parties export them); each must be covered, unchanged and extended by the log "
        "(repeatable)",
    )
    v.add_argument(
        "--receipts",
        action="append",
        default=[],
        metavar="FILE",
        help="receipts a party kept (JSON list of hex: sealed ingest receipts or encoded log "
        "inclusions); the log must still hold what each vouches for (repeatable)",
    )
    v.set_defaults(func=run_verify)

    s = actions.add_parser("show", help="print the log size and its latest signed tree head")
    s.add_argument("--db", required=True, help="the SQLite database holding the log")
    s.set_defaults(func=run_show)


def load_public_key(spec: str) -> Ed25519PublicKey:
    """Parse an Ed25519 public key from 64 hex digits or a file (hex text, 32 raw bytes, PEM).

    Raises ValueError with what was expected.
    """
    if _HEX_KEY.fullmatch(spec.strip()):
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(spec.strip()))
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"public key {spec!r} is neither 64 hex digits nor a readable file")
    data = path.read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        key = load_pem_public_key(data)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"{path}: the PEM key is not an Ed25519 public key")
        return key
    if len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    text = data.decode("ascii", errors="replace").strip()
    if _HEX_KEY.fullmatch(text):
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))
    raise ValueError(f"{path}: expected 64 hex digits, 32 raw bytes or a PEM Ed25519 public key")


def _describe_head(sth: SignedTreeHead) -> list[str]:
    when = dt.datetime.fromtimestamp(sth.timestamp_ms / 1000, tz=dt.UTC)
    return [
        f"  size       {sth.size}",
        f"  root       {sth.root.hex()}",
        f"  timestamp  {sth.timestamp_ms} ms ({when.isoformat(timespec='milliseconds')})",
        f"  signature  {sth.signature.hex()}",
    ]


def run_verify(args: argparse.Namespace) -> int:
    try:
        key = load_public_key(args.public_key)
    except (ValueError, OSError) as exc:
        print(f"psc log verify: {exc}", file=sys.stderr)
        return 2
    try:
        heads = [h for f in args.trusted_head for h in _read_heads(f)]
        receipts = [r for f in args.receipts for r in _read_receipts(f)]
    except (ValueError, OSError) as exc:
        print(f"psc log verify: {exc}", file=sys.stderr)
        return 2
    try:
        report = verify_log(args.db, key, trusted_heads=heads)
        conn = sqlite3.connect(f"{Path(args.db).resolve().as_uri()}?mode=ro", uri=True)
        try:
            checked = verify_receipts(conn, key, receipts)
            ledger = _audit_ledger_if_any(conn)
        finally:
            conn.close()
    except LogFormatError as exc:
        print(f"psc log verify: {exc}", file=sys.stderr)
        return 2
    except LogVerificationFailed as exc:
        print(f"psc log verify: FAILED ({exc.problem} at {exc.position}): {exc}", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:
        print(f"psc log verify: {args.db}: cannot read the ledger: {exc}", file=sys.stderr)
        return 2
    print(f"log {args.db}: OK")
    if heads:
        print(f"  held heads    {len(heads)} (covered, unchanged and extended by the log)")
    if receipts:
        print(f"  receipts      {checked} (each one's history still in the log)")
    if ledger is not None:
        print(
            f"  ledger        {ledger.envelopes} envelope, {ledger.adjustments} adjustment and "
            f"{ledger.reveals} reveal row(s) mapped to their log entries and back; "
            f"{ledger.accumulators} accumulator(s) recounted from the logged envelopes"
        )
    print(f"  leaves        {report.size} (every hash re-derived from its entry)")
    print(f"  root          {report.root.hex()}")
    print(f"  tree heads    {report.tree_heads} (signatures and consistency checked)")
    if report.latest is None:
        print("  no signed tree head: the leaves are hash-checked but vouched for by no signature")
    else:
        print("latest signed tree head:")
        for line in _describe_head(report.latest):
            print(line)
    if report.unsigned_leaves:
        print(f"  {report.unsigned_leaves} leaf(s) appended after the latest tree head")
    return 0


def _read_json(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: {what} file is not JSON ({exc.msg})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: {what} file is not UTF-8 JSON") from None


def _read_heads(path: str) -> list[SignedTreeHead]:
    """Heads from a JSON file: one head object or a list of them.  Raises ValueError."""
    obj = _read_json(path, "--trusted-head")
    items = obj if isinstance(obj, list) else [obj]
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: head {i} is not a JSON object")
        try:
            out.append(SignedTreeHead.from_json(item))
        except ValueError as exc:
            raise ValueError(f"{path}: head {i}: {exc}") from None
    return out


def _read_receipts(path: str) -> list[bytes]:
    """Receipts from a JSON list of hex strings.  Raises ValueError."""
    obj = _read_json(path, "--receipts")
    if not isinstance(obj, list) or not all(isinstance(x, str) for x in obj):
        raise ValueError(f"{path}: --receipts takes a JSON list of hex strings")
    try:
        return [bytes.fromhex(x) for x in obj]
    except ValueError:
        raise ValueError(f"{path}: a receipt is not hex") from None


def _audit_ledger_if_any(conn: sqlite3.Connection) -> LedgerAudit | None:
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"envelopes", "accumulators", "reveals"} <= names:
        return None  # a bare log: nothing beside it to audit
    return audit_ledger(conn)


def run_show(args: argparse.Namespace) -> int:
    try:
        summary = summarize_log(args.db)
    except LogFormatError as exc:
        print(f"psc log show: {exc}", file=sys.stderr)
        return 2
    print(f"log {args.db}")
    print(f"  leaves        {summary.size}")
    print(f"  tree heads    {summary.tree_heads}")
    if summary.latest is None:
        print("  no signed tree head yet")
    else:
        print("latest signed tree head (not verified; use `psc log verify`):")
        for line in _describe_head(summary.latest):
            print(line)
    return 0
