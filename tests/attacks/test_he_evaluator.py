"""Adversary: the CKKS evaluator (the aggregator holding the public context, the evaluation
keys and every ciphertext), alone or with a relying party (issue 9, attack 6).

On ebb0b87 the grading authority decrypted any ``GradeQuery`` whose requested slots rounded
to 0..top and whose other slots rounded to 0, and any ``HistogramQuery`` at all: the
evaluator packed a score linearly into a "grade" (two queries: the exact score), binary
searched with its own thresholds, sent a histogram bin holding a score, a fresh ciphertext
of its choice, a replayed query and an unflooded one; every one was decrypted.  Now the
authority takes only signed submissions (into its log) and signed requests, and evaluates
the published circuit itself: these tests drive each attack through the bytes an evaluator
can send and assert that it is refused with the party named, or that the released output
is the published circuit's grade whatever the evaluator does.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest

from psc.catalog import parse_catalog
from psc.exceptions import (
    BudgetExhausted,
    InvalidMessage,
    KeyMismatch,
    ParameterError,
    PolicyViolation,
    ReplayedNonce,
    UnknownParty,
)
from psc.hazmat.he.circuit import GradingCircuit
from psc.oracle import grades_of
from psc.parties.grading_authority import GradingAuthority
from psc.protocol import codec
from psc.protocol.he_messages import HeSubmission
from psc.protocol.messages import GradeRequest, SignedMessage
from psc.protocol.signing import _signing_key_from_seed, seal
from psc.sim.he_driver import SMALL_TEST_CATALOG
from psc.testing import HeDeployment, he_small_deployment

CAT = parse_catalog(SMALL_TEST_CATALOG)
#: every raw score of the small domain, one capped subject
RAW = np.array([6, 7, 8, 9, 10, 11, 12, 12])
CAPS = np.array([0, 0, 0, 0, 0, 0, 0, 1])
WANT = grades_of(CAT, RAW, np.where(CAPS > 0, 1, 3))
EVALUATOR_KEY = _signing_key_from_seed(b"\x42" * 32)


@pytest.fixture(scope="module")
def dep() -> HeDeployment:
    d = he_small_deployment(RAW.size)
    d.submit_scores(0, RAW, CAPS)
    return d


def _packed_bits_ciphertext(dep: HeDeployment, slot: int) -> bytes:
    """What the evaluator computed on ebb0b87: ``(s - 6)/2`` in ``slot``, 0 elsewhere, which
    rounds to a valid 'grade' 0..3 and (with a second offset) gives the exact score."""
    auth = dep.authority
    circuit, grader = auth.circuit, auth.grader
    sub = next(s for s in auth.submissions().values() if s.message.counter == "score")
    mask = np.zeros(circuit.slots)
    mask[slot] = 1.0
    ct = (
        sub.ciphertext.parts[0] * (mask * circuit.score_unit / 2).tolist()
        + (mask * ((circuit.base - 6) / 2)).tolist()
    )
    out = dataclasses.replace(sub.ciphertext, parts=(ct,))
    return grader.scores.serialize(out)


def test_released_grades_are_the_published_circuits(dep: HeDeployment) -> None:
    got = dep.authority.reveal(dep.request(range(RAW.size), 0))
    assert got == {i: int(g) for i, g in enumerate(WANT)}


def test_packed_bits_signed_by_the_evaluator_are_refused_naming_it(dep: HeDeployment) -> None:
    before = (len(dep.authority.log.entries), dep.authority.decryptions)
    good = HeSubmission(
        "aggregator",
        1,
        "month",
        "score",
        dep.authority.public.fingerprint,
        bytes.fromhex(CAT.version_hash),
        dep.nonce(),
        _packed_bits_ciphertext(dep, 3),
    )
    with pytest.raises(UnknownParty, match="'aggregator'"):
        dep.authority.log_submission(seal(good, EVALUATOR_KEY))
    assert (len(dep.authority.log.entries), dep.authority.decryptions) == before


def test_packed_bits_spliced_into_an_agencys_signed_submission_fail_its_signature(
    dep: HeDeployment,
) -> None:
    signed = dep.submission("civil-affairs-bureau", 1, "score", np.zeros(RAW.size, np.int64))
    wrapper = codec.decode(signed, SignedMessage)
    msg = codec.decode(wrapper.body, HeSubmission)
    forged = dataclasses.replace(msg, ciphertext=_packed_bits_ciphertext(dep, 3))
    spliced = codec.encode(SignedMessage(codec.encode(forged), wrapper.signature))
    with pytest.raises(InvalidMessage, match="signature"):
        dep.authority.log_submission(spliced)


def test_an_evaluated_ciphertext_submitted_by_a_corrupt_agency_is_not_fresh(
    dep: HeDeployment,
) -> None:
    """A corrupt agency colluding with the evaluator signs the evaluator's crafted (lower
    level) ciphertext: refused as not a fresh encryption, the agency named."""
    auth = dep.authority
    sub = next(s for s in auth.submissions().values() if s.message.counter == "score")
    squared = dataclasses.replace(
        sub.ciphertext, parts=(sub.ciphertext.parts[0] * sub.ciphertext.parts[0],)
    )
    msg = HeSubmission(
        "transport-bureau",
        2,
        "month",
        "score",
        auth.public.fingerprint,
        bytes.fromhex(CAT.version_hash),
        dep.nonce(),
        auth.grader.scores.serialize(squared),
    )
    with pytest.raises(InvalidMessage, match=r"'transport-bureau'.*fresh"):
        auth.log_submission(seal(msg, dep.keys["transport-bureau"]))


def test_a_ciphertext_under_another_context_is_refused(dep: HeDeployment) -> None:
    other = he_small_deployment(RAW.size)
    data = other.submission("transport-bureau", 3, "score", np.zeros(RAW.size, np.int64))
    # signed by the right agency key (the seeds are the same), for the other context
    with pytest.raises(KeyMismatch, match="'transport-bureau'"):
        dep.authority.log_submission(data)


def test_own_thresholds_cannot_replace_the_published_circuit() -> None:
    circuit = GradingCircuit.for_catalog(CAT)
    own = dataclasses.replace(circuit, thresholds=(Fraction(17, 2),), labels=("lo", "hi"))
    with pytest.raises(ParameterError, match="published circuit"):
        GradingAuthority.generate(own, catalog=CAT)


def test_no_entry_point_decrypts_a_ciphertext_made_by_someone_else() -> None:
    """The authority's public methods that take bytes from other parties: only signed
    submissions (into the log) and signed requests.  ebb0b87 had ``decrypt_grades`` and
    ``decrypt_histogram`` taking ciphertexts."""
    public = {
        n
        for n in dir(GradingAuthority)
        if not n.startswith("_") and callable(getattr(GradingAuthority, n))
    }
    assert not any("decrypt" in n for n in public)
    assert {"log_submission", "reveal", "reveal_histogram"} <= public


def test_replayed_request_is_refused_and_decrypts_nothing(dep: HeDeployment) -> None:
    req = dep.request([2], 0)
    assert dep.authority.reveal(req) == {2: int(WANT[2])}
    n = dep.authority.decryptions
    with pytest.raises(ReplayedNonce, match="replay"):
        dep.authority.reveal(req)
    assert dep.authority.decryptions == n


def test_period_changed_by_the_forwarder_breaks_the_signature(dep: HeDeployment) -> None:
    signed = dep.request([4], 0)
    wrapper = codec.decode(signed, SignedMessage)
    req = codec.decode(wrapper.body, GradeRequest)
    moved = dataclasses.replace(req, period=1)
    forged = codec.encode(SignedMessage(codec.encode(moved), wrapper.signature))
    with pytest.raises(InvalidMessage, match="signature"):
        dep.authority.reveal(forged)


def test_a_nonce_reused_for_another_period_is_a_replay(dep: HeDeployment) -> None:
    nonce = b"\x99" * 16
    dep.authority.reveal(dep.request([5], 0, nonce=nonce))
    with pytest.raises(ReplayedNonce, match="'bank'"):
        dep.authority.reveal(dep.request([5], 1, nonce=nonce))


def test_requests_from_unregistered_parties_or_for_other_purposes_are_refused(
    dep: HeDeployment,
) -> None:
    req = GradeRequest("aggregator", "credit-assessment", 0, (1,), b"\x01" * 16, b"", 0)
    with pytest.raises(UnknownParty, match="'aggregator'"):
        dep.authority.reveal(seal(req, EVALUATOR_KEY))
    with pytest.raises(PolicyViolation, match=r"'bank'.*purpose"):
        dep.authority.reveal(dep.request([1], 0, purpose="marketing"))


def test_repeated_queries_stop_at_the_declared_budget_before_decrypting() -> None:
    """Fresh flooding per query averages out: the bound covers ``max_queries`` only."""
    d = he_small_deployment(2, max_queries=2)
    d.submit_scores(0, np.array([10, 11]))
    for _ in range(2):
        assert d.authority.reveal(d.request([0], 0)) == {0: 2}
    n = d.authority.decryptions
    with pytest.raises(BudgetExhausted, match=r"\[0\]"):
        d.authority.reveal(d.request([0, 1], 0))
    assert d.authority.decryptions == n
    assert d.authority.reveal(d.request([1], 0)) == {1: 2}  # the refusal changed nothing


def test_a_withheld_submission_leaves_the_period_ungraded() -> None:
    """The forwarder drops the transport bureau's vector (to learn, with a relying party,
    whether its deltas moved a grade): the authority refuses to grade a partial log,
    names the missing agency, decrypts nothing; once forwarded, the grade is the full one."""
    d = he_small_deployment(2)
    raw = np.array([9, 12])
    held = d.submission("transport-bureau", 0, "score", np.minimum(raw - 10, 0))
    d.authority.log_submission(d.submission("transport-bureau", 0, "cap:C", np.zeros(2)))
    d.authority.log_submission(
        d.submission("civil-affairs-bureau", 0, "score", np.maximum(raw - 10, 0))
    )
    with pytest.raises(PolicyViolation, match="'transport-bureau'"):
        d.authority.reveal(d.request([0], 0))
    assert d.authority.decryptions == 0 and d.authority.ledger.used(0) == 0
    d.authority.log_submission(held)
    assert d.authority.reveal(d.request([0, 1], 0)) == {0: 1, 1: 3}
