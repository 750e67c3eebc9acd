"""Encrypted accumulators sharded by subject blocks, each shard's state on a Dask worker.

The single-process aggregator keeps one accumulator per ``(period, retention class, label)``:
the product modulo ``n^2`` of every ciphertext logged for it.  Here shard ``i`` of a
:class:`~psc.scale.shards.ShardPlan` keeps the same accumulators restricted to its blocks.
Products are taken block by block, so for every block ``j`` in shard ``i``::

    shard_i[(p, c, L)][j] = prod over envelopes e of e[(p, c, L)][j]  mod n^2

is the very integer the single-process accumulator holds for block ``j``; merging the
shards' live sums (:meth:`ShardedAccumulators.live_sums`) gives ciphertexts identical,
bit for bit, to :meth:`psc.parties.aggregator.Aggregator.live_sums`.

State is immutable on the workers: every update is a task that takes a shard's state and
returns the next one (:func:`_apply`), pinned to that shard's worker so ciphertexts do not
move.  Each shard records the envelope hashes it applied, so an update is applied at most
once per shard (replay is harmless) and :meth:`ShardedAccumulators.applied` lets the
aggregator check every shard against the transparency log.  What a worker sees: ciphertext
blocks, bounds, periods, class names and envelope hashes; never a key or a plaintext.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gmpy2 import mpz

from psc.exceptions import KeyMismatch, OverflowRisk
from psc.hazmat.backends.paillier import PackedCiphertext
from psc.hazmat.paillier import PaillierPublicKey
from psc.scale.shards import ShardPlan

if TYPE_CHECKING:
    from distributed import Client, Future

#: ``(period, retention class, label)``; label ``""`` is the score, others are cap counters
AccumulatorKey = tuple[int, str, str]


@dataclass(frozen=True)
class ShardState:
    """One shard's accumulators (worker side).  ``accumulators[key] = (blocks, bound,
    contributions)``; ``applied`` is the set of envelope hashes already added."""

    shard: int
    nsquare: mpz
    accumulators: dict[AccumulatorKey, tuple[tuple[mpz, ...], int, int]] = field(
        default_factory=dict
    )
    applied: frozenset[bytes] = frozenset()


#: what one envelope adds to one shard: ``(key, blocks of this shard, bound)`` per ciphertext
ShardUpdate = list[tuple[AccumulatorKey, tuple[mpz, ...], int]]


def _new_state(shard: int, nsquare: int) -> ShardState:
    return ShardState(shard, mpz(nsquare))


def _apply(state: ShardState, envelope_hash: bytes, update: ShardUpdate) -> ShardState:
    """Worker: multiply one envelope's blocks into the shard's accumulators (once)."""
    if envelope_hash in state.applied:
        return state
    accs = dict(state.accumulators)
    nsq = state.nsquare
    for key, blocks, bound in update:
        old = accs.get(key)
        if old is None:
            accs[key] = (blocks, bound, 1)
        else:
            acc, b, count = old
            if len(acc) != len(blocks):
                raise KeyMismatch(f"shard {state.shard}: block count changed for {key}")
            accs[key] = (
                tuple(x * y % nsq for x, y in zip(acc, blocks, strict=True)),
                b + bound,
                count + 1,
            )
    return ShardState(state.shard, nsq, accs, state.applied | {envelope_hash})


def _live(
    state: ShardState, period: int, months: Mapping[str, int], labels: Sequence[str]
) -> dict[str, tuple[tuple[mpz, ...], int] | None]:
    """Worker: the shard's live sums at the close of ``period``: per label (``""`` the
    score) the product of the accumulators with ``p <= period < p + months(class)``, with
    the sum of their bounds; ``None`` when nothing is live."""
    nsq = state.nsquare
    out: dict[str, tuple[tuple[mpz, ...], int] | None] = {label: None for label in labels}
    for (p, retention, label), (blocks, bound, _count) in sorted(state.accumulators.items()):
        if not p <= period < p + months[retention]:
            continue
        have = out[label]
        if have is None:
            out[label] = (blocks, bound)
        else:
            out[label] = (
                tuple(x * y % nsq for x, y in zip(have[0], blocks, strict=True)),
                have[1] + bound,
            )
    return out


def _applied(state: ShardState) -> frozenset[bytes]:
    return state.applied


def _digest(state: ShardState) -> bytes:
    """Worker: SHA-256 over the shard's accumulators in key order (audit and tests)."""
    h = hashlib.sha256(b"psc/shard-state/v1" + state.shard.to_bytes(4, "big"))
    for key in sorted(state.accumulators):
        blocks, bound, count = state.accumulators[key]
        h.update(repr((key, bound, count)).encode())
        for b in blocks:
            h.update(int(b).to_bytes((int(b).bit_length() + 7) // 8 or 1, "big"))
    return h.digest()


def _gather(client: Client, futures: Any) -> Any:
    return client.gather(futures)


class ShardedAccumulators:
    """The aggregator's accumulators, one shard per range of blocks, on Dask workers.

    ``ShardedAccumulators(client, public_key, plan)``: shard ``i`` lives on worker
    ``workers[i % len(workers)]`` (default: the workers the scheduler knows now).
    :meth:`add` is asynchronous (it submits one task per shard and returns);
    :meth:`live_sums`, :meth:`applied` and :meth:`digests` wait for every update before
    them.  Raises :class:`KeyMismatch` for ciphertexts of another key or layout and
    :class:`OverflowRisk` if a live sum could overflow its slots (impossible for envelopes
    the aggregator admitted under a layout sized for the catalog).
    """

    def __init__(
        self,
        client: Client,
        public_key: PaillierPublicKey,
        plan: ShardPlan,
        *,
        workers: Sequence[str] | None = None,
    ) -> None:
        self.client = client
        self.public_key = public_key
        self.plan = plan
        addrs = list(workers) if workers else sorted(client.scheduler_info()["workers"])
        if not addrs:
            raise ValueError("the Dask cluster has no workers")
        self.placement = [addrs[i % len(addrs)] for i in range(plan.shards)]
        self._states: list[Future[ShardState]] = [
            client.submit(_new_state, i, int(public_key.nsquare), workers=[w], pure=False)
            for i, w in enumerate(self.placement)
        ]

    def add(
        self, envelope_hash: bytes, period: int, items: Sequence[tuple[str, str, PackedCiphertext]]
    ) -> None:
        """Add one admitted envelope's ciphertexts ``(retention, label, ciphertext)`` to
        every shard (each ciphertext cut along the plan)."""
        per_shard: list[ShardUpdate] = [[] for _ in range(self.plan.shards)]
        for retention, label, ct in items:
            if ct.key_fingerprint != self.public_key.fingerprint:
                raise KeyMismatch("ciphertext was encrypted under a different Paillier key")
            for i, part in enumerate(self.plan.split(ct)):
                per_shard[i].append(((period, retention, label), part.blocks, part.bound))
        self._states = [
            self.client.submit(_apply, st, envelope_hash, up, workers=[w], pure=False)
            for st, up, w in zip(self._states, per_shard, self.placement, strict=True)
        ]

    def add_shard_updates(self, envelope_hash: bytes, updates: Sequence[Any]) -> None:
        """Add one envelope given as per-shard updates (each a :data:`ShardUpdate`, or a
        Dask future of one already on the shard's worker: agencies that upload each
        shard's blocks to its worker directly).  Unchecked beyond what :func:`_apply` checks:
        for the aggregator's own plumbing and benchmarks; the protocol path is :meth:`add`."""
        if len(updates) != self.plan.shards:
            raise ValueError(f"{len(updates)} updates for {self.plan.shards} shards")
        self._states = [
            self.client.submit(_apply, st, envelope_hash, up, workers=[w], pure=False)
            for st, up, w in zip(self._states, updates, self.placement, strict=True)
        ]

    def live_sums(
        self, period: int, months: Mapping[str, int], labels: Sequence[str]
    ) -> dict[str, PackedCiphertext]:
        """Per label (``""`` the score), the live sum at the close of ``period`` over all
        shards, merged into one ciphertext; the trivial zero ``E(0; r = 1)`` (all blocks
        1, bound 0) for a label with nothing live, as the single-process aggregator."""
        want = ["", *[x for x in labels if x != ""]]
        parts: list[dict[str, Any]] = _gather(
            self.client, self.live_sums_on_shards(period, months, want)
        )
        out: dict[str, PackedCiphertext] = {}
        layout, fp = self.plan.layout, self.public_key.fingerprint
        for label in want:
            got = [p[label] for p in parts]
            if all(g is None for g in got):
                blocks = tuple(mpz(1) for _ in range(self.plan.blocks))
                out[label] = PackedCiphertext(fp, layout, self.plan.n_values, 0, blocks)
                continue
            if any(g is None for g in got) or len({g[1] for g in got}) != 1:
                raise KeyMismatch("shards disagree on what is live; rebuild them from the log")
            bound = got[0][1]
            if bound > layout.max_value:
                raise OverflowRisk(
                    f"this sum could reach {bound}, beyond the slot range +-{layout.max_value}"
                )
            pieces = [
                PackedCiphertext(fp, layout, len(self.plan.slot_range(i)), bound, g[0])
                for i, g in enumerate(got)
            ]
            out[label] = self.plan.merge(pieces)
        return out

    def live_sums_on_shards(
        self, period: int, months: Mapping[str, int], labels: Sequence[str]
    ) -> list[Future[dict[str, Any]]]:
        """Per shard, a future of its live sums (:func:`_live`), left on the shard's worker:
        what a sharded reveal decrypts in place (``protocols/scale.md``)."""
        return [
            self.client.submit(
                _live, st, period, dict(months), list(labels), workers=[w], pure=False
            )
            for st, w in zip(self._states, self.placement, strict=True)
        ]

    def applied(self) -> list[frozenset[bytes]]:
        """Per shard, the envelope hashes it has added."""
        futures = [
            self.client.submit(_applied, st, workers=[w], pure=False)
            for st, w in zip(self._states, self.placement, strict=True)
        ]
        result: list[frozenset[bytes]] = _gather(self.client, futures)
        return result

    def digests(self) -> list[bytes]:
        """Per shard, a SHA-256 digest of its accumulators."""
        futures = [
            self.client.submit(_digest, st, workers=[w], pure=False)
            for st, w in zip(self._states, self.placement, strict=True)
        ]
        result: list[bytes] = _gather(self.client, futures)
        return result

    def wait(self) -> None:
        """Block until every submitted update is applied (raises a worker's error)."""
        _gather(self.client, self._states)
