"""The combiner of the exact reveal: the party answering grade requests.  It holds no key
share (normative: ``protocols/exact-reveal.md``).

:meth:`ExactCombiner.reveal` takes an aggregator-signed request, sends one signed task to
the members it asks, and

1. verifies every share's signature, its task hash and its size; a member whose share
   names a different ciphertext digest than the majority is a suspect;
2. fetches the ciphertext from one member and checks its digest (it computes nothing
   itself and trusts no member's ciphertext without the digest the shares are bound to);
3. combines: more than ``k`` shares are cross-checked over every ``k``-subset
   (:func:`psc.hazmat.exact.threshold.combine_checked`); disagreement aborts the reveal, names
   the suspects and releases nothing;
4. checks the decoded vector is a grade vector (each requested slot a grade index, every
   other slot 0) and answers with :class:`~psc.protocol.exact_messages.ExactGrades`.

Sees: the grades of the requested slots, and shares that are (up to ``2^-40``) simulatable
from those grades alone (tested in ``tests/attacks/test_exact_combiner.py``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Protocol

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.catalog import Catalog
from psc.exceptions import InsufficientShares, InvalidMessage, UnknownParty
from psc.hazmat.exact import threshold
from psc.hazmat.exact.circuit import digest
from psc.hazmat.exact.ring import Ring
from psc.parties.exact.inputs import load_ciphertext
from psc.parties.exact.member import ExactParameters, decode_share, open_request
from psc.protocol.exact_messages import ExactDecryptionShare, ExactGrades, ExactRevealTask
from psc.protocol.messages import SlotGrade
from psc.protocol.signing import digest as sha256
from psc.protocol.signing import open_signed, seal


class MemberLink(Protocol):
    """The two calls the combiner makes of a member: an
    :class:`~psc.parties.exact.member.ExactMember` in process, or
    a link to one in another process with the same methods."""

    def decryption_share(self, sealed_task: bytes) -> bytes: ...

    def ciphertext(self, digest: bytes) -> bytes: ...


class ExactCombiner:
    """See the module docstring.  ``members`` maps an index to the member (in process; a
    link with the same two methods in a deployment)."""

    def __init__(
        self,
        ring: Ring,
        catalog: Catalog,
        params: ExactParameters,
        members: Mapping[int, MemberLink],
        signing_key: Ed25519PrivateKey,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ring = ring
        self.catalog = catalog
        self.params = params
        self.members = dict(members)
        self._key = signing_key
        self._clock = clock
        self.bytes_exchanged = 0

    def _open_share(self, sealed: bytes, task_hash: bytes) -> ExactDecryptionShare:
        def key_of(m: ExactDecryptionShare) -> bytes:
            if m.member not in self.params.member_keys:
                raise UnknownParty(f"unknown member {m.member}")
            return self.params.member_keys[m.member]

        msg = open_signed(sealed, ExactDecryptionShare, key_of)
        msg.check()
        if msg.task_hash != task_hash:
            raise InvalidMessage("share for another task")
        return msg

    def reveal(self, sealed_request: bytes, ask: tuple[int, ...] | None = None) -> ExactGrades:
        """Answer one aggregator-signed request (see the module docstring).  ``ask``:
        which members to ask (default: all).  Raises
        :class:`~psc.exceptions.InsufficientShares` (with suspects) or
        :class:`~psc.exceptions.InvalidMessage`; nothing is released then."""
        return self.reveal_task(sealed_request, self.task(sealed_request), ask)

    def task(self, sealed_request: bytes) -> bytes:
        """The signed task for an aggregator-signed request, as every asked member receives
        it (a transport may hand it to all of them at once before :meth:`reveal_task`)."""
        return seal(
            ExactRevealTask(authorization=sealed_request, issued_at=int(self._clock())), self._key
        )

    def reveal_task(
        self, sealed_request: bytes, task: bytes, ask: tuple[int, ...] | None = None
    ) -> ExactGrades:
        """:meth:`reveal` with the task :meth:`task` made for ``sealed_request``: ask the
        members, check and combine."""
        req = open_request(self.params, sealed_request)
        ask = tuple(sorted(self.members)) if ask is None else tuple(sorted(ask))
        task_hash = sha256(task)
        opened: dict[int, ExactDecryptionShare] = {}
        for i in ask:
            sealed = self.members[i].decryption_share(task)
            self.bytes_exchanged += len(task) + len(sealed)
            msg = self._open_share(sealed, task_hash)
            if msg.member != i:
                raise InsufficientShares(f"member {i} answered as {msg.member}", bad=[i])
            opened[i] = msg
        votes = Counter(m.ciphertext_digest for m in opened.values())
        d, count = votes.most_common(1)[0]
        odd = sorted(i for i, m in opened.items() if m.ciphertext_digest != d)
        if odd:
            raise InsufficientShares(
                f"members {odd} decrypted another ciphertext than the other members; reveal aborted",
                bad=odd,
            )
        if count < self.params.k:
            raise InsufficientShares(f"{count} decryption shares, {self.params.k} needed")
        source = next(i for i, m in opened.items() if m.ciphertext_digest == d)
        ct_bytes = self.members[source].ciphertext(d)
        self.bytes_exchanged += len(ct_bytes)
        ct = load_ciphertext(self.ring, ct_bytes, self.params.decrypt_primes)
        if digest(self.ring, ct) != d:
            raise InsufficientShares(
                f"member {source} sent a ciphertext that is not the one decrypted", bad=[source]
            )
        level = self.ring.at_level(ct.coeff_modulus_size())
        shares = {i: decode_share(level, m) for i, m in opened.items()}
        slots = threshold.combine_checked(self.ring, ct, shares, self.params.k, self.params.n)
        return self._grades(
            req.request_hash, req.period, req.block, req.slots, slots, tuple(sorted(opened))
        )

    def _grades(
        self,
        request_hash: bytes,
        period: int,
        block: int,
        targets: tuple[int, ...],
        slots: np.ndarray,
        members: tuple[int, ...],
    ) -> ExactGrades:
        labels = self.catalog.labels
        wanted = targets or tuple(range(self.ring.n))
        mask = np.zeros(self.ring.n, dtype=bool)
        mask[list(wanted)] = True
        if np.any(slots[~mask] != 0) or np.any(slots[mask] >= len(labels)):
            raise InsufficientShares(
                "the decryption is not a grade vector (an input outside the catalog's "
                "domain, or a deviating member); nothing is released"
            )
        base = block * self.ring.n
        grades = tuple(SlotGrade(slot=base + s, grade=labels[int(slots[s])]) for s in wanted)
        out = ExactGrades(
            request_hash=request_hash,
            period=period,
            grades=grades,
            members=members,
            issued_at=int(self._clock()),
        )
        out.check()
        return out
