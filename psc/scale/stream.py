"""The batch reveal as a stream of shard-sized requests: memory bounded by one shard.

A batch reveal of every subject as **one** request carries every block of the period's
live sums in one :class:`~psc.protocol.messages.RevealRequest`, holds them all at the key
holder, and answers with every grade in one response: memory grows with the subjects.
:func:`reveal_by_shard` asks instead one ordinary grade request per shard of a
:class:`~psc.scale.shards.ShardPlan` (the shard's slots), and yields each shard's grades
before it asks for the next, so the blocks in any message, and those any party holds for
the reveal, are one shard's (``1 + caps`` labels times the shard's blocks), whatever the
number of subjects.

Nothing else changes: each request is a protocol request like any other (signed by the
requester, checked for purpose, consent and freshness, its blocks checked against the log,
answered only after its release notice is logged), so the one transparency log holds one
``reveal`` entry per shard, and the privacy budget is charged per subject as before (each
subject is in exactly one shard).  What leaks beyond the one-request batch: the shard plan
(public) and the number of requests.  Raises what the parties raise; a failure stops the
stream at that shard (the shards already yielded were answered and logged).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from psc.parties.aggregator import Aggregator
from psc.parties.key_holder import KeyHolder
from psc.parties.relying_party import read_grades
from psc.protocol import codec
from psc.protocol.messages import RevealRequest, SignedMessage
from psc.protocol.parameters import ProtocolParameters
from psc.scale.shards import ShardPlan


@dataclass(frozen=True)
class ShardGrades:
    """One shard's answer: its index, grades by slot, and the size of the reveal request
    that carried its blocks (``blocks``: ciphertext blocks, ``request_bytes``: bytes)."""

    shard: int
    grades: dict[int, str]
    blocks: int
    request_bytes: int


def reveal_by_shard(
    params: ProtocolParameters,
    plan: ShardPlan,
    grade_request: Callable[[range], bytes],
    aggregator: Aggregator,
    key_holder: KeyHolder,
) -> Iterator[ShardGrades]:
    """Requester (the registry for subjects), with the aggregator and the key holder: one
    grade request per shard of ``plan``, in plan order, each answered and logged before the
    next is made (see the module doc).  ``grade_request(slots)`` makes the sealed request
    (e.g. ``lambda r: registry.grade_request(r, period)``).  Raises
    :class:`ValueError` for a plan of other parameters."""
    if (plan.layout, plan.n_values) != (params.layout, params.n_subjects):
        raise ValueError("the shard plan is for another layout or subject count")
    for i in range(plan.shards):
        request = grade_request(plan.slot_range(i))
        sealed = aggregator.prepare_reveal(request)
        rr = codec.decode(codec.decode(sealed, SignedMessage).body, RevealRequest)
        answer = key_holder.answer(sealed)
        key_holder.check_logged(answer, aggregator.release(answer.notice))
        yield ShardGrades(
            i, read_grades(params, request, answer.response), len(rr.blocks), len(sealed)
        )
