"""The combiner (:class:`KeyCommittee`): the front door of the committee reveal."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from fractions import Fraction

import gmpy2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.catalog import Catalog
from psc.dp.accounting import Loss
from psc.dp.budget import BudgetLedger
from psc.exceptions import (
    BudgetExhausted,
    InsufficientShares,
    InvalidMessage,
    KeyMismatch,
    ParameterError,
)
from psc.hazmat.backends.base import IntArray
from psc.hazmat.backends.paillier import PackedCiphertext, RandomnessPool
from psc.hazmat.threshold.combine import (
    CommitteeDecryption,
    _combine_values,
    combine,
    decrypt_packed,
)
from psc.hazmat.threshold.encoding import decode_share
from psc.hazmat.threshold.keys import DecryptionShare, PackedDecryptionShare
from psc.oracle import grades_of
from psc.parties.committee.known_answer import known_answer
from psc.parties.committee.member import _open_noise_share
from psc.parties.committee.outcomes import CommitteeReveal, StatisticRelease
from psc.parties.committee.params import (
    MECHANISM,
    SCORE_LABEL,
    Clock,
    CommitteeParameters,
    _now,
    release_id,
    subject_key,
)
from psc.parties.committee.replies import _key_of, _open_member_share, _share_is_valid
from psc.parties.committee.task import _noised, _read_task, _verify_share_proofs
from psc.parties.committee.transport import MapMembers, MemberLink, _sequential
from psc.protocol.committee_messages import (
    CommitteeGrades,
    DecryptionRequest,
    KnownAnswerShare,
    NoiseShare,
    RevealTask,
)
from psc.protocol.messages import BlockCiphertext, SlotGrade
from psc.protocol.signing import digest, open_signed, public_bytes, seal


class KeyCommittee:
    """The combiner: the front door of the committee reveal (holds no key share).

    Holds its signing key, the links to the ``n`` members and its store: a
    :class:`~psc.dp.budget.BudgetLedger` (per subject) and a table of the signed answers,
    written in one transaction per reveal.  ``budget`` is every subject's budget (a
    :class:`~psc.dp.accounting.ApproxDP`).  ``map_members`` runs one call on several
    members (default: one after the other; pass a thread pool's map to ask them in
    parallel).  ``observer`` is a private seam for tests: it is shown each decrypted
    block as the combiner sees it.
    """

    def __init__(
        self,
        params: CommitteeParameters,
        signing_key: Ed25519PrivateKey,
        members: Sequence[MemberLink],
        store: sqlite3.Connection,
        *,
        budget: Loss,
        clock: Clock = _now,
        map_members: MapMembers = _sequential,
        observer: Callable[[str, int, np.ndarray], None] | None = None,
        verify_pool: Executor | None = None,
    ) -> None:
        if public_bytes(signing_key) != params.combiner_key:
            raise KeyMismatch("this signing key is not the combiner key in the parameters")
        idx = sorted(m.index for m in members)
        if idx != sorted(set(idx)) or not all(1 <= i <= params.n for i in idx):
            raise ValueError(f"member links must have distinct indices in 1..{params.n}")
        self.params = params
        self._key = signing_key
        self._members = sorted(members, key=lambda m: m.index)
        self._conn = store
        self.budget = BudgetLedger(store, default_budget=budget)
        store.execute(
            "CREATE TABLE IF NOT EXISTS committee_answers ("
            " request_hash BLOB PRIMARY KEY, period INTEGER NOT NULL, answer BLOB NOT NULL)"
        )
        self._clock = clock
        self._map = map_members
        self._observer = observer
        self._verify = verify_pool
        self._backend = params.backend(RandomnessPool(params.public.public))
        self._known_answer_check()

    def _known_answer_check(self) -> None:
        """Setup: ``k`` proved shares of the public known-answer ciphertext must decrypt
        to its public plaintext (:mod:`psc.parties.committee.known_answer`).  Catches a
        dealer whose shares are individually consistent but share the wrong secret.
        Raises :class:`ParameterError` naming the members that failed."""
        p = self.params
        m, c = known_answer(p.public)
        replies = self._map(lambda link: link.known_answer_share(), self._members)
        good: list[DecryptionShare] = []
        failed: dict[int, str] = {}
        for link, reply in zip(self._members, replies, strict=True):
            try:
                if isinstance(reply, Exception):
                    raise InvalidMessage(str(reply))
                msg = open_signed(reply, KnownAnswerShare, _key_of(p.member_keys[link.index - 1]))
                share = decode_share(p.public, msg.share)
                if msg.member != link.index or share.index != link.index:
                    raise InvalidMessage("share carries another member's index")
                p.public.verify_share(c, share)
            except InvalidMessage as exc:
                failed[link.index] = str(exc)
                continue
            good.append(share)
        if len(good) < p.k:
            raise ParameterError(
                f"known-answer decryption at setup: {len(good)} valid share(s), {p.k} needed; "
                f"failed: {failed or 'none'}. Check the members' keys and links"
            )
        got = combine(p.public, c, good[: p.k])
        if got != m:
            raise ParameterError(
                "known-answer decryption at setup gave the wrong plaintext: the key shares "
                "do not share this public key's secret; have the dealer deal again"
            )

    def _combine(
        self, ct: PackedCiphertext, shares: Sequence[PackedDecryptionShare]
    ) -> CommitteeDecryption[IntArray]:
        """Verify every share (in the verification pool if there is one) and combine ``k``
        good ones; what :func:`psc.hazmat.threshold.combine.decrypt_packed` does, with the proofs checked
        in parallel.  Raises :class:`InsufficientShares` (with ``.bad``)."""
        pk = self.params.public
        if self._verify is None:
            return decrypt_packed(pk, ct, shares)
        blocks = [int(c) for c in ct.blocks]
        futures = [self._verify.submit(_share_is_valid, pk, blocks, s) for s in shares]
        verdicts = [f.result() for f in futures]
        good = {s.index: s for s, ok in zip(shares, verdicts, strict=True) if ok}
        bad = tuple(sorted({s.index for s, ok in zip(shares, verdicts, strict=True) if not ok}))
        for i in bad:
            good.pop(i, None)
        if len(good) < pk.k:
            raise InsufficientShares(
                f"{len(good)} valid decryption share(s), {pk.k} needed; failed verification: "
                f"{list(bad) or 'none'}. Nothing was decrypted",
                bad,
            )
        used = dict(sorted(good.items())[: pk.k])
        layout, S, n = ct.layout, ct.layout.slots, int(pk.public.n)
        out = np.empty(len(blocks) * S, dtype=np.int64)
        for j in range(len(blocks)):
            m = _combine_values(pk, {i: s.values[j] for i, s in used.items()})
            out[j * S : (j + 1) * S] = layout.unpack(m, n, S, ct.bound)
        values: IntArray = out[: ct.n_values]
        return CommitteeDecryption(values, tuple(used), bad)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def stored_grade(self, slot: int, period: int) -> str | None:
        """Combiner: the grade label released for ``slot`` in ``period``, if any."""
        for s in self.budget.spends(subject_key(slot)):
            if s.release_id == release_id(period):
                return s.result
        return None

    def _pending_spend(self, slot: int, period: int) -> bool:
        """A release charged before a decryption that did not complete (crash, too few
        shares): a retry is not charged again."""
        return any(
            s.release_id == release_id(period) and s.result is None
            for s in self.budget.spends(subject_key(slot))
        )

    def reveal_grades(
        self,
        request_hash: bytes,
        period: int,
        slots: Sequence[int],
        score: Mapping[int, PackedCiphertext],
        caps: Mapping[str, Mapping[int, PackedCiphertext]],
        *,
        authorization: bytes,
    ) -> CommitteeReveal:
        """Combiner: the grade of every slot in ``slots`` for ``period``, through the committee.

        Pre-condition: the caller (the key holder) already checked the request's
        signature, purpose, consent and freshness; ``score[j]`` and ``caps[label][j]`` are
        the live sums of each block ``j`` holding a slot.  Steps: (1) slots released
        earlier this period are answered from the store; (2) every other slot must fit
        its budget, else :class:`BudgetExhausted` before any member is contacted;
        (3) task -> noise shares (verified; bad ones excluded and named) -> at least
        ``h`` -> decryption request -> decryption shares (verified by their proofs; bad
        ones excluded and named) -> ``k`` combined; (4) grades from the noisy sums and
        exact cap counts, noisy values dropped; (5) one transaction: a spend per new slot
        (result = its grade) and the signed answer.  Raises :class:`InsufficientShares`
        (with ``.bad``) when fewer than ``h`` noise shares or ``k`` decryption shares
        verify: nothing is spent then.
        """
        p = self.params
        slots = sorted(set(int(s) for s in slots))
        if not slots or slots[0] < 0:
            raise ValueError("reveal_grades needs a non-empty list of slots")
        labels_of = p.catalog.labels
        stored: dict[int, str] = {}
        for s in slots:
            g = self.stored_grade(s, period)
            if g is not None:
                stored[s] = g
        new = [s for s in slots if s not in stored]
        cost = p.cost
        pending = {s for s in new if self._pending_spend(s, period)}
        refused = [
            s for s in new if s not in pending and not self.budget.can_spend(subject_key(s), cost)
        ]
        if refused:
            raise BudgetExhausted(
                f"privacy budget exhausted for slots {refused}: a grade release costs "
                f"{cost.to_json()}; nothing was decrypted"
            )
        grades: dict[int, int] = {s: labels_of.index(g) for s, g in stored.items()}
        members: tuple[int, ...] = ()
        excluded: dict[int, str] = {}
        spent: dict[int, Loss] = {}

        def charge() -> None:
            # durably, before any member is asked for a decryption share: a crash after
            # this point leaves the release charged (a retry is then free: pending spend)
            with self._transaction():
                for s in new:
                    if s not in pending:
                        self.budget.spend(subject_key(s), release_id(period), cost, result=None)
                        spent[s] = cost

        if new:
            noisy, counts, members, excluded = self._decrypt(
                request_hash,
                period,
                new,
                score,
                caps,
                authorization=authorization,
                before_decryption=charge,
            )
            grades.update(_grades(p.catalog, noisy, counts))
            del noisy  # the noisy scores are discarded here, by protocol
        answer = CommitteeGrades(
            request_hash=request_hash,
            period=period,
            grades=tuple(SlotGrade(s, labels_of[grades[s]]) for s in slots),
            mechanism=MECHANISM,
            epsilon=_frac(p.epsilon),  # score and cap counters together
            delta=_frac(p.delta),
            members=members,
            excluded=tuple(sorted(excluded)),
            stored=tuple(sorted(stored)),
            issued_at=self._clock(),
        )
        sealed = seal(answer, self._key)
        with self._transaction():
            for s in new:
                self.budget.set_result(subject_key(s), release_id(period), labels_of[grades[s]])
            self._conn.execute(
                "INSERT OR REPLACE INTO committee_answers (request_hash, period, answer) "
                "VALUES (?, ?, ?)",
                (request_hash, period, sealed),
            )
        return CommitteeReveal(grades, sealed, tuple(sorted(stored)), spent, members, excluded)

    def release_sums(
        self, name: str, period: int, sums: PackedCiphertext, *, authorization: bytes
    ) -> StatisticRelease:
        """Combiner: a DP release of every cell of an encrypted vector of sums (a statistic).

        ``sums`` holds one sum per cell (e.g. per district), encrypted under the committee
        key in this committee's layout; every cell is revealed with the committee's noise
        (the same mechanism as a grade: one event changes one cell by at most the catalog's
        sensitivity, and cells are disjoint, so the whole vector costs one ``epsilon``).
        Charged to budget key ``stats:<name>`` under release id ``<name>:<period>`` in the
        same transaction that stores the noisy sums (the release itself); a repeat returns
        the stored release and spends nothing.  Raises :class:`BudgetExhausted` before any
        member is asked, :class:`InsufficientShares` as :meth:`reveal_grades`.
        """
        import json

        p = self.params
        cost = p.statistic_cost
        key, rid = f"stats:{name}", f"{name}:{period}"
        pending = False
        for sp in self.budget.spends(key):
            if sp.release_id == rid and sp.result is not None:
                return StatisticRelease(name, period, tuple(json.loads(sp.result)), True, cost)
            pending = pending or sp.release_id == rid
        if not pending and not self.budget.can_spend(key, cost):
            raise BudgetExhausted(
                f"privacy budget of {key!r} exhausted: release {rid!r} costs "
                f"{cost.to_json()}; nothing was decrypted"
            )
        S = p.layout.slots
        blocks = {
            j: PackedCiphertext(
                sums.key_fingerprint,
                sums.layout,
                min(S, sums.n_values - j * S),
                sums.bound,
                (c,),
            )
            for j, c in enumerate(sums.blocks)
        }
        zero = {
            j: PackedCiphertext(ct.key_fingerprint, ct.layout, ct.n_values, 0, (gmpy2.mpz(1),))
            for j, ct in blocks.items()
        }
        caps = {label: zero for label in p.catalog.cap_labels()}
        request_hash = digest(authorization)

        def charge() -> None:  # durably, before any decryption share is asked for
            if not pending:
                with self._transaction():
                    self.budget.spend(key, rid, cost, result=None)

        noisy, _, _, _ = self._decrypt(
            request_hash,
            period,
            list(range(sums.n_values)),
            blocks,
            caps,
            f"statistic:{name}",
            authorization=authorization,
            before_decryption=charge,
        )
        values = tuple(noisy[c] for c in range(sums.n_values))
        with self._transaction():
            self.budget.set_result(key, rid, json.dumps(list(values)))
        return StatisticRelease(name, period, values, False, cost)

    def _decrypt(
        self,
        request_hash: bytes,
        period: int,
        targets: list[int],
        score: Mapping[int, PackedCiphertext],
        caps: Mapping[str, Mapping[int, PackedCiphertext]],
        release: str = "grade",
        *,
        authorization: bytes,
        before_decryption: Callable[[], None],
    ) -> tuple[dict[int, int], dict[str, dict[int, int]], tuple[int, ...], dict[int, str]]:
        """Combiner: steps 3 of :meth:`reveal_grades`; the noisy score and exact cap counts
        of every target (for the caller to map and drop), who was combined, who excluded."""
        p = self.params
        S = p.layout.slots
        needed = sorted({s // S for s in targets})
        blocks = []
        for label in p.labels:
            source = score if label == SCORE_LABEL else caps.get(label, {})
            for j in needed:
                if j not in source:
                    raise ValueError(f"block {j} of {label!r} is missing")
                ct = source[j]
                if len(ct.blocks) != 1:
                    raise ValueError("pass one-block ciphertexts per block index")
                blocks.append(BlockCiphertext(label, j, self._backend.serialize(ct)))
        task_msg = RevealTask(
            request_hash,
            release,
            period,
            tuple(targets),
            tuple(blocks),
            self._clock(),
            authorization,
        )
        sealed_task = seal(task_msg, self._key)
        task = _read_task(p, self._backend, sealed_task)
        excluded: dict[int, str] = {}

        # phase 1: noise shares from every member, each verified before use
        replies = self._map(lambda m: m.noise_share(sealed_task), self._members)
        good: list[tuple[NoiseShare, bytes]] = []
        for link, reply in zip(self._members, replies, strict=True):
            if isinstance(reply, Exception):
                excluded[link.index] = f"no noise share: {reply}"
                continue
            try:
                ns = _open_noise_share(p, reply)
                if ns.member != link.index or ns.task_hash != task.task_hash:
                    raise InvalidMessage("noise share is not this member's for this task")
                _noised(p, self._backend, task, [ns])  # shape and bound checks
            except InvalidMessage as exc:
                excluded[link.index] = f"bad noise share: {exc}"
                continue
            good.append((ns, reply))
        # plaintext knowledge: every good share's proof in one batch; after a failure,
        # share by share, to name each culprit
        try:
            _verify_share_proofs(p, self._backend, task, [ns for ns, _ in good])
        except InvalidMessage:
            proven = []
            for ns, reply in good:
                try:
                    _verify_share_proofs(p, self._backend, task, [ns])
                except InvalidMessage as exc:
                    excluded[ns.member] = f"bad noise share: {exc}"
                    continue
                proven.append((ns, reply))
            good = proven
        if len(good) < p.quorum:
            raise InsufficientShares(
                f"{len(good)} valid noise shares, {p.quorum} (the quorum) needed; excluded: "
                f"{excluded}. Nothing was decrypted",
                sorted(excluded),
            )
        noise = [ns for ns, _ in good]
        noised = _noised(p, self._backend, task, noise)
        request = DecryptionRequest(sealed_task, tuple(sealed for _, sealed in good))
        sealed_request = seal(request, self._key)
        req_hash = digest(sealed_request)

        # phase 2: decryption shares from the members whose noise is in; k are asked
        # first (a share costs a member one exponentiation per block and k good ones
        # suffice), the others only if some of those fail
        eligible = [m for m in self._members if m.index in {ns.member for ns in noise}]
        ct = PackedCiphertext(
            p.public.public.fingerprint,
            p.layout,
            len(noised) * S,
            p.layout.max_value,
            tuple(c.blocks[0] for c in noised),
        )
        before_decryption()
        shares: list[PackedDecryptionShare] = []
        batches = [eligible[: p.k], eligible[p.k :]]
        for round_, asked in enumerate(batches):
            replies = self._map(lambda m: m.decryption_share(sealed_request), asked)
            for link, reply in zip(asked, replies, strict=True):
                share = _open_member_share(p, link, reply, task.task_hash, req_hash, excluded)
                if share is not None:
                    shares.append(share)
            try:
                out = self._combine(ct, shares)
                break
            except InsufficientShares as exc:
                for i in exc.bad:
                    excluded.setdefault(i, "decryption share fails its proof")
                if round_ == len(batches) - 1 or not batches[1]:
                    raise InsufficientShares(
                        f"fewer than {p.k} valid decryption shares; excluded: {excluded}. "
                        "Nothing was decrypted",
                        sorted(excluded),
                    ) from exc
        for i in out.bad:
            excluded[i] = "decryption share fails its proof"

        # phase 3: grades; the decrypted values go out of scope here
        values = {
            unit: out.plaintext[t * S : (t + 1) * S][: task.blocks[unit].n_values]
            for t, unit in enumerate(task.units)
        }
        if self._observer is not None:
            for (label, j), v in values.items():
                self._observer(label, j, v.copy())
        cap_labels = sorted(p.catalog.cap_labels())
        noisy_of: dict[int, int] = {}
        counts_of: dict[str, dict[int, int]] = {label: {} for label in cap_labels}
        for j in needed:
            offs = np.array(task.targets[j], dtype=np.int64)
            noisy = values[(SCORE_LABEL, j)][offs]
            counts: dict[str, np.ndarray] = {}
            if j in task.merged:  # v = score + noise + sum_l 2^(g l) count_l
                g = p.merge_shift
                assert g is not None
                rest = noisy.astype(object)
                for i, label in reversed(list(enumerate(cap_labels, start=1))):
                    unit = 1 << (g * i)
                    c = (rest + unit // 2) // unit
                    counts[label] = np.array(c, dtype=np.int64)
                    rest = rest - c * unit
                noisy = np.array(rest, dtype=np.int64)
            else:
                counts = {label: values[(label, j)][offs] for label in cap_labels}
            for t, off in enumerate(offs.tolist()):
                noisy_of[j * S + off] = int(noisy[t])
                for label in cap_labels:
                    counts_of[label][j * S + off] = int(counts[label][t])
        return noisy_of, counts_of, out.used, excluded


def _grades(
    catalog: Catalog, noisy: Mapping[int, int], counts: Mapping[str, Mapping[int, int]]
) -> dict[int, int]:
    """Grade index of each slot from its noisy score sum and exact cap counts."""
    slots = sorted(noisy)
    top = len(catalog.labels) - 1
    cap = np.full(len(slots), top, dtype=np.int64)
    for label, by_slot in counts.items():
        c = np.array([by_slot[s] for s in slots], dtype=np.int64)
        cap = np.where(c > 0, np.minimum(cap, catalog.grade_index(label)), cap)
    raw = catalog.scheme.base_score + np.array([noisy[s] for s in slots], dtype=np.int64)
    g = grades_of(catalog, raw, cap)
    return {s: int(x) for s, x in zip(slots, g.tolist(), strict=True)}


def _frac(q: Fraction) -> str:
    q = Fraction(q)
    return str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"
