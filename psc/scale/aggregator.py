"""The protocol's aggregator with its encrypted accumulators sharded on Dask.

:class:`ShardedAggregator` is :class:`psc.parties.aggregator.Aggregator` with one change: the
accumulators live in :class:`~psc.scale.accumulators.ShardedAccumulators` instead of the
ledger.  Everything else stays in one place and one process: every check of
:meth:`~psc.parties.aggregator.Aggregator.ingest` (signature, catalog version, period, nonce,
shape, bounds) runs before anything is touched, and one transaction appends the log entry,
signs the tree head and stores the envelope and its receipt: **one transparency log**.
Only then are the admitted ciphertexts cut along the shard plan and added on the shards.

The ledger's stored envelopes are the source of truth; shards are derived state.  If a
shard is lost or an update fails after the log entry committed, the shard is rebuilt by
re-adding the logged envelopes (each shard applies an envelope hash at most once), and
:meth:`check_shards` compares every shard's applied set with the log before a reveal.

What the sharded aggregator sees, and every worker: exactly what the single-process
aggregator sees (ciphertexts, bounds, public metadata).  Not covered here: the rights
workflows that read accumulators from the ledger (corrections) use the single-process
aggregator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.exceptions import InvalidMessage
from psc.hazmat.backends.paillier import PackedCiphertext
from psc.ledger.store import Ledger
from psc.parties.aggregator import Aggregator
from psc.protocol.messages import Submission
from psc.protocol.parameters import ProtocolParameters
from psc.scale.accumulators import ShardedAccumulators
from psc.scale.shards import ShardPlan
from psc.seams import Clock, system_clock

if TYPE_CHECKING:
    from distributed import Client


class ShardedAggregator(Aggregator):
    """:class:`~psc.parties.aggregator.Aggregator` whose accumulators are sharded over the Dask
    ``client``'s workers (see the module doc): ``shards`` contiguous block ranges (default
    one per worker, at most one per block), shard ``i`` on ``workers[i % len(workers)]``.
    Raises what the base class raises; nothing changes on a refusal.
    """

    def __init__(
        self,
        params: ProtocolParameters,
        ledger: Ledger,
        signing_key: Ed25519PrivateKey,
        *,
        client: Client,
        shards: int | None = None,
        workers: Sequence[str] | None = None,
        clock: Clock = system_clock,
    ) -> None:
        super().__init__(params, ledger, signing_key, clock=clock)
        addrs = list(workers) if workers else sorted(client.scheduler_info()["workers"])
        k = shards if shards is not None else max(1, len(addrs))
        plan = ShardPlan(
            params.layout, params.n_subjects, min(k, params.layout.blocks(params.n_subjects))
        )
        self.accumulators = ShardedAccumulators(client, params.public_key, plan, workers=addrs)
        self._sharded_cache: dict[
            tuple[int, int], tuple[PackedCiphertext, dict[str, PackedCiphertext]]
        ] = {}

    def _commit_envelope(
        self,
        sub: Submission,
        sealed: bytes,
        env_hash: bytes,
        adds: list[tuple[str, str, PackedCiphertext]],
    ) -> bytes:
        known = self.ledger.envelope(env_hash)
        if known is not None:
            return known.receipt
        # one transaction: log entry, tree head, envelope, receipt; no ledger accumulators
        receipt = super()._commit_envelope(sub, sealed, env_hash, [])
        self.accumulators.add(env_hash, sub.period, adds)
        return receipt

    def live_sums(self, period: int) -> tuple[PackedCiphertext, dict[str, PackedCiphertext]]:
        """As :meth:`~psc.parties.aggregator.Aggregator.live_sums`, computed on the shards and
        merged: identical ciphertexts.  Checks every shard against the log first
        (:meth:`check_shards`), so a reveal never decrypts sums of diverged shards."""
        self.check_shards()
        key = (period, self.ledger.envelope_count())
        if key in self._sharded_cache:
            return self._sharded_cache[key]
        cat = self.params.catalog
        months = {name: r.months for name, r in cat.retention.items()}
        labels = list(cat.cap_labels())
        sums = self.accumulators.live_sums(period, months, labels)
        out = (sums[""], {label: sums[label] for label in labels})
        self._sharded_cache = {key: out}
        return out

    def check_shards(self) -> None:
        """Every shard has added exactly the logged submissions.  Raises
        :class:`InvalidMessage` naming the first shard that has not."""
        logged = {e.envelope_hash for e in self.ledger.envelopes()}
        for i, applied in enumerate(self.accumulators.applied()):
            if set(applied) != logged:
                raise InvalidMessage(
                    f"shard {i} holds {len(applied)} envelopes, the log {len(logged)}: "
                    "rebuild it from the logged envelopes"
                )
