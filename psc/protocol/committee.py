"""The k-of-n key committee's DP grade reveal (normative: ``protocols/reveal-dp.md``).

Roles (each method's docstring names the role that runs it):

* :class:`CommitteeMember` (``n`` of them): holds one key share of
  :mod:`psc.threshold` and an Ed25519 signing key.  Contributes an encrypted **noise
  share** at every revealed slot and an encrypted **mask share** at every other slot of
  the blocks it is asked about, then one proved decryption share of the noised, masked
  blocks, which it recomputes itself.  Sees: ciphertexts, target slot numbers, the other
  members' encrypted shares.  Never a plaintext.
* :class:`KeyCommittee` (the **combiner**, the party answering grade requests; it holds
  no key share): checks the privacy budget, collects and verifies noise shares, adds them
  homomorphically, collects and verifies decryption shares, combines ``k`` good ones,
  maps ``base + sum + noise`` to a grade and discards the noisy value.  Sees: for each
  revealed slot its noisy score and its exact live cap counts; for every other slot of a
  decrypted block a value within statistical distance ``2^-mask_bits`` of uniform.
* :class:`CommitteeRevealer`: the :class:`~psc.protocol.roles.Revealer` a key holder
  plugs the committee into.

Transport: a :class:`MemberLink` per member (:class:`LocalLink` in process,
:class:`MemberProcess` in its own OS process; :func:`parallel` asks several at once).

Batch: a block whose every slot is revealed needs no masks, and its score and cap
counters are decrypted as one merged ciphertext (``CommitteeParameters.merge_shift``),
which halves the members' work.  Statistics (:meth:`KeyCommittee.release_sums`, used by
:mod:`psc.statistics`) reveal every cell of a vector of sums the same way.

The algebra, per block ``c = E(x)`` (``x`` the packed live sums, ``S`` slots)::

    member i:  z_i = E(pack(e_i)),  e_i[s] = noise share   (s a target, score label)
                                    e_i[s] = 0             (s a target, cap label)
                                    e_i[s] = mask share    (s not a target)
    combiner:  c' = c * prod_{i in G} z_i  = E(x + sum_i e_i)        (G: >= h good shares)
    members:   k proved shares of c' (each member recomputes c' from c and G itself)
    combiner:  y = D(c');  grade(s) = grades_of(base + y[s], caps) for targets; y[s] of
               other slots is x[s] + sum of masks: statistically hidden, never used.

Noise: each member's share is drawn from :func:`psc.dp.distributed.share_parameters`
(target discrete Laplace of scale ``sensitivity / epsilon``, ``honest = h``), so any ``h``
honest shares alone sum to exactly the target; shares are redrawn above a public tail
bound ``B`` (``P(|share| > B) <= 2^-63``), which costs ``delta = (1 + e^eps) n 2^-63``.
Masks: each member's mask share is uniform in ``[0, m)`` with ``m = 2^(mask_bits + 1 +
bitlen(V))`` (``V`` the largest lawful live value), so one honest member's mask alone
hides a slot to statistical distance ``2 V / m <= 2^-mask_bits`` and no sum can carry into
the next slot (the layout, :func:`reveal_layout`, has room for ``V + n max(B, m-1)``).

Accounting: a subject's release is its grade for one period (release id
``grade:<period>``), charged ``ApproxDP(epsilon, delta)`` in a
:class:`~psc.dp.budget.BudgetLedger` (key ``subject:<slot>``) in the same transaction
that stores the signed answer; a repeat in the same period returns the stored grade and
spends nothing; a request that would exceed a budget raises
:class:`~psc.exceptions.BudgetExhausted` before any member is asked for anything.
Members independently refuse to decrypt a second release of the same (slot, period),
so even a dishonest combiner gets at most one noisy value per subject and period.
"""

from __future__ import annotations

import math
import secrets
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction

import gmpy2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.backends.base import IntArray
from psc.backends.paillier import PackedCiphertext, PackedPaillier, RandomnessPool
from psc.catalog import Catalog
from psc.dp.accounting import ApproxDP, DiscreteLaplace, Loss, scale_for_epsilon, sensitivity
from psc.dp.budget import BudgetLedger
from psc.dp.distributed import ShareParameters, share_parameters
from psc.dp.random import RandomSource, resolve
from psc.exceptions import (
    BudgetExhausted,
    InsufficientShares,
    InvalidMessage,
    KeyMismatch,
    ParameterError,
    PolicyViolation,
)
from psc.oracle import grades_of
from psc.packing import MAX_SLOT_BITS, SlotLayout
from psc.paillier import RandBelow
from psc.protocol.committee_messages import (
    CommitteeGrades,
    DecryptionRequest,
    MemberDecryptionShare,
    NoiseShare,
    RevealTask,
)
from psc.protocol.messages import BlockCiphertext, SlotGrade
from psc.protocol.roles import Revealer, protocol_layout
from psc.protocol.signing import digest, open_signed, public_bytes, seal
from psc.threshold import (
    CommitteeDecryption,
    KeyShare,
    PackedDecryptionShare,
    ThresholdPublicKey,
    _combine_values,
    decode_packed_share,
    decrypt_packed,
    encode_packed_share,
)

__all__ = [
    "MECHANISM",
    "SCORE_LABEL",
    "CommitteeMember",
    "CommitteeParameters",
    "CommitteeReveal",
    "CommitteeRevealer",
    "KeyCommittee",
    "LocalLink",
    "MemberLink",
    "MemberProcess",
    "NoiseWitness",
    "RevealPolicy",
    "StatisticRelease",
    "expected_misgrade_rate",
    "noise_share_bound",
    "open_committee_store",
    "parallel",
    "release_id",
    "reveal_layout",
    "subject_key",
    "tail_delta",
    "total_noise_pmf",
]

#: The label of the score sum (equals :data:`psc.protocol.roles.SCORE_LABEL`).
SCORE_LABEL = "score"
#: The mechanism name reported with every release.
MECHANISM = "distributed-discrete-laplace"
#: ``-log2`` of the tail probability above which a noise share is redrawn (per share).
TAIL_BITS = 63
#: ``ceil(t * 4437/100) >= t * 64 ln 2``: ``q^(B+1) <= 2^-64`` for ``q = e^(-1/t)``.
_TAIL_FACTOR = Fraction(4437, 100)

Clock = Callable[[], int]


def _now() -> int:
    import time

    return int(time.time())


# ----------------------------------------------------------------------------------------
# public parameters


def noise_share_bound(scale: Fraction) -> int:
    """Public bound ``B`` on one member's noise share for a target of scale ``t``.

    A share is ``P - Q`` with ``P, Q ~ NB(1/h, q)``, ``q = e^(-1/t)``; ``NB(r)`` is
    stochastically below ``NB(1)`` (geometric) for ``r <= 1``, so
    ``P(|share| > B) <= 2 q^(B+1) <= 2^-63`` for ``B = ceil(t * 44.37)``.
    """
    return math.ceil(Fraction(scale) * _TAIL_FACTOR)


def tail_delta(epsilon: Fraction, members: int) -> Fraction:
    """``delta`` charged for redrawing shares above ``B``: ``(1 + e^eps) * n * 2^-63``.

    Redrawing makes each share's distribution the exact one conditioned on ``|share| <= B``,
    at total variation ``<= n 2^-63`` from the untruncated mechanism; an ``eps``-DP
    mechanism within ``eta`` of it is ``(eps, (1 + e^eps) eta)``-DP.  ``e^eps`` is bounded
    by the integer ``ceil(e^eps) + 1`` (so float rounding can only overstate delta).
    """
    e_up = math.ceil(math.exp(float(epsilon))) + 1
    return Fraction((1 + e_up) * members, 2**TAIL_BITS)


@dataclass(frozen=True)
class RevealPolicy:
    """Public DP parameters of the committee's grade reveal.

    Fields:
        epsilon: per subject and period (one grade release).
        min_epsilon: the smallest epsilon the deployment may ever use; it sizes the
            slot headroom for noise (smaller epsilon = more noise = wider slots).
        honest: h, members assumed honest; any h honest noise shares give the target.
        mask_bits: kappa, statistical hiding of masked slots (distance ``2^-kappa``).
    """

    epsilon: Fraction
    min_epsilon: Fraction
    honest: int
    mask_bits: int = 40

    def __post_init__(self) -> None:
        eps, lo = Fraction(self.epsilon), Fraction(self.min_epsilon)
        if not 0 < lo <= eps:
            raise ParameterError(f"need 0 < min_epsilon <= epsilon, got {lo} and {eps}")
        if self.honest < 1:
            raise ParameterError(f"honest must be >= 1, got {self.honest}")
        if not 16 <= self.mask_bits <= 48:
            raise ParameterError(f"mask_bits must be in 16..48, got {self.mask_bits}")
        object.__setattr__(self, "epsilon", eps)
        object.__setattr__(self, "min_epsilon", lo)


def _data_bound(catalog: Catalog, key_bits: int, multiplicity: int) -> int:
    return protocol_layout(catalog, key_bits, multiplicity=multiplicity).max_value


def _mask_range(data_bound: int, mask_bits: int) -> int:
    return 1 << (mask_bits + 1 + data_bound.bit_length())


def reveal_layout(
    catalog: Catalog, key_bits: int, *, multiplicity: int, members: int, policy: RevealPolicy
) -> SlotLayout:
    """Slot layout with room for the committee's noise and masks (``protocols/reveal-dp.md``).

    ``V`` = the widest lawful live value (:func:`~psc.protocol.roles.protocol_layout`),
    ``B`` = :func:`noise_share_bound` at ``min_epsilon``, ``m`` = the mask range; slots are
    ``w = bitlen(V + n max(B, m - 1)) + 1`` bits.  Raises :class:`ParameterError` beyond
    :data:`~psc.packing.MAX_SLOT_BITS` (lower ``mask_bits`` or raise ``min_epsilon``).
    """
    v = _data_bound(catalog, key_bits, multiplicity)
    b = noise_share_bound(scale_for_epsilon(policy.min_epsilon, sensitivity(catalog)))
    m = _mask_range(v, policy.mask_bits)
    w = (v + members * max(b, m - 1)).bit_length() + 1
    if w > MAX_SLOT_BITS:
        raise ParameterError(
            f"noise and {policy.mask_bits}-bit masks need {w}-bit slots, above {MAX_SLOT_BITS}; "
            "lower mask_bits or raise min_epsilon"
        )
    return SlotLayout.for_key(key_bits, w)


@dataclass(frozen=True)
class CommitteeParameters:
    """What every member and the combiner know: keys, catalog, layout and DP policy.

    ``member_keys[i - 1]`` is member ``i``'s Ed25519 public key; ``combiner_key`` signs
    tasks, decryption requests and answers.  Raises :class:`ParameterError` if the layout
    has no room for the noise and masks, or the key counts disagree.
    """

    catalog: Catalog
    public: ThresholdPublicKey
    layout: SlotLayout
    multiplicity: int
    policy: RevealPolicy
    member_keys: tuple[bytes, ...]
    combiner_key: bytes
    allow_insecure_key: bool = False
    mechanism: DiscreteLaplace = field(init=False, repr=False)
    shares: ShareParameters = field(init=False, repr=False)
    share_bound: int = field(init=False)
    data_bound: int = field(init=False)
    mask_range: int = field(init=False)

    def __post_init__(self) -> None:
        n = self.public.parties
        if len(self.member_keys) != n:
            raise ParameterError(f"{n} members need {n} signing keys, got {len(self.member_keys)}")
        if not self.public.k <= self.policy.honest <= n:
            raise ParameterError(
                f"honest must be in k..n = {self.public.k}..{n}, got {self.policy.honest}"
            )
        want = reveal_layout(
            self.catalog,
            self.public.public.bits,
            multiplicity=self.multiplicity,
            members=n,
            policy=self.policy,
        )
        if self.layout.slot_bits < want.slot_bits or self.layout != SlotLayout.for_key(
            self.public.public.bits, self.layout.slot_bits
        ):
            raise ParameterError(f"layout {self.layout} has no room for noise and masks ({want})")
        mech = DiscreteLaplace(scale_for_epsilon(self.policy.epsilon, sensitivity(self.catalog)))
        object.__setattr__(self, "mechanism", mech)
        object.__setattr__(self, "shares", share_parameters(mech, n, honest=self.policy.honest))
        object.__setattr__(self, "share_bound", noise_share_bound(mech.scale))
        v = _data_bound(self.catalog, self.public.public.bits, self.multiplicity)
        object.__setattr__(self, "data_bound", v)
        object.__setattr__(self, "mask_range", _mask_range(v, self.policy.mask_bits))

    @property
    def n(self) -> int:
        return self.public.parties

    @property
    def k(self) -> int:
        return self.public.k

    @property
    def labels(self) -> list[str]:
        """Labels of a task's blocks: the score and every cap label, sorted."""
        return sorted([SCORE_LABEL, *self.catalog.cap_labels()])

    @property
    def delta(self) -> Fraction:
        return tail_delta(self.policy.epsilon, self.n)

    @property
    def cost(self) -> ApproxDP:
        """What one subject's grade release for one period costs."""
        return ApproxDP(self.policy.epsilon, self.delta)

    @property
    def merge_shift(self) -> int | None:
        """``g``: a block whose every slot is revealed is decrypted as one ciphertext
        ``c_score * prod_l c_cap_l^(2^(g l))`` (cap label ``l = 1, 2...`` in label order):
        ``|score + noise| < 2^(g-1)`` and every count ``< 2^(g-1)``, so each slot decodes
        back into its score and counts.  ``None`` if that does not fit a slot."""
        g = (self.data_bound + self.n * self.share_bound).bit_length() + 1
        caps = len(self.catalog.cap_labels())
        total = self.data_bound + self.n * self.share_bound
        total += sum(self.data_bound << (g * i) for i in range(1, caps + 1))
        return g if total <= self.layout.max_value else None

    def max_share_bound(self, masked: bool) -> int:
        """Largest public bound a member's share vector may declare."""
        return max(self.share_bound, self.mask_range - 1) if masked else self.share_bound

    def backend(self, pool: RandomnessPool | None = None) -> PackedPaillier:
        return PackedPaillier(
            self.public.public, self.layout, pool=pool, allow_insecure_key=self.allow_insecure_key
        )


def subject_key(slot: int) -> str:
    """Budget-ledger key of a subject (its pseudonymous slot)."""
    return f"subject:{slot}"


def release_id(period: int) -> str:
    """Release id of a subject's grade in ``period``: one noisy grade per subject and period."""
    return f"grade:{period}"


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
    return _Task(task, digest(sealed), blocks, targets, merged)


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
            z = _share_block(params, backend, ns, label, j, ct.n_values, masked)
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
            if z.bound > params.max_share_bound(masked):
                raise InvalidMessage(
                    f"noise share of member {ns.member} declares too large a bound"
                )
            return z
    raise InvalidMessage(f"noise share of member {ns.member} misses block ({label}, {block})")


# ----------------------------------------------------------------------------------------
# member

#: **Simulation god view only, never a protocol role.**  A callback a simulation harness
#: (the reference driver, tests) may give a :class:`CommitteeMember` as
#: ``_simulation_noise_witness``: the member calls it with ``(member index, release,
#: period, slots, noise shares)`` for the score targets of every noise share it makes, so
#: the harness can check each revealed grade exactly against the oracle's grade of
#: ``raw score + total noise actually drawn``.  Learning the drawn noise breaks the DP
#: guarantee for whoever holds it: no agency, aggregator, combiner, member, relying party
#: or subject reads it, no message carries it, and a deployment never sets it.  It runs
#: in the member's own process (:class:`MemberProcess`), so it must not rely on shared memory.
NoiseWitness = Callable[[int, str, int, IntArray, IntArray], None]


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
        pool: RandomnessPool | None = None,
        _draw: Callable[[], int] | None = None,
        _simulation_noise_witness: NoiseWitness | None = None,
    ) -> None:
        if key_share.public.fingerprint != params.public.fingerprint:
            raise KeyMismatch("the key share is not for the committee's public key")
        if public_bytes(signing_key) != params.member_keys[key_share.index - 1]:
            raise KeyMismatch(f"this signing key is not member {key_share.index}'s registered key")
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
        self._sent: dict[bytes, bytes] = {}  # task hash -> digest of our sealed noise share
        # (release, slot, period) -> the decryption request that released it
        self._released: dict[tuple[str, int, int], bytes] = {}
        self._answered: dict[bytes, bytes] = {}  # decryption request hash -> our answer

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

    def noise_share(self, sealed_task: bytes) -> bytes:
        """Member: a sealed :class:`NoiseShare` for a combiner-signed :class:`RevealTask`.

        Pre-condition: the task is signed by the combiner.  For every task block it
        encrypts the vector ``e`` with a fresh noise share at each target of the score
        block, ``0`` at each target of a cap block and a fresh mask share (uniform in
        ``[0, m)``) at every other slot; the public bound is ``B`` (no masks) or
        ``max(B, m - 1)``.  Leaks: nothing (semantically secure ciphertexts; the bound is
        public policy).  Raises :class:`InvalidMessage` for a bad task.
        """
        p = self.params
        S = p.layout.slots
        task = _read_task(p, self._backend, sealed_task)
        shares = []
        for label, j in task.units:
            count = task.blocks[(label, j)].n_values
            offsets = task.targets[j]
            masked = len(offsets) < count
            vec = np.zeros(count, dtype=np.int64)
            is_target = np.zeros(count, dtype=bool)
            is_target[offsets] = True
            for s in range(count):
                if is_target[s]:
                    vec[s] = self.draw_noise() if label == SCORE_LABEL else 0
                else:
                    vec[s] = self._randbelow(p.mask_range)
            ct = self._backend.encrypt(vec, bound=p.max_share_bound(masked))
            shares.append(BlockCiphertext(label, j, self._backend.serialize(ct)))
            if self._witness is not None and label == SCORE_LABEL:
                offs = np.array(offsets, dtype=np.int64)
                self._witness(
                    self.index, task.task.release, task.task.period, j * S + offs, vec[offs]
                )
        sealed = seal(NoiseShare(self.index, task.task_hash, tuple(shares)), self._key)
        self._sent[task.task_hash] = digest(sealed)
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
        if req_hash in self._answered:
            return self._answered[req_hash]
        task = _read_task(p, self._backend, req.task)
        own = self._sent.get(task.task_hash)
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
        if seen != sorted(set(seen)):
            raise InvalidMessage("noise shares must come from distinct members, ascending")
        if not mine:
            raise InvalidMessage("the request does not include this member's noise share")
        if len(shares) < p.policy.honest:
            raise InvalidMessage(
                f"{len(shares)} noise shares, {p.policy.honest} needed for the privacy guarantee"
            )
        period = task.task.period
        again = [
            s
            for s in task.task.targets
            if self._released.get((task.task.release, s, period), req_hash) != req_hash
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
        for s in task.task.targets:
            self._released[(task.task.release, s, period)] = req_hash
        msg = MemberDecryptionShare(
            self.index, task.task_hash, req_hash, encode_packed_share(p.public, share)
        )
        out = seal(msg, self._key)
        self._answered[req_hash] = out
        return out


def _open_noise_share(params: CommitteeParameters, sealed: bytes) -> NoiseShare:
    def key_of(m: NoiseShare) -> bytes:
        if not 1 <= m.member <= params.n:
            raise InvalidMessage(f"noise share names member {m.member}, not in 1..{params.n}")
        return params.member_keys[m.member - 1]

    return open_signed(sealed, NoiseShare, key_of)


# ----------------------------------------------------------------------------------------
# combiner


class MemberLink(ABC):
    """How the combiner reaches one member (in process, another process, the network)."""

    index: int

    @abstractmethod
    def noise_share(self, sealed_task: bytes) -> bytes:
        """Forward a task; the member's sealed noise share."""

    @abstractmethod
    def decryption_share(self, sealed_request: bytes) -> bytes:
        """Forward a decryption request; the member's sealed decryption share."""


class LocalLink(MemberLink):
    """A member in this process."""

    def __init__(self, member: CommitteeMember) -> None:
        self.index = member.index
        self.member = member

    def noise_share(self, sealed_task: bytes) -> bytes:
        return self.member.noise_share(sealed_task)

    def decryption_share(self, sealed_request: bytes) -> bytes:
        return self.member.decryption_share(sealed_request)


class MemberProcess(MemberLink):
    """A member running in its own OS process (``fork``), reached over a pipe.

    Members are separate parties; here they are at least separate processes, so their
    exponentiations run in parallel on several cores (gmpy2 holds the GIL).  The member
    object is built in the parent and inherited by the child at fork; afterwards only
    bytes cross the pipe.  :meth:`close` ends the process.  Use with :func:`parallel`.
    """

    def __init__(self, member: CommitteeMember) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        self.index = member.index
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(member, child), daemon=True)
        self._proc.start()
        child.close()

    def _call(self, method: str, *args: object) -> object:
        self._conn.send((method, args))
        ok, value = self._conn.recv()
        if not ok:
            raise value if isinstance(value, Exception) else RuntimeError(str(value))
        return value

    def noise_share(self, sealed_task: bytes) -> bytes:
        out = self._call("noise_share", sealed_task)
        assert isinstance(out, bytes)
        return out

    def decryption_share(self, sealed_request: bytes) -> bytes:
        out = self._call("decryption_share", sealed_request)
        assert isinstance(out, bytes)
        return out

    def prepare(self, noise_shares: int, randomizers: int) -> int:
        """Run :meth:`CommitteeMember.prepare` in the member's process."""
        out = self._call("prepare", noise_shares, randomizers)
        assert isinstance(out, int)
        return out

    def close(self) -> None:
        if self._proc.is_alive():
            self._conn.send(None)
            self._proc.join(timeout=10)
        self._conn.close()


def _serve(member: CommitteeMember, conn: object) -> None:
    from multiprocessing.connection import Connection

    assert isinstance(conn, Connection)
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        method, args = msg
        try:
            conn.send((True, getattr(member, method)(*args)))
        except Exception as exc:  # sent back to the combiner, which names the member
            try:
                conn.send((False, exc))
            except Exception:
                conn.send((False, f"{type(exc).__name__}: {exc}"))


def parallel(
    fn: Callable[[MemberLink], bytes], links: Sequence[MemberLink]
) -> list[bytes | Exception]:
    """Ask several members at once (threads waiting on :class:`MemberProcess` pipes)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(link: MemberLink) -> bytes | Exception:
        try:
            return fn(link)
        except Exception as exc:  # a member's refusal or failure: it is excluded, named
            return exc

    if len(links) <= 1:
        return [one(link) for link in links]
    with ThreadPoolExecutor(max_workers=len(links)) as ex:
        return list(ex.map(one, links))


def prepare_processes(
    links: Sequence[MemberProcess], noise_shares: int, randomizers: int
) -> list[int]:
    """Members, offline: run :meth:`MemberProcess.prepare` in every member process at once.

    Unlike :func:`parallel` (whose failures the combiner turns into excluded members), a
    failure here is the operator's to see: it raises ``RuntimeError`` naming the member,
    since a member left without precomputation would silently do that work online.
    """
    from concurrent.futures import ThreadPoolExecutor

    if not links:
        return []
    with ThreadPoolExecutor(max_workers=len(links)) as ex:
        futures = [ex.submit(link.prepare, noise_shares, randomizers) for link in links]
    out: list[int] = []
    for link, fut in zip(links, futures, strict=True):
        exc = fut.exception()
        if exc is not None:
            raise RuntimeError(f"member {link.index} failed to prepare: {exc}") from exc
        out.append(fut.result())
    return out


def _sequential(
    fn: Callable[[MemberLink], bytes], links: Sequence[MemberLink]
) -> list[bytes | Exception]:
    out: list[bytes | Exception] = []
    for link in links:
        try:
            out.append(fn(link))
        except Exception as exc:  # a member's refusal or failure: it is excluded, named
            out.append(exc)
    return out


MapMembers = Callable[
    [Callable[[MemberLink], bytes], Sequence[MemberLink]], list[bytes | Exception]
]


def open_committee_store(path: str) -> sqlite3.Connection:
    """The combiner's store (budget ledger and signed answers): SQLite, autocommit mode so
    :class:`KeyCommittee` runs explicit ``BEGIN IMMEDIATE`` transactions."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


@dataclass(frozen=True)
class CommitteeReveal:
    """The combiner's result for one request: grade indices and the signed answer.

    ``answer`` is a sealed :class:`CommitteeGrades`; ``spent`` maps each newly released
    slot to its cost (empty when everything came from earlier releases).
    """

    grades: dict[int, int]
    answer: bytes
    stored: tuple[int, ...]
    spent: dict[int, Loss]
    members: tuple[int, ...]
    excluded: dict[int, str]


@dataclass(frozen=True)
class StatisticRelease:
    """A released DP statistic: one noisy sum per cell, and what it cost."""

    name: str
    period: int
    sums: tuple[int, ...]  # noisy sum of each cell (the release)
    stored: bool  # answered from an earlier release (nothing spent)
    cost: Loss


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

    def _combine(
        self, ct: PackedCiphertext, shares: Sequence[PackedDecryptionShare]
    ) -> CommitteeDecryption[IntArray]:
        """Verify every share (in the verification pool if there is one) and combine ``k``
        good ones; what :func:`psc.threshold.decrypt_packed` does, with the proofs checked
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

    def reveal_grades(
        self,
        request_hash: bytes,
        period: int,
        slots: Sequence[int],
        score: Mapping[int, PackedCiphertext],
        caps: Mapping[str, Mapping[int, PackedCiphertext]],
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
        refused = [s for s in new if not self.budget.can_spend(subject_key(s), cost)]
        if refused:
            raise BudgetExhausted(
                f"privacy budget exhausted for slots {refused}: a grade release costs "
                f"{cost.to_json()}; nothing was decrypted"
            )
        grades: dict[int, int] = {s: labels_of.index(g) for s, g in stored.items()}
        members: tuple[int, ...] = ()
        excluded: dict[int, str] = {}
        if new:
            noisy, counts, members, excluded = self._decrypt(request_hash, period, new, score, caps)
            grades.update(_grades(p.catalog, noisy, counts))
            del noisy  # the noisy scores are discarded here, by protocol
        answer = CommitteeGrades(
            request_hash=request_hash,
            period=period,
            grades=tuple(SlotGrade(s, labels_of[grades[s]]) for s in slots),
            mechanism=MECHANISM,
            epsilon=_frac(p.policy.epsilon),
            delta=_frac(p.delta),
            members=members,
            excluded=tuple(sorted(excluded)),
            stored=tuple(sorted(stored)),
            issued_at=self._clock(),
        )
        sealed = seal(answer, self._key)
        spent: dict[int, Loss] = {}
        with self._transaction():
            for s in new:
                self.budget.spend(
                    subject_key(s), release_id(period), cost, result=labels_of[grades[s]]
                )
                spent[s] = cost
            self._conn.execute(
                "INSERT OR REPLACE INTO committee_answers (request_hash, period, answer) "
                "VALUES (?, ?, ?)",
                (request_hash, period, sealed),
            )
        return CommitteeReveal(grades, sealed, tuple(sorted(stored)), spent, members, excluded)

    def release_sums(self, name: str, period: int, sums: PackedCiphertext) -> StatisticRelease:
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
        key, rid = f"stats:{name}", f"{name}:{period}"
        for sp in self.budget.spends(key):
            if sp.release_id == rid and sp.result is not None:
                return StatisticRelease(name, period, tuple(json.loads(sp.result)), True, p.cost)
        if not self.budget.can_spend(key, p.cost):
            raise BudgetExhausted(
                f"privacy budget of {key!r} exhausted: release {rid!r} costs "
                f"{p.cost.to_json()}; nothing was decrypted"
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
        request_hash = digest(f"psc/statistic/{name}/{period}".encode())
        noisy, _, _, _ = self._decrypt(
            request_hash, period, list(range(sums.n_values)), blocks, caps, f"statistic:{name}"
        )
        values = tuple(noisy[c] for c in range(sums.n_values))
        with self._transaction():
            self.budget.spend(key, rid, p.cost, result=json.dumps(list(values)))
        return StatisticRelease(name, period, values, False, p.cost)

    def _decrypt(
        self,
        request_hash: bytes,
        period: int,
        targets: list[int],
        score: Mapping[int, PackedCiphertext],
        caps: Mapping[str, Mapping[int, PackedCiphertext]],
        release: str = "grade",
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
            request_hash, release, period, tuple(targets), tuple(blocks), self._clock()
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
        if len(good) < p.policy.honest:
            raise InsufficientShares(
                f"{len(good)} valid noise shares, {p.policy.honest} needed; excluded: "
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


def _open_member_share(
    params: CommitteeParameters,
    link: MemberLink,
    reply: bytes | Exception,
    task_hash: bytes,
    req_hash: bytes,
    excluded: dict[int, str],
) -> PackedDecryptionShare | None:
    """Combiner: open one member's reply to a decryption request (signature, binding,
    framing); the share's proof is checked when it is combined.  A failure excludes the
    member, with the reason."""
    if isinstance(reply, Exception):
        excluded[link.index] = f"no decryption share: {reply}"
        return None
    try:
        msg = open_signed(
            reply, MemberDecryptionShare, _constant(params.member_keys[link.index - 1])
        )
        if (msg.member, msg.task_hash, msg.request_hash) != (link.index, task_hash, req_hash):
            raise InvalidMessage("decryption share answers another request")
        share = decode_packed_share(params.public, msg.share)
        if share.index != link.index:
            raise InvalidMessage("decryption share carries another member's index")
    except InvalidMessage as exc:
        excluded[link.index] = f"bad decryption share: {exc}"
        return None
    return share


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


def _share_is_valid(
    pk: ThresholdPublicKey, blocks: Sequence[int], share: PackedDecryptionShare
) -> bool:
    """Verification pool worker: does a packed share's proof verify?"""
    try:
        pk.verify_packed_share(blocks, share)
    except InvalidMessage:
        return False
    return True


def _constant(key: bytes) -> Callable[[MemberDecryptionShare], bytes]:
    return lambda m: key


def _frac(q: Fraction) -> str:
    q = Fraction(q)
    return str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"


# ----------------------------------------------------------------------------------------
# the Revealer seam


def total_noise_pmf(params: CommitteeParameters) -> tuple[np.ndarray, np.ndarray]:
    """Reporting only (floating point): support and pmf of the noise one revealed score
    carries when all ``n`` members follow the protocol, ``NB(n/h, q) - NB(n/h, q)`` with
    ``q = e^(-1/t)`` (the members' shares add up exactly; the tail cut at ``B`` per share
    moves less than ``n 2^-63`` of mass and is ignored).  Support ``|x| <= 45 t``."""
    t = float(params.mechanism.scale)
    r = params.n / params.policy.honest
    q = math.exp(-1.0 / t)
    top = math.ceil(45 * t)
    x = np.arange(top + 1, dtype=np.float64)
    log_nb = (
        np.array([math.lgamma(v + r) for v in x])
        - np.array([math.lgamma(v + 1) for v in x])
        - math.lgamma(r)
        + r * math.log1p(-q)
        + x * math.log(q)
    )
    nb = np.exp(log_nb)
    diff = np.convolve(nb, nb[::-1])  # P - Q: index i <-> value i - top
    return np.arange(-top, top + 1, dtype=np.int64), diff / diff.sum()


def expected_misgrade_rate(
    params: CommitteeParameters, raw: np.ndarray, cap: np.ndarray, oracle: np.ndarray
) -> float:
    """Reporting only: the misgrade rate the noise predicts for subjects with raw scores
    ``raw`` (base included), cap indices ``cap`` and oracle grades ``oracle``: the mean over
    subjects of ``P(min(band(raw + N), cap) != oracle)``."""
    xs, pmf = total_noise_pmf(params)
    keep = pmf > 1e-18
    xs, pmf = xs[keep], pmf[keep]
    pairs, counts = np.unique(np.stack([raw, cap, oracle]), axis=1, return_counts=True)
    total = 0.0
    for (r_, c_, o_), cnt in zip(pairs.T.tolist(), counts.tolist(), strict=True):
        g = grades_of(params.catalog, r_ + xs, np.full(xs.shape, c_, dtype=np.int64))
        total += cnt * float(pmf[g != o_].sum())
    return total / len(raw)


class CommitteeRevealer(Revealer):
    """Plugs a :class:`KeyCommittee` into the key holder (:class:`~psc.protocol.roles.KeyHolder`).

    The key holder calls :meth:`grades_for` with the request's hash and period (needed
    for the budget); :attr:`last` keeps the last :class:`CommitteeReveal` so the caller can
    report the privacy loss and excluded members.
    """

    def __init__(self, committee: KeyCommittee) -> None:
        self.committee = committee
        self.last: CommitteeReveal | None = None

    def grades(
        self,
        slots: Sequence[int],
        score: Mapping[int, PackedCiphertext],
        caps: Mapping[str, Mapping[int, PackedCiphertext]],
    ) -> dict[int, int]:
        """Refused: a DP release must be accounted to a request and a period.

        Raises ``ValueError``; the key holder calls :meth:`grades_for`.
        """
        raise ValueError(
            "the committee's DP reveal charges each release to a request and period: "
            "call grades_for(request_hash, period, slots, score, caps)"
        )

    def grades_for(
        self,
        request_hash: bytes,
        period: int,
        slots: Sequence[int],
        score: Mapping[int, PackedCiphertext],
        caps: Mapping[str, Mapping[int, PackedCiphertext]],
    ) -> dict[int, int]:
        """Key holder: grade indices of ``slots`` via :meth:`KeyCommittee.reveal_grades`."""
        self.last = self.committee.reveal_grades(request_hash, period, slots, score, caps)
        return dict(self.last.grades)
