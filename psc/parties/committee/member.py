"""A committee member (spec: ``protocols/reveal-dp.md``, ``protocols/noise-shares.md``)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from psc.dp.random import RandomSource, resolve
from psc.exceptions import (
    InvalidMessage,
    KeyMismatch,
    PolicyViolation,
)
from psc.hazmat.backends.base import IntArray
from psc.hazmat.backends.paillier import BlockOpening, PackedCiphertext, RandomnessPool
from psc.hazmat.paillier import RandBelow
from psc.hazmat.proofs.plaintext import prove_plaintexts
from psc.hazmat.threshold.encoding import encode_packed_share, encode_share
from psc.hazmat.threshold.keys import KeyShare
from psc.parties.committee.known_answer import known_answer
from psc.parties.committee.member_store import MemberStore
from psc.parties.committee.params import SCORE_LABEL, CommitteeParameters
from psc.parties.committee.task import (
    _noised,
    _read_task,
    _Task,
    _verify_share_proofs,
    share_context,
)
from psc.parties.key_holder import check_purpose
from psc.protocol.committee_messages import (
    DecryptionRequest,
    KnownAnswerShare,
    MemberDecryptionShare,
    NoiseShare,
    StatisticRequest,
)
from psc.protocol.heads import HeadKeeper
from psc.protocol.logview import LogView
from psc.protocol.messages import BlockCiphertext, GradeRequest
from psc.protocol.signing import digest, open_signed, public_bytes, seal

# ----------------------------------------------------------------------------------------
# member

#: **Simulation god view only, never a protocol role.**  A callback a simulation harness
#: (the reference driver, tests) may give a :class:`CommitteeMember` as
#: ``_simulation_noise_witness``: the member calls it with ``(member index, release,
#: period, label, slots, noise shares)`` for the targets of every block (the score and
#: each cap label) of every noise share it makes, so the harness can check each revealed
#: grade exactly against the oracle's grade of ``raw score + total noise actually drawn``
#: with the caps of ``counts + their noise``.  Learning the drawn noise breaks the DP
#: guarantee for whoever holds it: no agency, aggregator, combiner, member, relying party
#: or subject reads it, no message carries it, and a deployment never sets it.  It runs
#: in the member's own process (:class:`MemberProcess`), so it must not rely on shared memory.
NoiseWitness = Callable[[int, str, int, str, IntArray, IntArray], None]


class CommitteeMember:
    """One key-committee member: key share ``i`` of ``n``, its signing key, its draws.

    Randomness enters at private seams: ``noise_rng`` (noise shares, a
    :class:`~psc.dp.random.RandomSource`), ``randbelow`` (mask shares and proof nonces)
    and ``pool`` (encryption randomizers; fill it ahead of time to take encryption off
    the critical path).  Holds: its key share; the digests of the noise shares it sent;
    the (slot, period) releases it has helped decrypt.  ``_simulation_noise_witness`` is
    the simulation's god-view seam (:data:`NoiseWitness`): never set in a deployment.
    """

    def __init__(
        self,
        params: CommitteeParameters,
        key_share: KeyShare,
        signing_key: Ed25519PrivateKey,
        *,
        noise_rng: RandomSource | None = None,
        randbelow: RandBelow = secrets.randbelow,
        log_view: LogView,
        store: MemberStore | None = None,
        pool: RandomnessPool | None = None,
        _draw: Callable[[], int] | None = None,
        _simulation_noise_witness: NoiseWitness | None = None,
    ) -> None:
        if key_share.public.fingerprint != params.public.fingerprint:
            raise KeyMismatch("the key share is not for the committee's public key")
        if public_bytes(signing_key) != params.member_keys[key_share.index - 1]:
            raise KeyMismatch(f"this signing key is not member {key_share.index}'s registered key")
        # setup hygiene, at every start: the dealt share matches its public verification
        # key, and the verification keys lie on one polynomial (InvalidMessage otherwise)
        key_share.check()
        params.public.check_verification_keys()
        self.params = params
        self.index = key_share.index
        self._share = key_share
        self._key = signing_key
        self._rng = resolve(noise_rng)
        self._draw = _draw  # private seam: tests force noise (e.g. zero) through it
        # SIMULATION GOD VIEW ONLY (see NoiseWitness): no protocol role ever reads it
        self._witness = _simulation_noise_witness
        self._predrawn: list[int] = []
        self._randbelow = randbelow
        self.pool = pool if pool is not None else RandomnessPool(params.public.public)
        self._backend = params.backend(self.pool)
        self._log = log_view
        if log_view.params.public_key.fingerprint != params.public.public.fingerprint:
            raise KeyMismatch("the log view's parameters are for another key")
        # what this member sent and released; durable when given a file (MemberStore)
        self._store = store if store is not None else MemberStore()
        self._heads: tuple[int, HeadKeeper] | None = None

    @property
    def heads(self) -> HeadKeeper:
        """Every tree head an authorization showed this member, kept with its store and
        cross-checked: a log that equivocates or is rewritten is refused.  Opened in the
        process that uses it (a member may run in its own process)."""
        if self._heads is None or self._heads[0] != os.getpid():
            key = Ed25519PublicKey.from_public_bytes(self._log.params.aggregator_key)
            self._heads = (os.getpid(), HeadKeeper(key, self._store.connection))
        return self._heads[1]

    def _authorize(self, task: _Task) -> None:
        """Member: refuse a task the combiner made up.  Release, period and targets must
        follow from the aggregator-signed authorization, and every block must be the live
        sum of the logged contributions at its tree head (recomputed from the log).

        Grade: ``authorization`` is a :class:`~psc.protocol.messages.RevealRequest`
        carrying the requester-signed :class:`~psc.protocol.messages.GradeRequest`
        (signature by a registered requester, lawful purpose); targets are some of its
        slots.  Statistic: a :class:`StatisticRequest` for a statistic the parameters
        publish, every cell a target.  Raises :class:`InvalidMessage` or
        :class:`PolicyViolation`.
        """
        t = task.task
        agg = self._log.params.aggregator_key
        if t.release == "grade":
            rr = self.heads.observe_reveal_request(t.authorization, self._log.prover())
            req = open_signed(
                rr.request, GradeRequest, lambda m: self._log.requester(m.requester).public_key
            )
            check_purpose(self.params.catalog, req, self._log.requester(req.requester).purposes)
            if digest(rr.request) != t.request_hash:
                raise InvalidMessage("the task names another request than its authorization")
            if not t.period == rr.period == req.period:
                raise InvalidMessage("the task's period is not the authorized request's")
            if not set(t.targets) <= set(req.slots):
                raise InvalidMessage("the task targets slots the request did not ask for")
            blocks = [(label, j, ct) for (label, j), ct in sorted(task.original.items())]
            self._log.check_blocks(t.period, rr.tree_size, rr.tree_root, blocks)
            return
        sr = open_signed(t.authorization, StatisticRequest, lambda m: agg)
        if sr.name not in self.params.statistics:
            raise PolicyViolation(
                f"statistic {sr.name!r} is not one the committee publishes "
                f"({', '.join(self.params.statistics) or 'none'})"
            )
        if (t.release, t.period, t.targets) != (
            f"statistic:{sr.name}",
            sr.period,
            tuple(range(sr.cells)),
        ) or t.request_hash != digest(t.authorization):
            raise InvalidMessage("the task is not the authorized statistic release")

    def prepare(self, noise_shares: int, randomizers: int) -> int:
        """Member, offline: draw ``noise_shares`` noise shares and precompute ``randomizers``
        encryption randomizers ahead of time (both are data-independent).  Each predrawn
        share is used once, in draw order.  Returns how many shares are now waiting."""
        self._predrawn.extend(self._fresh_noise() for _ in range(noise_shares))
        self.pool.fill(randomizers)
        return len(self._predrawn)

    def draw_noise(self) -> int:
        """Member: one noise share, redrawn while ``|share| > B`` (see :func:`tail_delta`);
        a predrawn one (:meth:`prepare`) if any is waiting."""
        if self._predrawn:
            return self._predrawn.pop(0)
        return self._fresh_noise()

    def _fresh_noise(self) -> int:
        while True:
            if self._draw is not None:
                x = self._draw()
            else:
                x = self.params.shares.sample_share(rng=self._rng)
            if abs(x) <= self.params.share_bound:
                return x

    def draw_cap_noise(self) -> int:
        """Member: one cap-counter noise share (the cap mechanism's share parameters),
        redrawn while ``|share| > B_cap``."""
        while True:
            if self._draw is not None:
                x = self._draw()
            else:
                x = self.params.cap_shares.sample_share(rng=self._rng)
            if abs(x) <= self.params.cap_share_bound:
                return x

    def known_answer_share(self) -> bytes:
        """Member, at setup: a sealed, proved decryption share of the public known-answer
        ciphertext (:func:`known_answer`), so the combiner can check that ``k`` shares
        decrypt correctly.  Leaks nothing: plaintext and randomness of that ciphertext are
        public (derived from the key's fingerprint)."""
        _, c = known_answer(self.params.public)
        share = self._share.decryption_share(c, randbelow=self._randbelow)
        return seal(
            KnownAnswerShare(self.index, encode_share(self.params.public, share)), self._key
        )

    def noise_share(self, sealed_task: bytes) -> bytes:
        """Member: a sealed :class:`NoiseShare` for a combiner-signed :class:`RevealTask`.

        Pre-condition: the task is signed by the combiner.  For every task block it
        encrypts the vector ``e`` with a fresh noise share at each target (the score's
        mechanism for the score block, the cap mechanism for a cap block; a merged unit
        gets score noise plus ``2^(g l)`` times a cap noise share per cap label) and a
        fresh mask share (uniform in ``[0, m)``) at every other slot; the public bound is
        :meth:`CommitteeParameters.unit_share_bound`.  Leaks: nothing (semantically secure ciphertexts; the bound is
        public policy).  Raises :class:`InvalidMessage` for a bad task.
        """
        p = self.params
        S = p.layout.slots
        task = _read_task(p, self._backend, sealed_task)
        self._authorize(task)
        shares = []
        # a statistic carries no cap counters (its cap blocks are the trivial zero): no noise
        caps = sorted(p.catalog.cap_labels()) if task.task.release == "grade" else []
        cap_noise = self.draw_cap_noise if task.task.release == "grade" else lambda: 0
        blocks: list[int] = []
        openings: list[BlockOpening] = []
        for label, j in task.units:
            count = task.blocks[(label, j)].n_values
            offsets = task.targets[j]
            masked = len(offsets) < count
            merged = j in task.merged
            vec = np.zeros(count, dtype=np.int64)  # a merged unit still fits one slot
            is_target = np.zeros(count, dtype=bool)
            is_target[offsets] = True
            # per label, this member's noise at each target (merged: the caps ride along)
            drawn: dict[str, IntArray] = {label: np.zeros(count, dtype=np.int64)}
            for s in range(count):
                if not is_target[s]:
                    vec[s] = self._randbelow(p.mask_range)
                    continue
                drawn[label][s] = self.draw_noise() if label == SCORE_LABEL else cap_noise()
                vec[s] = drawn[label][s]
                if merged:  # unit = score + sum_l 2^(g l) count_l: noise every counter too
                    g = p.merge_shift
                    assert g is not None
                    for i, cap in enumerate(caps, start=1):
                        x = cap_noise()
                        drawn.setdefault(cap, np.zeros(count, dtype=np.int64))[s] = x
                        vec[s] += x << (g * i)
            bound = p.unit_share_bound(masked=masked, merged=merged)
            ct, opened = self._backend.encrypt_with_openings(vec, bound=bound)
            shares.append(BlockCiphertext(label, j, self._backend.serialize(ct)))
            blocks.append(int(ct.blocks[0]))
            openings.extend(opened)
            if self._witness is not None:
                offs = np.array(offsets, dtype=np.int64)
                for lab, values in drawn.items():
                    self._witness(
                        self.index,
                        task.task.release,
                        task.task.period,
                        lab,
                        j * S + offs,
                        values[offs],
                    )
        # the proof that this member knows what it encrypted (so no share is derived from
        # another party's ciphertext), bound to this task and this member
        proof = prove_plaintexts(
            p.public.public,
            blocks,
            openings,
            share_context(task.task_hash, self.index),
            randbelow=self._randbelow,
            pool=self.pool,
        )
        body = NoiseShare(
            self.index, task.task_hash, tuple(shares), proof.to_bytes(p.public.public)
        )
        sealed = seal(body, self._key)
        self._store.record_sent(task.task_hash, digest(sealed))
        return sealed

    def decryption_share(self, sealed_request: bytes) -> bytes:
        """Member: a sealed :class:`MemberDecryptionShare` of the noised task blocks.

        Pre-conditions, all checked before the key share is touched: the request and the
        task inside are the combiner's; this member made a noise share for the task and
        that very share is in the request; at least ``h`` noise shares, from distinct
        members, each signed by its member and bound to this task; no target
        (slot, period) was released before under another request.  The member
        recomputes ``c' = c * prod z_i`` itself and shares exactly that.  Leaks:
        ``c'^(2 Delta s_i)`` (with ``k`` of them the combiner learns ``D(c')``, which
        carries this member's noise at targets and its mask elsewhere).  A repeated
        request gets the same answer.  Raises :class:`InvalidMessage` or
        :class:`PolicyViolation` (a second release).
        """
        p = self.params
        req = open_signed(sealed_request, DecryptionRequest, lambda m: p.combiner_key)
        req_hash = digest(sealed_request)
        earlier = self._store.answer(req_hash)
        if earlier is not None:
            return earlier
        task = _read_task(p, self._backend, req.task)
        self._authorize(task)
        own = self._store.sent(task.task_hash)
        if own is None:
            raise InvalidMessage("this member made no noise share for the task")
        shares: list[NoiseShare] = []
        seen: list[int] = []
        mine = False
        for sealed in req.noise_shares:
            ns = _open_noise_share(p, sealed)
            if ns.task_hash != task.task_hash:
                raise InvalidMessage(f"noise share of member {ns.member} is for another task")
            seen.append(ns.member)
            if ns.member == self.index:
                if digest(sealed) != own:
                    raise InvalidMessage("the request carries another noise share under my index")
                mine = True
            shares.append(ns)
        _verify_share_proofs(p, self._backend, task, shares)  # one batch, one n-th power
        if seen != sorted(set(seen)):
            raise InvalidMessage("noise shares must come from distinct members, ascending")
        if not mine:
            raise InvalidMessage("the request does not include this member's noise share")
        if len(shares) < p.quorum:
            raise InvalidMessage(
                f"{len(shares)} noise shares, {p.quorum} (the quorum) needed for the privacy "
                "guarantee"
            )
        period = task.task.period
        again = [
            s
            for s in task.task.targets
            if self._store.released_by(task.task.release, s, period) not in (None, req_hash)
        ]
        if again:
            raise PolicyViolation(
                f"slots {again} were already released for period {period}; a member helps "
                "decrypt one noisy value per subject and period"
            )
        noised = _noised(p, self._backend, task, shares)
        ct = PackedCiphertext(
            p.public.public.fingerprint,
            p.layout,
            len(noised) * p.layout.slots,
            p.layout.max_value,
            tuple(c.blocks[0] for c in noised),
        )
        share = self._share.packed_decryption_share(ct, randbelow=self._randbelow)
        msg = MemberDecryptionShare(
            self.index, task.task_hash, req_hash, encode_packed_share(p.public, share)
        )
        out = seal(msg, self._key)
        # durably, before the share leaves: the release record and the answer together
        self._store.record_release(task.task.release, task.task.targets, period, req_hash, out)
        return out


def _open_noise_share(params: CommitteeParameters, sealed: bytes) -> NoiseShare:
    def key_of(m: NoiseShare) -> bytes:
        if not 1 <= m.member <= params.n:
            raise InvalidMessage(f"noise share names member {m.member}, not in 1..{params.n}")
        return params.member_keys[m.member - 1]

    return open_signed(sealed, NoiseShare, key_of)
