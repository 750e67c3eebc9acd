"""The committee's DP grade reveal (psc.parties.committee), end to end at 512 bits (INSECURE).

Covers: oracle grades when the noise is forced to zero; the decrypted target is exactly
score + the members' noise shares, and the honest shares follow the target discrete
Laplace (chi-square and KS at p = 1e-6, with a power check); other slots stay masked;
fewer than k members cannot reveal; bad noise or decryption shares are caught, their
senders named, and k good members still reveal; budget exhaustion is refused before any
member is asked; a repeat in the period is answered from the store without spending;
members refuse a second release of a (slot, period) and a request without their share.
"""

from __future__ import annotations

import bisect
import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from protocols.gen_reveal_dp import (
    COMBINER_SEED,
    Committee,
    RecordingLink,
    corrupt_decryption_share,
    live_blocks,
    make_committee,
    resign_noise_share,
)
from psc.dp.accounting import ApproxDP
from psc.dp.mechanisms import DiscreteLaplace
from psc.exceptions import (
    BudgetExhausted,
    InsufficientShares,
    InvalidMessage,
    ParameterError,
    PolicyViolation,
)
from psc.oracle import grades_of
from psc.parties.committee import (
    CommitteeMember,
    LocalLink,
    MemberLink,
    RevealPolicy,
    noise_share_bound,
    reveal_layout,
    tail_delta,
)
from psc.protocol import codec
from psc.protocol.committee_messages import CommitteeGrades, DecryptionRequest, RevealTask
from psc.protocol.messages import BlockCiphertext, SignedMessage
from psc.protocol.signing import _signing_key_from_seed, seal

PERIOD = 24_316
RNG = np.random.default_rng(7)
N_SUBJECTS = 17  # three blocks of 7 slots, the last one partial
SUMS = RNG.integers(-1500, 1300, size=N_SUBJECTS).astype(np.int64)
CAPS = {"C": (RNG.random(N_SUBJECTS) < 0.2).astype(np.int64)}


def oracle(c: Committee, slots: list[int]) -> dict[int, int]:
    cat = c.catalog
    top = len(cat.labels) - 1
    cap = np.where(CAPS["C"] > 0, cat.grade_index("C"), top)
    g = grades_of(cat, cat.scheme.base_score + SUMS, cap)
    return {s: int(g[s]) for s in slots}


def blocks(c: Committee):  # type: ignore[no-untyped-def]
    return live_blocks(c, SUMS, CAPS)


class Spy(MemberLink):
    def __init__(self, inner: MemberLink) -> None:
        self.index = inner.index
        self.inner = inner
        self.calls: list[str] = []

    def noise_share(self, sealed_task: bytes) -> bytes:
        self.calls.append("noise")
        return self.inner.noise_share(sealed_task)

    def decryption_share(self, sealed_request: bytes) -> bytes:
        self.calls.append("decrypt")
        return self.inner.decryption_share(sealed_request)

    def known_answer_share(self) -> bytes:
        return self.inner.known_answer_share()


def spies(members: list[CommitteeMember]) -> list[MemberLink]:
    return [Spy(LocalLink(m)) for m in members]


def test_zero_noise_gives_the_oracle_grade_single_and_batch() -> None:
    c = make_committee(draw=lambda: 0)
    score, caps = blocks(c)
    single = c.reveal(PERIOD, [9], score, caps)
    assert single.grades == oracle(c, [9])
    everyone = list(range(N_SUBJECTS))
    batch = c.reveal(PERIOD, everyone, score, caps)
    assert batch.grades == oracle(c, everyone)
    assert batch.stored == (9,) and len(batch.spent) == N_SUBJECTS - 1


def test_decrypted_target_is_score_plus_every_members_noise_share() -> None:
    draws: list[int] = []
    source = itertools.count(-7, 5)

    def draw() -> int:
        draws.append(next(source))
        return draws[-1]

    c = make_committee(draw=draw)
    score, caps = blocks(c)
    c.reveal(PERIOD, [8], score, caps)
    seen = {(label, j): v for label, j, v in c.seen}
    S = c.params.layout.slots
    # per member, one share per unit in unit order: the cap counter "C", then the score
    assert len(draws) == 2 * c.params.n
    assert seen[("score", 8 // S)][8 % S] == SUMS[8] + sum(draws[1::2])
    assert seen[("C", 8 // S)][8 % S] == CAPS["C"][8] + sum(draws[0::2])  # caps are noised


def _dlap_cdf(scale: Fraction):  # type: ignore[no-untyped-def]
    q = math.exp(-float(scale.denominator) / float(scale.numerator))

    def cdf(x: int) -> float:  # P(X <= x) for the two-sided geometric
        return 1 - q ** (x + 1) / (1 + q) if x >= 0 else q ** (-x) / (1 + q)

    return cdf


def _p_values(samples: list[int], scale: Fraction) -> tuple[float, float]:
    cdf = _dlap_cdf(scale)
    ordered = sorted(samples)
    n = len(ordered)
    lo, hi = ordered[0], ordered[-1]
    d = max(
        max(abs(bisect.bisect_right(ordered, x) / n - cdf(x)) for x in range(lo, hi + 1)),
        cdf(lo - 1),
    )
    ks = float(stats.kstwo.sf(d, n))
    edges, expected, acc, prev = [], [], 0.0, cdf(lo - 1)
    for x in range(lo, hi + 1):  # bins of expected count >= 5
        acc = cdf(x) - prev
        if acc * n >= 5:
            edges.append(x)
            expected.append(acc)
            prev = cdf(x)
    expected[0] += cdf(lo - 1)
    expected[-1] += 1 - cdf(edges[-1])
    observed = [0] * len(edges)
    for x in ordered:
        observed[min(bisect.bisect_left(edges, x), len(edges) - 1)] += 1
    total = sum(expected)
    chi = float(stats.chisquare(observed, [e * n / total for e in expected]).pvalue)
    return chi, ks


def test_honest_members_noise_sums_to_the_target_discrete_laplace() -> None:
    # epsilon 2, sensitivity 50: target scale 25; any h = 3 honest shares sum to it exactly
    c = make_committee(epsilon=Fraction(2), min_epsilon=Fraction(1, 4))
    target = c.params.mechanism
    assert isinstance(target, DiscreteLaplace) and target.scale == 25
    honest = c.members[:3]
    samples = [sum(m.draw_noise() for m in honest) for _ in range(3000)]
    chi, ks = _p_values(samples, target.scale)
    assert chi > 1e-6 and ks > 1e-6
    # power: the same samples reject a scale 30% off
    chi_off, ks_off = _p_values(samples, target.scale * Fraction(13, 10))
    assert chi_off < 1e-6 or ks_off < 1e-6


def test_noise_share_bound_and_delta() -> None:
    t = Fraction(50)
    b = noise_share_bound(t)
    q = math.exp(-1 / 50)
    assert 2 * q ** (b + 1) <= 2.0**-63
    assert tail_delta(Fraction(1), 5) == Fraction((1 + 4) * 5, 2**63)


def test_other_slots_of_a_block_stay_masked() -> None:
    c = make_committee()
    score, caps = blocks(c)
    c.reveal(PERIOD, [2], score, caps)
    S, m, n = c.params.layout.slots, c.params.mask_range, c.params.n
    seen = {(label, j): v for label, j, v in c.seen}
    assert set(seen) == {("score", 0), ("C", 0)}  # only the target's block is decrypted
    for label, truth in (("score", SUMS[:S]), ("C", CAPS["C"][:S])):
        shown = seen[(label, 0)]
        for s in range(S):
            if s == 2:
                continue
            assert shown[s] != truth[s]
            assert 0 <= shown[s] - truth[s] < n * m  # data + the members' masks, no carry
            assert shown[s] - truth[s] > 2**40  # masks are large: the sum is hidden


def test_fewer_than_k_members_cannot_reveal_and_the_charge_is_kept_for_a_free_retry() -> None:
    """Fewer than k decryption shares decrypt nothing; the release was charged before any
    decryption share was asked for (some may have been given), so the charge stays, marked
    pending, and a retry of the same period is not charged again."""

    class Refuse(MemberLink):
        def __init__(self, inner: MemberLink) -> None:
            self.index = inner.index
            self.inner = inner

        def noise_share(self, sealed_task: bytes) -> bytes:
            return self.inner.noise_share(sealed_task)

        def decryption_share(self, sealed_request: bytes) -> bytes:
            raise PolicyViolation("this member is offline")

        def known_answer_share(self) -> bytes:
            return self.inner.known_answer_share()

    def links(ms: list[CommitteeMember]) -> list[MemberLink]:
        return [LocalLink(m) if m.index <= 2 else Refuse(LocalLink(m)) for m in ms]

    c = make_committee(links=links)  # 3 of 5 needed; only members 1 and 2 decrypt
    score, caps = blocks(c)
    with pytest.raises(InsufficientShares) as err:
        c.reveal(PERIOD, [4], score, caps)
    assert set(err.value.bad) == {3, 4, 5}
    spends = c.combiner.budget.spends("subject:4")
    assert c.seen == [] and len(spends) == 1 and spends[0].result is None
    with pytest.raises(InsufficientShares):
        c.reveal(PERIOD, [4], score, caps)
    assert len(c.combiner.budget.spends("subject:4")) == 1


def test_fewer_than_a_quorum_of_noise_shares_refuse_before_decryption() -> None:
    class NoNoise(Spy):
        def noise_share(self, sealed_task: bytes) -> bytes:
            raise InvalidMessage("this member sends no noise share")

    def links(ms: list[CommitteeMember]) -> list[MemberLink]:
        return [LocalLink(m) if m.index <= 4 else NoNoise(LocalLink(m)) for m in ms]

    c = make_committee(links=links)
    score, caps = blocks(c)
    with pytest.raises(InsufficientShares, match="noise shares"):
        c.reveal(PERIOD, [4], score, caps)
    assert c.seen == []


def test_bad_noise_share_signature_is_named_and_k_good_members_reveal() -> None:
    def links(ms: list[CommitteeMember]) -> list[MemberLink]:
        return [
            RecordingLink(m.index, LocalLink(m), tamper_noise=resign_noise_share)
            if m.index == 3
            else LocalLink(m)
            for m in ms
        ]

    c = make_committee(links=links, draw=lambda: 0, quorum=4)  # 4 of 5 noise shares suffice
    score, caps = blocks(c)
    r = c.reveal(PERIOD, [5], score, caps)
    assert list(r.excluded) == [3] and "noise share" in r.excluded[3]
    assert r.members == (1, 2, 4) and r.grades == oracle(c, [5])


def test_bad_decryption_share_is_named_and_k_good_members_reveal() -> None:
    def links(ms: list[CommitteeMember]) -> list[MemberLink]:
        return [
            RecordingLink(
                m.index, LocalLink(m), tamper_decryption=lambda b: corrupt_decryption_share(b, 2)
            )
            if m.index == 2
            else LocalLink(m)
            for m in ms
        ]

    c = make_committee(links=links, draw=lambda: 0)
    score, caps = blocks(c)
    r = c.reveal(PERIOD, [12], score, caps)
    assert list(r.excluded) == [2] and "proof" in r.excluded[2]
    assert r.members == (1, 3, 4) and r.grades == oracle(c, [12])


def test_budget_exhaustion_is_refused_before_any_member_is_asked() -> None:
    c = make_committee(budget=ApproxDP(Fraction(5, 2), Fraction(1, 10**9)), links=spies)
    score, caps = blocks(c)
    c.reveal(PERIOD, [6], score, caps)  # spends 2 of 5/2
    calls = [list(link.calls) for link in c.links if isinstance(link, Spy)]
    seen = len(c.seen)
    with pytest.raises(BudgetExhausted, match="nothing was decrypted"):
        c.reveal(PERIOD + 1, [6], score, caps)
    assert [link.calls for link in c.links if isinstance(link, Spy)] == calls
    assert len(c.seen) == seen
    assert len(c.combiner.budget.spends("subject:6")) == 1


def test_repeat_in_the_period_returns_the_stored_grade_and_spends_nothing() -> None:
    c = make_committee(links=spies)
    score, caps = blocks(c)
    first = c.reveal(PERIOD, [7], score, caps)
    calls = sum(len(link.calls) for link in c.links if isinstance(link, Spy))
    again = c.reveal(PERIOD, [7], score, caps)
    assert again.grades == first.grades and again.stored == (7,) and again.spent == {}
    assert sum(len(link.calls) for link in c.links if isinstance(link, Spy)) == calls
    assert len(c.combiner.budget.spends("subject:7")) == 1
    msg = codec.decode(codec.decode(again.answer, SignedMessage).body, CommitteeGrades)
    # the loss stated is the whole release: score (1) and cap counters (1)
    assert msg.stored == (7,) and msg.epsilon == "2" and msg.mechanism.startswith("distributed")
    # the next period is a new release
    c.reveal(PERIOD + 1, [7], score, caps)
    assert len(c.combiner.budget.spends("subject:7")) == 2


def _task(c: Committee, targets: tuple[int, ...], request: bytes = b"") -> bytes:
    score, caps = blocks(c)
    request_hash, auth = c.authorize(targets, PERIOD)
    S = c.params.layout.slots
    js = sorted({t // S for t in targets})
    bl = tuple(
        BlockCiphertext(lab, j, c.backend.serialize(score[j] if lab == "score" else caps[lab][j]))
        for lab in c.params.labels
        for j in js
    )
    return seal(
        RevealTask(request_hash, "grade", PERIOD, targets, bl, 1, auth),
        _signing_key_from_seed(COMBINER_SEED),
    )


def test_members_refuse_a_second_release_of_a_slot_in_a_period() -> None:
    c = make_committee()
    ckey = _signing_key_from_seed(COMBINER_SEED)
    for attempt, request in enumerate((b"\x01" * 32, b"\x02" * 32)):
        task = _task(c, (3,), request)
        shares = tuple(m.noise_share(task) for m in c.members)
        req = seal(DecryptionRequest(task, shares), ckey)
        if attempt == 0:
            c.members[0].decryption_share(req)
            assert c.members[0].decryption_share(req)  # the same request: same answer
        else:
            with pytest.raises(PolicyViolation, match="already released"):
                c.members[0].decryption_share(req)


def test_members_refuse_requests_without_their_share_or_too_few_shares() -> None:
    c = make_committee()
    ckey = _signing_key_from_seed(COMBINER_SEED)
    task = _task(c, (3,), b"\x05" * 32)
    shares = [m.noise_share(task) for m in c.members]
    without = seal(DecryptionRequest(task, tuple(shares[1:4])), ckey)
    with pytest.raises(InvalidMessage, match="this member's noise share"):
        c.members[0].decryption_share(without)
    few = seal(DecryptionRequest(task, tuple(shares[:2])), ckey)
    with pytest.raises(InvalidMessage, match="needed"):
        c.members[0].decryption_share(few)
    forged = seal(DecryptionRequest(task, tuple(shares[:3])), _signing_key_from_seed(b"\x01" * 32))
    with pytest.raises(InvalidMessage):
        c.members[0].decryption_share(forged)


def test_layout_sizes_noise_and_masks_and_refuses_what_cannot_fit(city) -> None:  # type: ignore[no-untyped-def]
    pol = RevealPolicy(Fraction(1), Fraction(1, 4), honest=3)
    lay = reveal_layout(city, 2048, multiplicity=1, members=5, policy=pol)
    assert lay.slot_bits <= 62 and lay.slots * lay.slot_bits <= 2048 - 65
    with pytest.raises(ParameterError):
        reveal_layout(
            city, 2048, multiplicity=1, members=5, policy=RevealPolicy(1, Fraction(1, 10**15), 3)
        )
    with pytest.raises(ParameterError):
        RevealPolicy(Fraction(1, 8), Fraction(1, 4), honest=3)


def test_published_committee_layout_is_accepted_and_narrower_refused(city) -> None:  # type: ignore[no-untyped-def]
    from psc.hazmat.packing import SlotLayout
    from psc.parties.committee import CommitteeRevealer
    from psc.parties.registry import Registry
    from psc.protocol.parameters import ProtocolParameters
    from psc.protocol.signing import public_bytes

    c = make_committee(catalog=city)
    reg = Registry(city, _signing_key_from_seed(b"\x09" * 32))
    reg.enroll([f"r{i}" for i in range(10)])
    keys = dict(aggregator_key=b"\x01" * 32, key_holder_key=b"\x02" * 32)
    pk = c.public.public
    params, sealed = reg.publish(
        pk, multiplicity=1, allow_insecure_key=True, layout=c.params.layout, **keys
    )
    opened = ProtocolParameters.from_sealed(
        sealed, city, public_bytes(_signing_key_from_seed(b"\x09" * 32)), allow_insecure_key=True
    )
    assert opened.layout == c.params.layout == params.layout
    with pytest.raises(ParameterError):
        reg.publish(
            pk, multiplicity=1, allow_insecure_key=True, layout=SlotLayout.for_key(512, 8), **keys
        )
    with pytest.raises(ValueError, match="grades_for"):
        CommitteeRevealer(c.combiner).grades([0], {}, {})
