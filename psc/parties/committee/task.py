"""The reveal task as both sides read it: shape checks and the noised blocks.

A task is combiner-signed; members and the combiner open it with the same code, so they
agree on exactly which units are decrypted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gmpy2

from psc.exceptions import (
    InvalidMessage,
    KeyMismatch,
)
from psc.hazmat.backends.paillier import PackedCiphertext, PackedPaillier
from psc.hazmat.proofs.plaintext import PlaintextProof, verify_plaintexts_many
from psc.parties.committee.params import SCORE_LABEL, CommitteeParameters
from psc.protocol.committee_messages import (
    NoiseShare,
    RevealTask,
)
from psc.protocol.signing import digest, open_signed

# ----------------------------------------------------------------------------------------
# the task, as both sides read it


@dataclass(frozen=True)
class _Task:
    task: RevealTask
    task_hash: bytes
    #: the units decrypted, (label, block) -> one-block ciphertext: every task block, except
    #: that a block whose every slot is a target is one merged unit under "score"
    blocks: dict[tuple[str, int], PackedCiphertext]
    targets: dict[int, list[int]]  # block -> target offsets within the block
    merged: frozenset[int]  # blocks decrypted as one merged unit (see merge_shift)
    #: the task's blocks as sent, (label, block) -> one-block ciphertext (before merging):
    #: what members check against the log
    original: dict[tuple[str, int], PackedCiphertext]

    @property
    def units(self) -> list[tuple[str, int]]:
        return sorted(self.blocks)


def _read_task(params: CommitteeParameters, backend: PackedPaillier, sealed: bytes) -> _Task:
    """Member and combiner: open a combiner-signed task and check its shape.

    Blocks must be exactly ``labels x {blocks holding a target}``, every one a one-block
    ciphertext under the committee key; targets must fall in those blocks.
    Raises :class:`InvalidMessage`.
    """
    task = open_signed(sealed, RevealTask, lambda m: params.combiner_key)
    S = params.layout.slots
    needed = sorted({s // S for s in task.targets})
    if [(b.label, b.block) for b in task.blocks] != [
        (lab, j) for lab in params.labels for j in needed
    ]:
        raise InvalidMessage("task blocks are not exactly the blocks holding its targets")
    blocks: dict[tuple[str, int], PackedCiphertext] = {}
    counts: dict[int, int] = {}
    for b in task.blocks:
        try:
            ct = backend.deserialize(b.ciphertext)
        except KeyMismatch as exc:
            raise InvalidMessage("task block is under another key") from exc
        if len(ct.blocks) != 1 or not 1 <= ct.n_values <= S:
            raise InvalidMessage("a task block must be one packed block")
        if counts.setdefault(b.block, ct.n_values) != ct.n_values:
            raise InvalidMessage("task blocks of one index disagree on their slot count")
        blocks[(b.label, b.block)] = ct
    targets: dict[int, list[int]] = {}
    for s in task.targets:
        off = s - (s // S) * S
        if off >= counts[s // S]:
            raise InvalidMessage("a target slot does not exist")
        targets.setdefault(s // S, []).append(off)
    original = dict(blocks)
    g = params.merge_shift
    merged = frozenset(j for j in needed if g is not None and len(targets[j]) == counts[j])
    caps = sorted(params.catalog.cap_labels())
    nsq = params.public.public.nsquare
    for j in merged:
        assert g is not None
        score = blocks[(SCORE_LABEL, j)]
        c, bound = score.blocks[0], score.bound
        if score.bound > params.data_bound:
            raise InvalidMessage("a task block's bound exceeds what the layout was sized for")
        for i, label in enumerate(caps, start=1):
            cap = blocks.pop((label, j))
            if cap.bound > params.data_bound:
                raise InvalidMessage("a task block's bound exceeds what the layout was sized for")
            c = c * gmpy2.powmod(cap.blocks[0], 1 << (g * i), nsq) % nsq
            bound += cap.bound << (g * i)
        blocks[(SCORE_LABEL, j)] = PackedCiphertext(
            score.key_fingerprint, score.layout, score.n_values, bound, (c,)
        )
    return _Task(task, digest(sealed), blocks, targets, merged, original)


def _noised(
    params: CommitteeParameters,
    backend: PackedPaillier,
    task: _Task,
    shares: Sequence[NoiseShare],
) -> list[PackedCiphertext]:
    """Member and combiner: ``c * prod z_i`` per task block, in task order.

    Raises :class:`InvalidMessage` if a share's blocks do not match the task or declare a
    bound above what the policy allows (an overflow risk).
    """
    out = []
    for label, j in task.units:
        ct = task.blocks[(label, j)]
        parts = [ct]
        masked = len(task.targets[j]) < ct.n_values
        for ns in shares:
            if [(b.label, b.block) for b in ns.shares] != task.units:
                raise InvalidMessage(f"noise share of member {ns.member} does not match the task")
            merged = j in task.merged
            z = _share_block(params, backend, ns, label, j, ct.n_values, masked, merged)
            parts.append(z)
        out.append(backend.sum(parts))
    return out


def _share_block(
    params: CommitteeParameters,
    backend: PackedPaillier,
    ns: NoiseShare,
    label: str,
    block: int,
    count: int,
    masked: bool,
    merged: bool,
) -> PackedCiphertext:
    for b in ns.shares:
        if (b.label, b.block) == (label, block):
            try:
                z = backend.deserialize(b.ciphertext)
            except KeyMismatch as exc:
                raise InvalidMessage(
                    f"noise share of member {ns.member} is under another key"
                ) from exc
            if len(z.blocks) != 1 or z.n_values != count:
                raise InvalidMessage(f"noise share of member {ns.member} has the wrong shape")
            if z.bound > params.unit_share_bound(masked=masked, merged=merged):
                raise InvalidMessage(
                    f"noise share of member {ns.member} declares too large a bound"
                )
            return z
    raise InvalidMessage(f"noise share of member {ns.member} misses block ({label}, {block})")


def share_context(task_hash: bytes, member: int) -> bytes:
    """The Fiat-Shamir context of a member's noise-share proof: one task, one member."""
    return b"psc/committee/noise-share/v1" + task_hash + member.to_bytes(2, "big")


def _share_blocks(backend: PackedPaillier, ns: NoiseShare) -> list[int]:
    blocks: list[int] = []
    for b in ns.shares:
        try:
            z = backend.deserialize(b.ciphertext)
        except KeyMismatch as exc:
            raise InvalidMessage(f"noise share of member {ns.member} is under another key") from exc
        if len(z.blocks) != 1:
            raise InvalidMessage(f"noise share of member {ns.member} has the wrong shape")
        blocks.append(int(z.blocks[0]))
    return blocks


def _verify_share_proofs(
    params: CommitteeParameters,
    backend: PackedPaillier,
    task: _Task,
    shares: Sequence[NoiseShare],
) -> None:
    """Member and combiner: every member knows the plaintext of every block it sent for
    this task (:mod:`psc.hazmat.proofs.plaintext`), checked as one batch (one ``n``-th power);
    after a failure, share by share, so the error names the first failing member.
    Raises :class:`InvalidMessage`."""
    pk = params.public.public
    items = []
    for ns in shares:
        blocks = _share_blocks(backend, ns)
        try:
            proof = PlaintextProof.from_bytes(pk, ns.proof, len(blocks))
        except InvalidMessage as exc:
            raise InvalidMessage(
                f"noise share of member {ns.member} fails its proof of plaintext knowledge"
            ) from exc
        items.append((blocks, proof, share_context(task.task_hash, ns.member)))
    try:
        verify_plaintexts_many(pk, items)
        return
    except InvalidMessage:
        pass
    for ns, item in zip(shares, items, strict=True):
        try:
            verify_plaintexts_many(pk, [item])
        except InvalidMessage as exc:
            raise InvalidMessage(
                f"noise share of member {ns.member} fails its proof of plaintext knowledge"
            ) from exc
    raise InvalidMessage("the noise shares' proofs fail together but pass one by one")
