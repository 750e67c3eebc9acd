"""Scale-out: the aggregator's encrypted accumulators sharded by subject blocks on
``dask.distributed`` (optional extra ``scale``).

* :mod:`psc.scale.shards`: :class:`ShardPlan`, contiguous ranges of ciphertext blocks
  (each block is ``S`` subject slots), splitting and merging packed ciphertexts;
* :mod:`psc.scale.accumulators`: :class:`ShardedAccumulators`, per-shard accumulator state
  kept on Dask workers;
* :mod:`psc.scale.aggregator`: :class:`ShardedAggregator`, the protocol's aggregator with
  its accumulators sharded: one verification, one transparency log, per-shard sums;
* :mod:`psc.scale.reveal`: :class:`ShardedTrustedDecryptor` (the key holder's decryptions
  per shard on its own Dask workers) and :class:`ShardedKeyCommittee` (the committee's batch
  reveal one task per shard, one charge, one answer);
* :mod:`psc.scale.stream`: :func:`reveal_by_shard`, one grade request per shard, so every
  reveal message carries one shard's blocks;
* :mod:`psc.scale.cluster`: :func:`dask_client`, a bounded ``LocalCluster`` by default or a
  client of a real cluster's scheduler.

The aggregator's shards never decrypt: a shard holds ciphertexts and public metadata only,
exactly what the single-process aggregator holds.  Decryption runs only where the reveal
already runs it (the key holder's own workers, the committee's members).  Specification: ``protocols/scale.md``.
"""

from __future__ import annotations

from psc.scale.shards import ShardPlan

__all__ = ["ShardPlan"]
