"""Public parameters of the committee's DP reveal: policy, layout, keys, accounting ids.

Spec: ``protocols/reveal-dp.md``.  Every member and the combiner hold the same
:class:`CommitteeParameters`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from psc.catalog import Catalog
from psc.dp.accounting import ApproxDP
from psc.dp.calibration import scale_for_epsilon, sensitivity
from psc.dp.distributed import ShareParameters, share_parameters
from psc.dp.mechanisms import DiscreteLaplace
from psc.exceptions import (
    ParameterError,
)
from psc.hazmat.backends.paillier import PackedPaillier, RandomnessPool
from psc.hazmat.packing import MAX_SLOT_BITS, SlotLayout
from psc.hazmat.threshold.keys import ThresholdPublicKey, is_known_test_modulus
from psc.protocol.parameters import protocol_layout

#: The label of the score sum (equals :data:`psc.protocol.parameters.SCORE_LABEL`).
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
        epsilon: per subject and period, for the score (one grade release).
        min_epsilon: the smallest epsilon the deployment may ever use; it sizes the
            slot headroom for noise (smaller epsilon = more noise = wider slots).
        honest: h, members assumed honest; at most ``n - h`` are corrupt, and setup
            refuses ``n - h >= k`` (such a coalition could decrypt without noise).
        mask_bits: kappa, statistical hiding of masked slots (distance ``2^-kappa``).
        quorum: q, how many members' noise shares every decryption needs (default:
            all ``n``).  At most ``n - h`` of any ``q`` shares are corrupt, so each share
            is calibrated for ``q - (n - h)`` honest ones: whichever ``q`` shares the
            combiner assembles, the loss is at most what is charged.
        cap_epsilon: per subject and period, for the grade-cap counters (default:
            ``epsilon``).  Every cap counter is noised too (sensitivity 1: one event adds
            1 to one counter); the charge is ``epsilon + cap_epsilon``.
    """

    epsilon: Fraction
    min_epsilon: Fraction
    honest: int
    mask_bits: int = 40
    quorum: int | None = None
    cap_epsilon: Fraction | None = None

    def __post_init__(self) -> None:
        eps, lo = Fraction(self.epsilon), Fraction(self.min_epsilon)
        if not 0 < lo <= eps:
            raise ParameterError(f"need 0 < min_epsilon <= epsilon, got {lo} and {eps}")
        if self.honest < 1:
            raise ParameterError(f"honest must be >= 1, got {self.honest}")
        if not 16 <= self.mask_bits <= 48:
            raise ParameterError(f"mask_bits must be in 16..48, got {self.mask_bits}")
        cap = eps if self.cap_epsilon is None else Fraction(self.cap_epsilon)
        if not lo <= cap:
            raise ParameterError(f"need min_epsilon <= cap_epsilon, got {lo} and {cap}")
        if self.quorum is not None and self.quorum < 1:
            raise ParameterError(f"quorum must be >= 1, got {self.quorum}")
        object.__setattr__(self, "epsilon", eps)
        object.__setattr__(self, "min_epsilon", lo)
        object.__setattr__(self, "cap_epsilon", cap)


#: Sensitivity of a cap counter: one event adds 1 to the counter of its rule's cap label.
CAP_SENSITIVITY = 1


def _data_bound(catalog: Catalog, key_bits: int, multiplicity: int) -> int:
    return protocol_layout(catalog, key_bits, multiplicity=multiplicity).max_value


def _mask_range(data_bound: int, mask_bits: int) -> int:
    return 1 << (mask_bits + 1 + data_bound.bit_length())


def reveal_layout(
    catalog: Catalog, key_bits: int, *, multiplicity: int, members: int, policy: RevealPolicy
) -> SlotLayout:
    """Slot layout with room for the committee's noise and masks (``protocols/reveal-dp.md``).

    ``V`` = the widest lawful live value (:func:`~psc.protocol.parameters.protocol_layout`),
    ``B`` = :func:`noise_share_bound` at ``min_epsilon``, ``m`` = the mask range; slots are
    ``w = bitlen(V + n max(B, m - 1)) + 1`` bits.  Raises :class:`ParameterError` beyond
    :data:`~psc.hazmat.packing.MAX_SLOT_BITS` (lower ``mask_bits`` or raise ``min_epsilon``).
    """
    v = _data_bound(catalog, key_bits, multiplicity)
    b = max(
        noise_share_bound(scale_for_epsilon(policy.min_epsilon, sensitivity(catalog))),
        noise_share_bound(scale_for_epsilon(policy.min_epsilon, CAP_SENSITIVITY)),
    )
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
    #: the DP statistics the committee releases (one per period each), by name
    statistics: tuple[str, ...] = ("district-mean",)
    mechanism: DiscreteLaplace = field(init=False, repr=False)
    shares: ShareParameters = field(init=False, repr=False)
    share_bound: int = field(init=False)
    cap_mechanism: DiscreteLaplace = field(init=False, repr=False)
    cap_shares: ShareParameters = field(init=False, repr=False)
    cap_share_bound: int = field(init=False)
    data_bound: int = field(init=False)
    mask_range: int = field(init=False)

    def __post_init__(self) -> None:
        n, k, h = self.public.parties, self.public.k, self.policy.honest
        if len(self.member_keys) != n:
            raise ParameterError(f"{n} members need {n} signing keys, got {len(self.member_keys)}")
        if not 1 <= h <= n:
            raise ParameterError(f"honest must be in 1..n = 1..{n}, got {h}")
        if n - h >= k:
            raise ParameterError(
                f"{n - h} corrupt members are tolerated (n - honest) but {k} key shares "
                "decrypt: such a coalition could decrypt un-noised data on its own; use "
                f"honest >= {n - k + 1} or a larger threshold k"
            )
        if not n - h < self.quorum <= n:
            raise ParameterError(
                f"quorum must be in {n - h + 1}..{n} (more than the {n - h} tolerated corrupt "
                f"members), got {self.quorum}"
            )
        if is_known_test_modulus(self.public.public.n) and not self.allow_insecure_key:
            raise ParameterError(
                "this committee key was dealt from psc's shipped test primes, whose "
                "factorization is public; deal a fresh key (allow_insecure_key=True is for "
                "tests only)"
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
        honest_shares = self.calibrated_honest
        mech = DiscreteLaplace(scale_for_epsilon(self.policy.epsilon, sensitivity(self.catalog)))
        object.__setattr__(self, "mechanism", mech)
        object.__setattr__(self, "shares", share_parameters(mech, n, honest=honest_shares))
        object.__setattr__(self, "share_bound", noise_share_bound(mech.scale))
        assert self.policy.cap_epsilon is not None
        cap = DiscreteLaplace(scale_for_epsilon(self.policy.cap_epsilon, CAP_SENSITIVITY))
        object.__setattr__(self, "cap_mechanism", cap)
        object.__setattr__(self, "cap_shares", share_parameters(cap, n, honest=honest_shares))
        object.__setattr__(self, "cap_share_bound", noise_share_bound(cap.scale))
        v = _data_bound(self.catalog, self.public.public.bits, self.multiplicity)
        object.__setattr__(self, "data_bound", v)
        object.__setattr__(self, "mask_range", _mask_range(v, self.policy.mask_bits))

    @property
    def quorum(self) -> int:
        """How many members' noise shares every decryption needs (``q``)."""
        return self.policy.quorum if self.policy.quorum is not None else self.public.parties

    @property
    def calibrated_honest(self) -> int:
        """``q - (n - h)``: honest shares guaranteed in any accepted set; each share is
        drawn so that this many honest ones alone realise the target noise."""
        return self.quorum - (self.public.parties - self.policy.honest)

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
    def has_caps(self) -> bool:
        return bool(self.catalog.cap_labels())

    @property
    def delta(self) -> Fraction:
        d = tail_delta(self.policy.epsilon, self.n)
        if self.has_caps:
            assert self.policy.cap_epsilon is not None
            d += tail_delta(self.policy.cap_epsilon, self.n)
        return d

    @property
    def epsilon(self) -> Fraction:
        """Per subject and period: the score's epsilon plus, when the catalog has grade
        caps, the cap counters' (basic composition: one event may move both)."""
        if not self.has_caps:
            return self.policy.epsilon
        assert self.policy.cap_epsilon is not None
        return self.policy.epsilon + self.policy.cap_epsilon

    @property
    def cost(self) -> ApproxDP:
        """What one subject's grade release for one period costs, caps included."""
        return ApproxDP(self.epsilon, self.delta)

    @property
    def statistic_cost(self) -> ApproxDP:
        """What one statistic release costs (score noise only; no cap counters)."""
        return ApproxDP(self.policy.epsilon, tail_delta(self.policy.epsilon, self.n))

    @property
    def merge_shift(self) -> int | None:
        """``g``: a block whose every slot is revealed is decrypted as one ciphertext
        ``c_score * prod_l c_cap_l^(2^(g l))`` (cap label ``l = 1, 2...`` in label order):
        ``|score + noise| < 2^(g-1)`` and every count ``< 2^(g-1)``, so each slot decodes
        back into its score and counts.  ``None`` if that does not fit a slot."""
        digit = self.data_bound + self.n * max(self.share_bound, self.cap_share_bound)
        g = digit.bit_length() + 2  # signed digits (noise), one bit of rounding margin
        caps = len(self.catalog.cap_labels())
        total = self.data_bound + self.n * self.share_bound
        total += sum(digit << (g * i) for i in range(1, caps + 1))
        return g if total <= self.layout.max_value else None

    def unit_share_bound(self, *, masked: bool, merged: bool) -> int:
        """The public bound of a member's share vector for one decrypted unit: a merged
        unit carries score noise plus ``2^(g l)`` times each cap counter's noise."""
        if merged:
            g = self.merge_shift
            assert g is not None
            caps = len(self.catalog.cap_labels())
            return self.share_bound + sum(
                self.cap_share_bound << (g * i) for i in range(1, caps + 1)
            )
        return self.max_share_bound(masked)

    def max_share_bound(self, masked: bool) -> int:
        """Largest public bound a member's share vector may declare."""
        noise = max(self.share_bound, self.cap_share_bound)
        return max(noise, self.mask_range - 1) if masked else noise

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
