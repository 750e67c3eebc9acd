"""The public log of BFV contributions and the live inputs whoever decrypts recomputes.

Agencies submit :class:`~psc.protocol.exact_messages.BfvContribution` blocks signed with their
registered keys; :class:`InputLog` appends the sealed bytes (RFC 9162 Merkle tree over
the entries, :mod:`psc.merkle`).  :meth:`InputLog.live_inputs` verifies every entry up to
a tree head again and sums, in log order, the blocks that are live at the period
(``p <= period < p + months(retention)``).  SEAL's addition is deterministic, so every
member and the combiner obtain bit-identical inputs from the same head.

What it leaks: nothing (ciphertexts, public metadata).  What it cannot check: that a BFV
ciphertext is well formed or encrypts a value in the catalog's range (no lattice
zero-knowledge proofs here; see ``protocols/threat-model.md`` §exact).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tenseal.sealapi as seal

from psc.catalog import Catalog
from psc.exceptions import InvalidMessage, UnknownParty
from psc.hazmat import merkle
from psc.hazmat.exact.ring import Ring
from psc.hazmat.exact.seal_io import raw
from psc.protocol.exact_messages import BfvContribution
from psc.protocol.signing import open_signed

SCORE = "score"


def ciphertext_bytes(ct: Any) -> bytes:
    """A ciphertext as sent: SEAL's uncompressed stream."""
    return raw(ct)


def load_ciphertext(ring: Ring, data: bytes, level: int = 0) -> Any:
    """Parse a SEAL ciphertext stream; SEAL validates it against the ring (sizes, primes,
    every word below its prime).  ``level``: the number of primes it must have (0: the
    top level, as every contribution).  Raises :class:`InvalidMessage` otherwise."""
    import os
    import tempfile

    ct = seal.Ciphertext()
    fd, path = tempfile.mkstemp(suffix=".seal")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        ct.load(ring.context, path)
    except (RuntimeError, ValueError) as exc:
        raise InvalidMessage("not a ciphertext for these parameters") from exc
    finally:
        os.unlink(path)
    want = ring.context.first_parms_id() if not level else ring.parms_id_at(level)
    if ct.size() != 2 or ct.parms_id() != want:
        raise InvalidMessage("a size-2 ciphertext at the expected level")
    return ct


class InputLog:
    """Append-only log of sealed contributions (in memory; the aggregator's ledger in a
    deployment)."""

    def __init__(self, ring: Ring, catalog: Catalog, agency_keys: Mapping[str, bytes]) -> None:
        self.ring = ring
        self.catalog = catalog
        self._keys = dict(agency_keys)
        self._entries: list[bytes] = []

    def _open(self, sealed: bytes) -> BfvContribution:
        def key_of(m: BfvContribution) -> bytes:
            if m.agency not in self._keys:
                raise UnknownParty(f"unknown agency {m.agency!r}")
            return self._keys[m.agency]

        msg = open_signed(sealed, BfvContribution, key_of)
        msg.check()
        if msg.ring != self.ring.fingerprint():
            raise InvalidMessage("contribution for other lattice parameters")
        if msg.retention not in self.catalog.retention:
            raise InvalidMessage(f"unknown retention class {msg.retention!r}")
        if msg.label != SCORE and msg.label not in self.catalog.cap_labels():
            raise InvalidMessage(f"unknown label {msg.label!r}")
        return msg

    def append(self, sealed: bytes) -> int:
        """Verify (signature, parameters, labels, ciphertext shape) and append; returns the
        new size.  Refused input changes nothing."""
        msg = self._open(sealed)
        load_ciphertext(self.ring, msg.ciphertext)
        self._entries.append(bytes(sealed))
        return len(self._entries)

    def head(self, size: int | None = None) -> tuple[int, bytes]:
        size = len(self._entries) if size is None else size
        if not 0 <= size <= len(self._entries):
            raise InvalidMessage(f"the log has no head at size {size}")
        return size, merkle.root(self._entries[:size])

    def live_inputs(
        self, period: int, block: int, tree_size: int, tree_root: bytes
    ) -> dict[str, Any]:
        """``{label: sum of live blocks}`` for ``score`` and every cap label (a label with
        no contribution is absent).  Raises :class:`InvalidMessage` when the head does not
        match this log."""
        if self.head(tree_size) != (tree_size, tree_root):
            raise InvalidMessage("the request's tree head does not match the log")
        sums: dict[str, Any] = {}
        for sealed in self._entries[:tree_size]:
            msg = self._open(sealed)
            months = self.catalog.retention[msg.retention].months
            if msg.block != block or not msg.period <= period < msg.period + months:
                continue
            ct = load_ciphertext(self.ring, msg.ciphertext)
            if msg.label in sums:
                self.ring.evaluator.add_inplace(sums[msg.label], ct)
            else:
                sums[msg.label] = ct
        return sums
