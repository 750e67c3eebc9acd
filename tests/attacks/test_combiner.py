"""Adversary: the combiner (holds no key share), alone or with the tolerated corrupt members.

Attack 3 of issue 9: members only checked that at least ``h`` noise shares are present
and theirs is among them, so a combiner working with the ``n - h`` corrupt members could
pick a set holding a single honest share (noise s.d. 29 instead of 71 at 3-of-5).
Required: whatever valid set the combiner assembles, the privacy loss is at most what
is charged.  Attack 5: cap counters were decrypted exactly for the combiner while every
record said "epsilon 1".  Required: caps are noised and charged, and every record states
the full loss.  Attack 8 (budget): the budget must be spent, durably, before anything is
decrypted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from fractions import Fraction

import gmpy2
import numpy as np
import pytest

from protocols.gen_reveal_dp import (
    CAPS,
    COMBINER_SEED,
    PERIOD,
    SUMS,
    TARGET,
    live_blocks,
    make_committee,
)
from psc.dp.calibration import sensitivity
from psc.exceptions import InsufficientShares, InvalidMessage, ParameterError, PolicyViolation
from psc.parties.committee import CommitteeMember, LocalLink, MemberLink, subject_key
from psc.parties.committee.member_store import MemberStore
from psc.protocol import codec
from psc.protocol.committee_messages import DecryptionRequest, RevealTask, StatisticRequest
from psc.protocol.messages import BlockCiphertext, GradeRequest, RevealRequest, SignedMessage
from psc.protocol.signing import _signing_key_from_seed, digest, seal
from tests.attacks._deployment import world

REQUEST = b"\x31" * 32


def _blocks(c):
    sums = np.array(SUMS, dtype=np.int64)
    caps = {k: np.array(v, dtype=np.int64) for k, v in CAPS.items()}
    return live_blocks(c, sums, caps)


class Recorder(MemberLink):
    def __init__(self, inner: LocalLink) -> None:
        self.index = inner.index
        self.inner = inner
        self.task: bytes | None = None
        self.share: bytes | None = None

    def noise_share(self, sealed_task: bytes) -> bytes:
        self.task = sealed_task
        self.share = self.inner.noise_share(sealed_task)
        return self.share

    def decryption_share(self, sealed_request: bytes) -> bytes:
        return self.inner.decryption_share(sealed_request)

    def known_answer_share(self) -> bytes:
        return self.inner.known_answer_share()


def _accepts_a_set_of(r: int) -> bool:
    """Does honest member 1 give a decryption share for a combiner-signed request that
    carries only the first ``r`` members' noise shares (its own included)?"""
    recs: list[Recorder] = []
    verdict: list[bool] = []
    ckey = _signing_key_from_seed(COMBINER_SEED)

    class Probe(Recorder):
        def decryption_share(self, sealed_request: bytes) -> bytes:
            if not verdict:
                chosen = tuple(rec.share for rec in recs[:r] if rec.share is not None)
                assert recs[0].task is not None
                subset = seal(DecryptionRequest(recs[0].task, chosen), ckey)
                try:
                    self.inner.decryption_share(subset)
                    verdict.append(True)
                except Exception:
                    verdict.append(False)
            return self.inner.decryption_share(sealed_request)

    def links(members):
        recs.append(Probe(LocalLink(members[0])))
        recs.extend(Recorder(LocalLink(m)) for m in members[1:])
        return list(recs)

    c = make_committee(links=links)
    score, caps = _blocks(c)
    # member 1 may refuse the combiner's own request once it answered the probe
    with contextlib.suppress(InsufficientShares):
        c.reveal(PERIOD, [TARGET], score, caps)
    return verdict == [True]


def test_the_loss_of_every_set_an_honest_member_accepts_is_at_most_the_charge() -> None:
    """For the smallest set of r noise shares an honest member accepts, at most
    r - (n - h) of them are honest (the others may come from the n - h tolerated corrupt
    members).  The loss of that worst set must not exceed what is charged."""
    p = make_committee().params
    accepted = [r for r in range(1, p.n + 1) if _accepts_a_set_of(r)]
    assert accepted, "the honest member must accept the full set"
    worst_honest = min(accepted) - (p.n - p.policy.honest)
    assert worst_honest >= 1
    loss = p.shares.guaranteed_loss(worst_honest, sensitivity(p.catalog))
    charged = p.cost
    assert loss.epsilon <= charged.epsilon, (
        f"a set of {min(accepted)} shares is accepted; with {p.n - p.policy.honest} corrupt "
        f"members it may hold {worst_honest} honest share(s): loss {float(loss.epsilon):.2f} "
        f"> charged {float(charged.epsilon):.2f}"
    )


def test_cap_counters_are_noised_before_the_combiner_sees_them() -> None:
    """Every member's noise share forced to 7: the combiner's view of a target's cap
    counter must carry the noise (count + 7 n), not the exact count."""
    c = make_committee(draw=lambda: 7)
    score, caps = _blocks(c)
    slots = list(range(len(SUMS)))
    c.reveal(PERIOD, slots, score, caps)
    S = c.params.layout.slots
    views = {(label, j): v for label, j, v in c.seen}
    g = c.params.merge_shift
    for s in slots:
        j, off = divmod(s, S)
        if ("C", j) in views:
            seen_cap = int(views[("C", j)][off])
        else:  # merged unit: score + noise + 2^g * (count + noise)
            assert g is not None
            v = int(views[("score", j)][off])
            seen_cap = (v + (1 << (g - 1))) >> g
        assert seen_cap != CAPS["C"][s], f"slot {s}: the combiner saw the exact cap count"


def test_every_record_states_the_cap_release_in_the_loss() -> None:
    c = make_committee()
    score, caps = _blocks(c)
    res = c.reveal(PERIOD, [TARGET], score, caps)
    charged = res.spent[TARGET]
    assert charged.epsilon > c.params.policy.epsilon, (
        "the charge must include the cap counters' release, not the score's epsilon alone"
    )
    spends = c.combiner.budget.spends(subject_key(TARGET))
    assert spends[-1].cost == charged


def test_the_budget_is_spent_durably_before_any_decryption_share_is_asked() -> None:
    seen_budget: list[Fraction] = []
    holder: dict[str, object] = {}

    class Checking(MemberLink):
        def __init__(self, inner: LocalLink) -> None:
            self.index = inner.index
            self.inner = inner

        def noise_share(self, sealed_task: bytes) -> bytes:
            return self.inner.noise_share(sealed_task)

        def decryption_share(self, sealed_request: bytes) -> bytes:
            conn = holder["store"]
            row = conn.execute(
                "SELECT COUNT(*) FROM dp_spends WHERE key = ?", (subject_key(TARGET),)
            ).fetchone()
            seen_budget.append(Fraction(row[0]))
            return self.inner.decryption_share(sealed_request)

        def known_answer_share(self) -> bytes:
            return self.inner.known_answer_share()

    store = sqlite3.connect(":memory:", isolation_level=None)
    holder["store"] = store
    c = make_committee(links=lambda ms: [Checking(LocalLink(m)) for m in ms], store=store)
    score, caps = _blocks(c)
    c.reveal(PERIOD, [TARGET], score, caps)
    assert seen_budget and all(x >= 1 for x in seen_budget), (
        "a member was asked for a decryption share before the subject's spend was committed"
    )


@pytest.mark.parametrize("n,k,honest", [(5, 2, 2), (6, 3, 3), (4, 2, 2)])
def test_setup_refuses_a_tolerated_coalition_that_could_decrypt_alone(
    n: int, k: int, honest: int
) -> None:
    """Attack 4: n - h >= k corrupt members are tolerated by the DP claim yet hold k key
    shares: they could decrypt un-noised data on their own."""

    with pytest.raises(ParameterError, match="corrupt"):
        make_committee(n=n, k=k, honest=honest)


# -- attack 2: the task is no longer the combiner's word -------------------------------------


def _task_from(w, sealed_rr: bytes, **change):
    """The combiner's honest task for an aggregator-signed reveal request, with fields
    replaced as a dishonest combiner would (it holds the combiner key)."""

    rr = codec.decode(codec.decode(sealed_rr, SignedMessage).body, RevealRequest)
    req = codec.decode(codec.decode(rr.request, SignedMessage).body, GradeRequest)
    p = w.committee.committee.params
    backend = p.backend()
    S = p.layout.slots
    live = w.d.aggregator.live_sums(req.period)
    by_label = {"score": live[0], **live[1]}
    blocks = []
    for label in p.labels:
        for j in sorted({s // S for s in req.slots}):
            ct = by_label[label]
            one = dataclasses.replace(
                ct, n_values=min(S, ct.n_values - j * S), blocks=(ct.blocks[j],)
            )
            blocks.append(BlockCiphertext(label, j, backend.serialize(one)))
    task = RevealTask(
        digest(rr.request), "grade", req.period, tuple(req.slots), tuple(blocks), 1, sealed_rr
    )
    return seal(dataclasses.replace(task, **change), w.committee.committee._key)


def _member(w, i: int = 1):
    return w.committee.links[i - 1].member


def test_members_refuse_scaled_blocks_under_an_authentic_request(city) -> None:
    """Attack 2: the combiner keeps the aggregator's signed request but sends ``c^K``."""

    w = world(city)
    rr = w.d.aggregator.prepare_reveal(w.d.registry.grade_request([5], w.period))
    honest = codec.decode(codec.decode(_task_from(w, rr), SignedMessage).body, RevealTask)
    backend = w.committee.committee.params.backend()
    nsq = w.d.params.public_key.nsquare
    scaled = []
    for b in honest.blocks:
        ct = backend.deserialize(b.ciphertext)
        evil = dataclasses.replace(ct, blocks=(gmpy2.powmod(ct.blocks[0], 2**16, nsq),))
        scaled.append(BlockCiphertext(b.label, b.block, backend.serialize(evil)))
    task = _task_from(w, rr, blocks=tuple(scaled))
    for i in range(1, 6):
        with pytest.raises(InvalidMessage, match="not the live sum"):
            _member(w, i).noise_share(task)


@pytest.mark.parametrize(
    "change,match",
    [
        ({"period": "+1"}, "period"),
        ({"release": "statistic:a"}, "statistic"),
        ({"targets": (5, 6)}, "did not ask"),
        ({"request_hash": b"\x01" * 32}, "another request"),
    ],
)
def test_members_derive_period_release_and_targets_from_the_signed_request(
    city, change, match
) -> None:
    """Attack 2: a combiner that changes the period, invents a release label, adds
    targets or names another request gets nothing from any member."""

    w = world(city)
    rr = w.d.aggregator.prepare_reveal(w.d.registry.grade_request([5], w.period))
    if change.get("period") == "+1":
        change = {"period": w.period + 1}
    task = _task_from(w, rr, **change)
    with pytest.raises((InvalidMessage, PolicyViolation), match=match):
        _member(w).noise_share(task)


def test_an_invented_statistic_is_refused_even_with_the_aggregators_signature(city) -> None:
    """Attack 2: ``statistic:a``, ``statistic:b``... would decrypt the same slot again and
    again; members release only the statistics the committee publishes, once a period."""

    w = world(city)
    rr = w.d.aggregator.prepare_reveal(w.d.registry.grade_request([5], w.period))

    honest = codec.decode(codec.decode(_task_from(w, rr), SignedMessage).body, RevealTask)
    sr = seal(StatisticRequest("a", w.period, 1, 1), w.d.aggregator._key)  # aggregator colludes
    task = RevealTask(digest(sr), "statistic:a", w.period, (0,), honest.blocks, 1, sr)
    with pytest.raises(PolicyViolation, match="not one the committee publishes"):
        _member(w).noise_share(seal(task, w.committee.committee._key))


def test_a_restarted_member_still_refuses_a_second_release(city, tmp_path) -> None:
    """A member's record of what it helped release is durable: after a restart (a new
    member object on the same store file) it refuses a second request for the slot."""

    w = world(city, committee_dir=tmp_path)
    res = w.committee.revealer
    reveal_once = w.d.registry.grade_request([5], w.period)
    answer = w.d.key_holder.answer(w.d.aggregator.prepare_reveal(reveal_once))
    assert res is not None and res.last is not None and not res.last.excluded
    old = _member(w)
    store_path = tmp_path / f"member-{old.index}.sqlite"
    assert store_path.exists()
    restarted = CommitteeMember(
        old.params, old._share, old._key, log_view=old._log, store=MemberStore(store_path)
    )
    again = w.d.aggregator.prepare_reveal(w.d.registry.grade_request([5], w.period))
    task = _task_from(w, again)
    restarted.noise_share(task)  # a noise share is harmless; the decryption is refused
    shares = tuple(m.member.noise_share(task) for m in w.committee.links[1:])

    own = restarted.noise_share(task)
    req = seal(DecryptionRequest(task, (own, *shares)), w.committee.committee._key)
    with pytest.raises(PolicyViolation, match="already released"):
        restarted.decryption_share(req)
    assert answer.response


def test_a_member_refuses_a_log_that_shows_it_two_roots_for_one_size(city) -> None:
    """The aggregator (with the combiner) signs a second reveal request naming another
    root for a tree size the member was already shown: equivocation, refused, the two
    signed statements kept as evidence (issue 16: members keep every head they see)."""
    from psc.exceptions import LogVerificationFailed
    from tests.attacks._deployment import world

    w = world(city)
    rr = w.d.aggregator.prepare_reveal(w.d.registry.grade_request([5], w.period))
    member = _member(w)
    member.noise_share(_task_from(w, rr))  # the honest head is now held
    honest = codec.decode(codec.decode(rr, SignedMessage).body, RevealRequest)
    lie = seal(dataclasses.replace(honest, tree_root=b"\x07" * 32), w.d.aggregator._key)
    with pytest.raises(LogVerificationFailed, match="two roots"):
        member.noise_share(_task_from(w, lie))
    assert member.heads.conflicts
