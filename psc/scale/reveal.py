"""The reveal sharded by subject blocks: per-shard work, one request, one log entry.

Two reveal steps (:class:`~psc.parties.key_holder.Revealer` back ends), each splitting a batch
request along a :class:`~psc.scale.shards.ShardPlan` so that no shard's work depends on
another's and at most a bounded number of shards are in flight at once:

* :class:`ShardedTrustedDecryptor`, the baseline: the key holder's block decryptions run
  on **its own** Dask workers, one task per shard, at most ``window`` tasks in flight.
  Per shard the task is exactly :meth:`TrustedDecryptor.grades
  <psc.parties.key_holder.TrustedDecryptor.grades>` on that shard's slots and blocks, so the
  grades are those of the single-process path by construction (and by test).
* :class:`ShardedKeyCommittee`, the committee's DP batch reveal: the combiner cuts one
  request into one task per shard (targets: the request's slots in the shard; blocks: the
  shard's live-sum blocks), and runs the whole task protocol (noise shares, proofs,
  decryption shares, combination) shard after shard; the proofs of the decryption shares
  are checked on ``verify_pool`` (for example the Dask client's executor).

What stays central, as ``protocols/scale.md`` section 4 fixes: the request, the purpose
and consent checks, the log check of the blocks (:class:`~psc.parties.key_holder.KeyHolder`),
the budget (charged once for every new slot of the request, durably, before the first
decryption share is asked for), one signed answer and one release notice in the one
transparency log.

What leaks, and to whom: nothing beyond the single-process path.  The key holder's Dask
workers hold its private key and see what it sees (the live sums of the decrypted blocks):
they are the key holder's machines, never the aggregator's shard workers (a deployment runs
two clusters; tests and the benchmark put both on one ``LocalCluster``).  Committee
members see one task per shard instead of one per request; every task's targets are a
subset of the aggregator-signed request's slots and its blocks are checked against the log
(``CommitteeMember._authorize``), and a member releases a (slot, period) at most once
whichever task asks, so a sharded request cannot obtain a second noisy value.  A bad share
from a member is found per shard: the members' availability is per shard, and a shard that
cannot reach the quorum aborts the request (nothing is answered; the slots already charged
stay charged, so a retry is free, as in the single-process path).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from psc.exceptions import ParameterError
from psc.hazmat.backends.paillier import PackedCiphertext
from psc.hazmat.paillier import PaillierPrivateKey
from psc.parties.committee import KeyCommittee
from psc.parties.key_holder import TrustedDecryptor
from psc.protocol.parameters import ProtocolParameters
from psc.scale.shards import ShardPlan

if TYPE_CHECKING:
    from distributed import Client, Future

Blocks = Mapping[int, PackedCiphertext]
CapBlocks = Mapping[str, Mapping[int, PackedCiphertext]]


def shard_slots(plan: ShardPlan, slots: Iterable[int]) -> dict[int, list[int]]:
    """The requested ``slots`` grouped by the shard holding them, in slot order per shard
    (shards in plan order).  Raises :class:`ParameterError` for a slot outside the plan."""
    out: dict[int, list[int]] = {}
    for s in sorted(set(int(x) for x in slots)):
        out.setdefault(plan.shard_of_slot(s), []).append(s)
    return dict(sorted(out.items()))


def _restrict(
    slots: Sequence[int], layout_slots: int, score: Blocks, caps: CapBlocks
) -> tuple[dict[int, PackedCiphertext], dict[str, dict[int, PackedCiphertext]]]:
    """The blocks holding ``slots``, of the score and of every cap label."""
    need = sorted({s // layout_slots for s in slots})
    return (
        {j: score[j] for j in need},
        {label: {j: blocks[j] for j in need} for label, blocks in caps.items()},
    )


def _shard_grades(
    params: ProtocolParameters,
    key: PaillierPrivateKey,
    slots: list[int],
    score: dict[int, PackedCiphertext],
    caps: dict[str, dict[int, PackedCiphertext]],
) -> dict[int, int]:
    """Key holder's worker: the single-process baseline on one shard's slots and blocks."""
    return TrustedDecryptor(params, key).grades(slots, score, caps)


class ShardedTrustedDecryptor(TrustedDecryptor):
    """:class:`~psc.parties.key_holder.TrustedDecryptor` whose decryptions run on the key
    holder's Dask workers, one task per shard of ``plan`` (default: one shard per worker).

    ``window`` bounds the shards in flight (default twice the workers): the ciphertext
    blocks the front has handed to workers and not yet collected are at most ``window``
    shards' worth, whatever the request's size; :attr:`peak_blocks_in_flight` records the
    largest number seen (tests check it).  The private key is sent once to each of
    ``workers`` (the key holder's own machines; see the module doc).  Algebra and leaks:
    those of :class:`~psc.parties.key_holder.TrustedDecryptor`.  Raises what it raises, and
    :class:`ParameterError` for a plan of other parameters or ``window < 1``.
    """

    def __init__(
        self,
        params: ProtocolParameters,
        private_key: PaillierPrivateKey,
        *,
        client: Client,
        plan: ShardPlan | None = None,
        workers: Sequence[str] | None = None,
        window: int | None = None,
    ) -> None:
        super().__init__(params, private_key)
        addrs = list(workers) if workers else sorted(client.scheduler_info()["workers"])
        if not addrs:
            raise ParameterError("the key holder's Dask cluster has no workers")
        blocks = params.layout.blocks(params.n_subjects)
        self.plan = plan or ShardPlan(params.layout, params.n_subjects, min(len(addrs), blocks))
        if (self.plan.layout, self.plan.n_values) != (params.layout, params.n_subjects):
            raise ParameterError("the shard plan is for another layout or subject count")
        self.window = window if window is not None else 2 * len(addrs)
        if self.window < 1:
            raise ParameterError(f"window must be at least 1 shard, got {self.window}")
        self._client = client
        self._workers = addrs
        # once per worker: the parameters and the key (never to the aggregator's workers)
        self._params_f = client.scatter(params, broadcast=True, workers=addrs)
        self._key_f = client.scatter(private_key, broadcast=True, workers=addrs)
        self.peak_blocks_in_flight = 0

    def grades(self, slots: Sequence[int], score: Blocks, caps: CapBlocks) -> dict[int, int]:
        """Grade index of every slot, computed shard by shard on the workers (see the class
        doc); the same as the single-process baseline's."""
        from distributed import as_completed

        S = self.params.layout.slots
        todo = list(shard_slots(self.plan, slots).items())
        out: dict[int, int] = {}
        running: dict[Future[dict[int, int]], int] = {}  # future -> its blocks in flight
        queue: as_completed = as_completed()

        def submit() -> None:
            shard, mine = todo.pop(0)
            sc, cp = _restrict(mine, S, score, caps)
            fut = self._client.submit(
                _shard_grades,
                self._params_f,
                self._key_f,
                mine,
                sc,
                cp,
                workers=[self._workers[shard % len(self._workers)]],
                pure=False,
            )
            running[fut] = len(sc) * (1 + len(cp))
            self.peak_blocks_in_flight = max(self.peak_blocks_in_flight, sum(running.values()))
            queue.add(fut)

        while todo and len(running) < self.window:
            submit()
        for fut in queue:
            out.update(fut.result())
            del running[fut]
            fut.release()
            if todo:
                submit()
        return out


class ShardedKeyCommittee(KeyCommittee):
    """:class:`~psc.parties.committee.KeyCommittee` that reveals a request shard by shard.

    ``plan`` cuts the subject slots into shards; each shard's slots become one reveal task
    (the members' noise shares, proofs and decryption shares cover that shard's blocks
    only), run to completion before the next starts, so at most one shard's noised blocks
    and shares are resident at the combiner (:attr:`peak_blocks_in_flight`).  The budget
    is charged once for every new slot of the request, before the first decryption share
    is asked for; the answer is one signed :class:`~psc.protocol.committee_messages.CommitteeGrades`.
    Other arguments as :class:`~psc.parties.committee.KeyCommittee`.  Raises what it
    raises (an :class:`~psc.exceptions.InsufficientShares` of any shard aborts the
    request), and :class:`ParameterError` for a plan of another layout.
    """

    def __init__(self, *args: Any, plan: ShardPlan, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if plan.layout != self.params.layout:
            raise ParameterError("the shard plan is for another slot layout")
        self.plan = plan
        self.peak_blocks_in_flight = 0
        #: per request (its hash), the number of shard tasks it took (tests, reports)
        self.shard_tasks: dict[bytes, int] = {}

    def _decrypt(
        self,
        request_hash: bytes,
        period: int,
        targets: list[int],
        score: Blocks,
        caps: CapBlocks,
        release: str = "grade",
        *,
        authorization: bytes,
        before_decryption: Callable[[], None],
    ) -> tuple[dict[int, int], dict[str, dict[int, int]], tuple[int, ...], dict[int, str]]:
        if release != "grade":  # a statistic's cells are not subject slots: one task
            return super()._decrypt(
                request_hash,
                period,
                targets,
                score,
                caps,
                release,
                authorization=authorization,
                before_decryption=before_decryption,
            )
        charged = False

        def charge_once() -> None:
            nonlocal charged
            if not charged:
                before_decryption()
                charged = True

        S = self.params.layout.slots
        noisy: dict[int, int] = {}
        counts: dict[str, dict[int, int]] = {}
        used: set[int] = set()
        excluded: dict[int, str] = {}
        groups = shard_slots(self.plan, targets)
        for mine in groups.values():
            sc, cp = _restrict(mine, S, score, caps)
            self.peak_blocks_in_flight = max(
                self.peak_blocks_in_flight, len(sc) * len(self.params.labels)
            )
            n, c, members, ex = super()._decrypt(
                request_hash,
                period,
                mine,
                sc,
                cp,
                release,
                authorization=authorization,
                before_decryption=charge_once,
            )
            noisy.update(n)
            for label, by_slot in c.items():
                counts.setdefault(label, {}).update(by_slot)
            used.update(members)
            for i, why in ex.items():
                excluded.setdefault(i, why)
        self.shard_tasks[request_hash] = len(groups)
        return noisy, counts, tuple(sorted(used)), excluded
