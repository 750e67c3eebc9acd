"""What a key holder or committee member checks a reveal against: the public log.

The aggregator's :class:`~psc.protocol.messages.RevealRequest` names a period, the grade
request it serves and a tree head (``tree_size``, ``tree_root``), and carries the blocks
to decrypt.  Nothing obliges a dishonest aggregator (or a combiner relaying it) to send
the *live sums*: ``c^K`` or ``c * E(offset)`` would turn a decryption into a score
oracle.  So whoever decrypts recomputes the blocks itself from the log:

    live(period) = prod over logged contributions (p, class, label, c) with
                   p <= period < p + months(class) of c   (mod n^2)

Multiplication mod ``n^2`` is commutative, so this equals the aggregator's accumulators
bit for bit when the aggregator is honest, and any other ciphertext is refused.

:class:`LogView` is the interface; :class:`LedgerLogView` reads the aggregator's public
SQLite ledger (a replica in a deployment; the file itself on one machine).  It checks
that the log's first ``tree_size`` leaves hash to ``tree_root``, that every logged
submission's envelope is stored, hashes to its leaf digest and carries its registered
agency's signature (the registration itself registry-signed), and sums the ciphertexts
with the catalog's public bounds.  A log leaf it cannot account for (a message type no
reader is registered for) makes it refuse, never skip: a reveal against sums it cannot
reproduce does not happen.

What it leaks: nothing; everything it reads is public (ciphertexts, hashes, keys).
Raises :class:`~psc.exceptions.InvalidMessage` for any mismatch.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from psc.exceptions import InvalidMessage, KeyMismatch, ParameterError, UnknownParty
from psc.hazmat.backends.paillier import PackedCiphertext
from psc.ledger.store import Ledger, SQLiteLedger
from psc.parties.registry import open_agency_registration
from psc.protocol import codec
from psc.protocol.heads import Prover
from psc.protocol.messages import LogEntry, RelyingPartyRegistration, Submission
from psc.protocol.parameters import (
    REGISTRY_ID,
    SCORE_LABEL,
    ProtocolParameters,
    cap_bounds,
    delta_bounds,
    trivial_zero,
)
from psc.protocol.signing import digest, open_signed

__all__ = [
    "Contribution",
    "LedgerLogView",
    "LiveSums",
    "LogView",
    "Requester",
    "stored_adjustment",
]


@dataclass(frozen=True)
class Contribution:
    """One logged ciphertext: what it adds to, from which period, under which label."""

    period: int  # the period whose retention window it lives in
    retention: str
    label: str  # SCORE_LABEL or a cap label
    ciphertext: PackedCiphertext  # with the catalog's public bound
    effective_period: int = 0  # first evaluation period it counts for (adjustments)


@dataclass(frozen=True)
class LiveSums:
    """The encrypted live sums of one period at one tree head: the score and each cap."""

    period: int
    tree_size: int
    by_label: dict[str, PackedCiphertext]

    def block(self, label: str, j: int) -> PackedCiphertext:
        """Block ``j`` of ``label`` as a one-block ciphertext (what a reveal decrypts)."""
        ct = self.by_label[label]
        S = ct.layout.slots
        return PackedCiphertext(
            ct.key_fingerprint, ct.layout, min(S, ct.n_values - j * S), ct.bound, (ct.blocks[j],)
        )


@dataclass(frozen=True)
class Requester:
    """A party allowed to ask for grades: its key and registered purposes (``None`` for
    the registry, which asks on subjects' behalf)."""

    public_key: bytes
    purposes: tuple[str, ...] | None


#: Reads the contributions of one log leaf of a given message type (e.g. the rights
#: workflow's adjustments).  Raises :class:`InvalidMessage` if the leaf is not backed.
ContributionReader = Callable[[bytes, Ledger, ProtocolParameters], Iterable[Contribution]]


class LogView(ABC):
    """Read access to the public log, for whoever must check a reveal against it."""

    params: ProtocolParameters

    @abstractmethod
    def requester(self, name: str) -> Requester:
        """The registered requester ``name``.  Raises :class:`UnknownParty`."""

    @abstractmethod
    def live_sums(self, period: int, tree_size: int, tree_root: bytes) -> LiveSums:
        """The live sums of ``period`` from the first ``tree_size`` log leaves, which must
        hash to ``tree_root``.  Raises :class:`InvalidMessage`."""

    def prover(self) -> Prover | None:
        """Consistency proofs between two sizes of the log, if this view can make them
        (``None``: heads are then only checked for equivocation)."""
        return None

    def check_blocks(
        self,
        period: int,
        tree_size: int,
        tree_root: bytes,
        blocks: Iterable[tuple[str, int, PackedCiphertext]],
    ) -> None:
        """Refuse unless every ``(label, block, ciphertext)`` is exactly that block of the
        period's live sums at the tree head.  Raises :class:`InvalidMessage` naming the
        first block that differs."""
        live = self.live_sums(period, tree_size, tree_root)
        for label, j, ct in blocks:
            if label not in live.by_label:
                raise InvalidMessage(f"block label {label!r} is neither the score nor a cap")
            want = live.by_label[label]
            if not 0 <= j < len(want.blocks) or len(ct.blocks) != 1:
                raise InvalidMessage(f"block ({label}, {j}) does not exist")
            if ct.blocks[0] != want.blocks[j] or ct.key_fingerprint != want.key_fingerprint:
                raise InvalidMessage(
                    f"block ({label}, {j}) is not the live sum of the logged contributions "
                    f"for period {period} at tree size {tree_size}: refused"
                )


class LedgerLogView(LogView):
    """A :class:`LogView` over the aggregator's SQLite ledger.

    ``ledger`` is either an open :class:`~psc.ledger.store.Ledger` (in-process parties) or the
    path of its file, opened read-side by each process that uses the view (members in
    their own processes; a connection is never shared across ``fork``).  ``readers``
    adds contribution readers for log message types other than ``log-entry`` (keyed by
    the message's wire type).
    """

    def __init__(
        self,
        params: ProtocolParameters,
        ledger: Ledger | str | os.PathLike[str],
        *,
        readers: dict[str, ContributionReader] | None = None,
    ) -> None:
        self.params = params
        self._pid = os.getpid()
        if isinstance(ledger, Ledger):
            self._ledger: Ledger | None = ledger
            path = getattr(ledger, "path", ":memory:")
        else:
            self._ledger = None
            path = str(ledger)
        self._path = str(path)
        self._readers = {"adjustment-entry": _adjustment_contributions, **(readers or {})}
        self._cache: dict[tuple[int, int, bytes], LiveSums] = {}
        self._keys: dict[str, bytes] = {}

    def register_reader(self, message_type: str, reader: ContributionReader) -> None:
        """Account for log leaves of ``message_type`` with ``reader``."""
        self._readers[message_type] = reader

    def _open(self) -> Ledger:
        if self._ledger is not None and os.getpid() == self._pid:
            return self._ledger
        if self._path == ":memory:":
            raise ParameterError(
                "this log view wraps an in-memory ledger, which another process cannot "
                "read; keep the ledger in a file (ledger_path) for parties in their own processes"
            )
        self._ledger, self._pid = SQLiteLedger(self._path), os.getpid()
        return self._ledger

    def prover(self) -> Prover | None:
        def prove(old: int, new: int) -> list[bytes]:
            return list(self._open().log.consistency_proof(old, new))

        return prove

    # -- keys ------------------------------------------------------------------------------
    def requester(self, name: str) -> Requester:
        if name == REGISTRY_ID:
            return Requester(self.params.registry_key, None)
        rec = self._open().party(name)
        if rec is None or rec.role != "relying-party":
            raise UnknownParty(f"requester {name!r} is not a registered relying party")
        reg = open_signed(
            rec.registration, RelyingPartyRegistration, lambda m: self.params.registry_key
        )
        if reg.party != name or reg.public_key != rec.public_key:
            raise InvalidMessage(f"the ledger's record of {name!r} is not its registration")
        return Requester(reg.public_key, tuple(reg.purposes))

    def _agency_key(self, led: Ledger, agency: str) -> tuple[bytes, str]:
        rec = led.party(agency)
        if rec is None or rec.role != "agency":
            raise InvalidMessage(f"a logged envelope names {agency!r}, not a registered agency")
        reg = open_agency_registration(rec.registration, self.params)
        if reg.agency != agency or reg.public_key != rec.public_key:
            raise InvalidMessage(
                f"the ledger's record of agency {agency!r} is not its registration"
            )
        return reg.public_key, reg.catalog_agency

    # -- contributions ---------------------------------------------------------------------
    def _submission(self, led: Ledger, entry: LogEntry) -> list[Contribution]:
        rec = led.envelope(entry.digest)
        if rec is None or digest(rec.envelope) != entry.digest:
            raise InvalidMessage(
                f"the log holds a submission by {entry.party!r} whose envelope is not stored"
            )
        key, catalog_agency = self._agency_key(led, entry.party)
        sub = open_signed(rec.envelope, Submission, lambda m: key)
        if (sub.agency, sub.period) != (entry.party, entry.period):
            raise InvalidMessage("a logged envelope differs from its log entry")
        cat = self.params.catalog
        d_bounds = delta_bounds(cat, catalog_agency)
        c_bounds = cap_bounds(cat, catalog_agency)
        backend = self.params.backend()
        out = []
        try:
            for d in sub.deltas:
                ct = backend.deserialize(d.ciphertext).with_bound(d_bounds[d.retention])
                out.append(Contribution(sub.period, d.retention, SCORE_LABEL, ct))
            for c in sub.caps:
                ct = backend.deserialize(c.ciphertext).with_bound(c_bounds[(c.retention, c.cap)])
                out.append(Contribution(sub.period, c.retention, c.cap, ct))
        except (KeyError, KeyMismatch) as exc:
            raise InvalidMessage("a logged envelope does not match its agency's rules") from exc
        return out

    def _contributions(self, led: Ledger, tree_size: int) -> list[Contribution]:
        out: list[Contribution] = []
        for i in range(tree_size):
            leaf = led.log.entry(i)
            kind = codec.message_type(leaf)
            if kind == LogEntry.TYPE:
                entry = codec.decode(leaf, LogEntry)
                if entry.kind == "submission":
                    out += self._submission(led, entry)
                continue
            reader = self._readers.get(kind)
            if reader is None:
                raise InvalidMessage(
                    f"log leaf {i} is a {kind!r} this view cannot account for; refusing to "
                    "check a reveal against sums it cannot reproduce"
                )
            out += reader(leaf, led, self.params)
        return out

    def live_sums(self, period: int, tree_size: int, tree_root: bytes) -> LiveSums:
        key = (period, tree_size, tree_root)
        if key in self._cache:
            return self._cache[key]
        led = self._open()
        if not 0 <= tree_size <= led.log.size:
            raise InvalidMessage(f"the log has {led.log.size} leaves, not {tree_size}")
        if led.log.root(tree_size) != tree_root:
            raise InvalidMessage(f"the log's root at size {tree_size} is not the one named")
        cat = self.params.catalog
        parts: dict[str, list[PackedCiphertext]] = {SCORE_LABEL: []}
        parts.update({label: [] for label in cat.cap_labels()})
        for c in self._contributions(led, tree_size):
            months = cat.retention[c.retention].months
            if c.period <= period < c.period + months and c.effective_period <= period:
                parts[c.label].append(c.ciphertext)
        zero = trivial_zero(self.params)
        live = LiveSums(
            period,
            tree_size,
            {
                label: _product(cts, int(self.params.public_key.nsquare)) if cts else zero
                for label, cts in parts.items()
            },
        )
        self._cache[key] = live
        return live


def _product(cts: list[PackedCiphertext], nsquare: int) -> PackedCiphertext:
    """Block-wise product mod ``n^2``: the encrypted sum.  Only the ciphertext values are
    compared with a reveal's blocks, so the bound is left at the layout's maximum."""
    first = cts[0]
    acc = list(first.blocks)
    for ct in cts[1:]:
        for j, x in enumerate(ct.blocks):
            acc[j] = acc[j] * x % nsquare
    return PackedCiphertext(
        first.key_fingerprint, first.layout, first.n_values, first.layout.max_value, tuple(acc)
    )


def stored_adjustment(led: Ledger, adjustment_hash: bytes) -> bytes | None:
    """The sealed adjustment (rights workflow) stored next to ``led`` under its hash, or
    ``None`` (no such adjustment, no ``adjustments`` table, or not a SQLite ledger).  What
    the aggregator serves at ``GET /v1/log/adjustments/{hash}`` and what a log view sums;
    the caller checks the bytes against the log leaf's digest."""
    if not isinstance(led, SQLiteLedger):
        return None
    conn = led.connection
    table = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'adjustments'"
    if conn.execute(table).fetchone() is None:
        return None
    row = conn.execute(
        "SELECT adjustment FROM adjustments WHERE adjustment_hash = ?", (adjustment_hash,)
    ).fetchone()
    return None if row is None else bytes(row[0])


def _adjustment_contributions(
    leaf: bytes, led: Ledger, params: ProtocolParameters
) -> list[Contribution]:
    """The rights workflow's logged adjustments (``protocols/rights.md``): a compensating
    encrypted vector amending the accumulators of its original envelope's period, counted
    from its effective period on.  The sealed adjustment must be stored next to the ledger,
    hash to the leaf's digest and carry its agency's signature."""
    from psc.parties.rights.messages import Adjustment, AdjustmentEntry  # no import cycle

    entry = codec.decode(leaf, AdjustmentEntry)
    if not isinstance(led, SQLiteLedger):
        raise InvalidMessage("adjustments are stored next to a SQLite ledger only")
    sealed = stored_adjustment(led, entry.digest)
    if sealed is None or digest(sealed) != entry.digest:
        raise InvalidMessage(f"the log holds an adjustment by {entry.party!r} that is not stored")
    rec = led.party(entry.party)
    if rec is None or rec.role != "agency":
        raise InvalidMessage(f"a logged adjustment names {entry.party!r}, not an agency")
    reg = open_agency_registration(rec.registration, params)
    adj = open_signed(sealed, Adjustment, lambda m: reg.public_key)
    if (adj.agency, adj.period, adj.effective_period) != (
        entry.party,
        entry.period,
        entry.effective_period,
    ):
        raise InvalidMessage("a logged adjustment differs from its log entry")
    backend = params.backend()
    out = []
    try:
        for d in adj.deltas:
            ct = backend.deserialize(d.ciphertext)
            out.append(Contribution(adj.period, d.retention, SCORE_LABEL, ct, adj.effective_period))
        for c in adj.caps:
            ct = backend.deserialize(c.ciphertext)
            out.append(Contribution(adj.period, c.retention, c.cap, ct, adj.effective_period))
    except KeyMismatch as exc:
        raise InvalidMessage("a logged adjustment is under another key") from exc
    return out
