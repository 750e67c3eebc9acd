"""Homomorphic grading: composites, circuit parameters, encrypted grades, the reveal."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from psc.catalog import load_catalog, parse_catalog
from psc.exceptions import (
    CatalogMismatch,
    DuplicateSubmission,
    InvalidMessage,
    ParameterError,
    PolicyViolation,
    ReplayedNonce,
)
from psc.hazmat.he.circuit import GradingCircuit
from psc.hazmat.he.composites import (
    BAND_8400,
    CAP_256,
    CITY_PROFILE,
    SMALL_12,
    SMALL_CAP_4,
    SMALL_PROFILE,
    SignComposite,
)
from psc.hazmat.he.evaluator import HomomorphicGrader
from psc.oracle import grades_of
from psc.parties.grading_authority import GradingAuthority
from psc.protocol import codec
from psc.protocol.he_messages import HeSubmission
from psc.protocol.messages import SignedMessage
from psc.protocol.signing import seal
from psc.sim.he_driver import SMALL_TEST_CATALOG
from psc.testing import he_small_deployment


@pytest.fixture(scope="module")
def small() -> tuple[GradingCircuit, GradingAuthority, HomomorphicGrader]:
    circuit = GradingCircuit.for_catalog(parse_catalog(SMALL_TEST_CATALOG))
    authority = GradingAuthority.generate(circuit, catalog=parse_catalog(SMALL_TEST_CATALOG))
    return circuit, authority, HomomorphicGrader(circuit, authority.public)


@pytest.mark.parametrize("comp", [BAND_8400, CAP_256, SMALL_12, SMALL_CAP_4], ids=lambda c: c.name)
def test_composites_saturate_on_their_whole_domain(comp: SignComposite) -> None:
    x = np.concatenate(
        [np.geomspace(1 / comp.max_ratio, 1, 200_001), np.linspace(1 / comp.max_ratio, 1, 200_001)]
    )
    y = comp(x)
    assert float(np.abs(y - 1).max()) <= comp.max_error
    assert np.allclose(comp(-x), -y)  # odd
    # robust to noise: inputs slightly beyond 1 stay bounded
    assert float(np.abs(comp(np.linspace(1, 1 + 2**-12, 101))).max()) <= 1 + comp.max_error
    with pytest.raises(AssertionError):  # the bound is tight: a weaker domain would fail
        assert float(np.abs(comp(x / 4) - 1).max()) <= comp.max_error


def test_profiles_are_within_the_security_bound_and_have_the_depth() -> None:
    assert CITY_PROFILE.params.modulus_bits <= 881 and CITY_PROFILE.params.n == 32768
    assert SMALL_PROFILE.params.modulus_bits <= 438 and SMALL_PROFILE.params.n == 16384
    CITY_PROFILE.check_depth(1)
    SMALL_PROFILE.check_depth(1)
    with pytest.raises(ParameterError, match="levels"):
        SMALL_PROFILE.check_depth(3)


def test_city_circuit_parameters() -> None:
    cat = load_catalog("city")
    c = GradingCircuit.for_catalog(cat)
    assert c.profile is CITY_PROFILE
    assert c.raw_bounds == (-3140, 1240)
    assert c.score_unit == 4189.5  # |(-3140) - 1049.5|
    assert c.cap_unit == 35.5  # 36 months of at most one drunk-driving event
    assert c.cap_levels == (("C", 1),)
    assert c.segments() == [[0], [1, 2, 3, 4]]


@pytest.mark.parametrize("name", ["city", "company"])
def test_the_float_circuit_grades_the_full_builtin_domains_exactly(name: str) -> None:
    cat = load_catalog(name)
    c = GradingCircuit.for_catalog(cat)
    assert c.profile is CITY_PROFILE
    lo, hi = c.raw_bounds
    raw = np.arange(lo, hi + 1)
    top = len(cat.labels) - 1
    cap_level = min(i for _, i in c.cap_levels)
    for counter in (0, 1, round(c.cap_unit + 0.5)):
        caps = np.full(raw.size, counter)
        want = grades_of(cat, raw, np.where(caps > 0, cap_level, top))
        got = c.simulate(raw, {lab: caps for lab, _ in c.cap_levels})
        assert int(np.count_nonzero(np.rint(got) != want)) == 0
        assert float(np.abs(got - want).max()) < 1e-6


def test_a_domain_too_wide_for_every_profile_is_refused() -> None:
    wide = SMALL_TEST_CATALOG.replace("delta = -1\n", "delta = -3000\n").replace(
        'severity = "minor"', 'severity = "serious"'
    )
    cat = parse_catalog(wide)
    with pytest.raises(ParameterError, match="resolving 1 part in"):
        GradingCircuit.for_catalog(cat)
    with pytest.raises(ParameterError):
        GradingCircuit.for_catalog(load_catalog("city"), profile=SMALL_PROFILE)


def test_encrypted_grades_over_the_whole_small_domain(
    small: tuple[GradingCircuit, GradingAuthority, HomomorphicGrader],
) -> None:
    circuit, authority, grader = small
    cat = parse_catalog(SMALL_TEST_CATALOG)
    lo, hi = circuit.raw_bounds
    raw = np.tile(np.arange(lo, hi + 1), 40)
    caps = np.repeat([0, 1], raw.size // 2 + 1)[: raw.size]
    scores = grader.scores.encrypt(raw - circuit.base)
    capct = {"C": grader.caps.encrypt(caps)}
    ct, factor = grader.grades_unflooded(scores, capct)
    got = np.asarray(ct.decrypt(authority.secret.context.secret_key()))[: raw.size] / factor
    want = grades_of(cat, raw, np.where(caps > 0, 1, 3))
    assert np.array_equal(np.rint(got).astype(np.int64), want)
    assert float(np.abs(got - want).max()) < 1e-3


def test_the_reveal_grades_logged_inputs_for_the_requested_period() -> None:
    """Submissions of periods 0 and 1 (one-month retention): each period's request sees only
    its own live inputs; one decryption per part, every other slot masked."""
    cat = parse_catalog(SMALL_TEST_CATALOG)
    dep = he_small_deployment(7)
    raw0, raw1 = np.array([6, 7, 8, 9, 10, 11, 12]), np.array([12, 11, 10, 9, 8, 7, 6])
    caps0 = np.array([0, 0, 0, 0, 0, 1, 1])
    dep.submit_scores(0, raw0, caps0)
    dep.submit_scores(1, raw1)
    got0 = dep.authority.reveal(dep.request(range(7), 0))
    got1 = dep.authority.reveal(dep.request([0, 3, 6], 1))
    want0 = grades_of(cat, raw0, np.where(caps0 > 0, 1, 3))
    want1 = grades_of(cat, raw1)
    assert got0 == {i: int(want0[i]) for i in range(7)}
    assert got1 == {i: int(want1[i]) for i in (0, 3, 6)}
    assert dep.authority.decryptions == 2
    kinds = [k for k, _ in dep.authority.log.entries]
    assert kinds.count("he-submission") == 6 and kinds.count("grade-request") == 2
    # a period nobody has submitted for yet cannot be graded (nothing decrypted) ...
    with pytest.raises(PolicyViolation, match="period 2 cannot be graded yet"):
        dep.authority.reveal(dep.request([1], 2))
    assert dep.authority.decryptions == 2
    # ... and once every agency has sent its (zero) vectors it grades at the base score
    dep.submit_scores(2, np.full(7, 10))
    assert dep.authority.reveal(dep.request([1], 2)) == {1: 2}


def test_the_log_refuses_bad_submissions_and_changes_nothing() -> None:
    dep = he_small_deployment(3)
    auth = dep.authority
    zero = np.zeros(3, dtype=np.int64)
    good = dep.submission("transport-bureau", 0, "score", zero)
    auth.log_submission(good)
    head, n = auth.log.head, len(auth.log.entries)
    with pytest.raises(DuplicateSubmission, match="'transport-bureau'"):
        auth.log_submission(dep.submission("transport-bureau", 0, "score", zero))
    with pytest.raises(PolicyViolation, match=r"'civil-affairs-bureau'.*cap:C"):
        auth.log_submission(dep.submission("civil-affairs-bureau", 0, "cap:C", zero))
    with pytest.raises(InvalidMessage, match="wrong subjects"):
        auth.log_submission(dep.submission("civil-affairs-bureau", 0, "score", np.zeros(4)))
    wrapper = codec.decode(good, SignedMessage)
    msg = codec.decode(wrapper.body, HeSubmission)
    for forged, err in (
        (dataclasses.replace(msg, period=1), ReplayedNonce),  # same nonce, new period
        (
            dataclasses.replace(msg, period=1, nonce=b"\x07" * 16, catalog_version=bytes(32)),
            CatalogMismatch,
        ),
    ):
        with pytest.raises(err, match="'transport-bureau'"):
            auth.log_submission(seal(forged, dep.keys["transport-bureau"]))
    with pytest.raises(InvalidMessage):
        auth.log_submission(good[:-3])
    assert (auth.log.head, len(auth.log.entries)) == (head, n)


def test_requests_outside_the_subjects_are_refused() -> None:
    dep = he_small_deployment(3)
    dep.submit_scores(0, np.array([10, 10, 10]))
    with pytest.raises(InvalidMessage, match="outside"):
        dep.authority.reveal(dep.request([3], 0))
    assert dep.authority.decryptions == 0


def test_the_grader_refuses_bad_masks_and_partial_parts(
    small: tuple[GradingCircuit, GradingAuthority, HomomorphicGrader],
) -> None:
    circuit, authority, grader = small
    raw = np.array([12, 6, 10, 8])
    scores = grader.scores.encrypt(raw - circuit.base)
    capct = {"C": grader.caps.encrypt(np.zeros(4, dtype=np.int64))}
    with pytest.raises(ValueError, match="slots"):
        grader.masked(scores, capct, [4])
    from psc.hazmat.backends.ckks import CkksBackend

    short = CkksBackend(authority.public, unit=circuit.score_unit).encrypt(raw - circuit.base)
    with pytest.raises(ValueError, match="fill every slot"):
        grader.masked(short, capct, [0])


def test_grader_refuses_a_context_without_relinearization_keys(
    small: tuple[GradingCircuit, GradingAuthority, HomomorphicGrader],
) -> None:
    from psc.hazmat.he.contexts import generate

    circuit, _, _ = small
    bare = generate(circuit.params, relin_keys=False)
    with pytest.raises(ParameterError, match="relinearization"):
        HomomorphicGrader(circuit, bare.public)


def test_district_histogram_with_authority_drawn_dp_noise() -> None:
    from fractions import Fraction

    from psc.dp.random import SeededRandomSource
    from psc.dp.sampling import sample_skellam
    from psc.hazmat.he.histogram import histogram_rotation_steps
    from psc.testing import HeDeployment

    cat = parse_catalog(SMALL_TEST_CATALOG)
    circuit = GradingCircuit.for_catalog(cat)
    n = 32
    assert histogram_rotation_steps(circuit.slots) == tuple(1 << i for i in range(13))
    dep = HeDeployment(GradingAuthority.generate(circuit, catalog=cat, histograms=True), n)
    rng = np.random.default_rng(3)
    raw = rng.integers(6, 13, n)
    caps = rng.integers(0, 2, n)
    want = grades_of(cat, raw, np.where(caps > 0, 1, 3))
    dep.submit_scores(0, raw, caps)
    dep.authority._rng = SeededRandomSource(b"histogram")
    got = dep.authority.reveal_histogram(dep.request(range(4, 27), 0), noise_variance=Fraction(4))
    # the authority draws the G noise integers first from its source: replay them
    src = SeededRandomSource(b"histogram")
    noise = np.array([sample_skellam(Fraction(4), rng=src) for _ in cat.labels])
    exact = np.bincount(want[4:27], minlength=4)
    assert [got[lab] for lab in cat.labels] == list(exact + noise)
    assert any(noise != 0)  # the noise is really there


def test_reference_driver_grades_and_reports_what_each_party_saw() -> None:
    import datetime as dt

    from psc.catalog import parse_period, period_start
    from psc.events import Event, EventTable
    from psc.sim.he_driver import grade_with_he

    cat = parse_catalog(SMALL_TEST_CATALOG)
    p = parse_period("2025-02")
    day = period_start(p) + dt.timedelta(days=2)
    evs = [
        Event(0, "traffic.drunk-driving", day, "a" * 64),
        Event(0, "civic.volunteering", day, "b" * 64),
        Event(1, "traffic.ticket", day, "c" * 64),
        Event(1, "traffic.ticket", day, "d" * 64),
        Event(2, "civic.volunteering", day, "e" * 64),
    ]
    table = EventTable.from_events(cat, evs, 5)
    res = grade_with_he(table, p, [0, 1, 2, 4])
    raw = np.array([9, 8, 11, 10, 10])
    want = grades_of(cat, raw, np.array([1, 3, 3, 3, 3]))
    assert res.grades == {i: int(want[i]) for i in (0, 1, 2, 4)}
    assert set(res.seen) == {"agencies", "aggregator", "grading-authority", "relying-party"}
    assert len(res.seen["relying-party"]) == 4


TWO_CAPS = """
[scheme]
name = "he-two-caps-test"
version = "1"
domain = "public-credit"
subject_kind = "person"
base_score = 10
min_score = 0
max_score = 20
purposes = ["credit-assessment"]
rule_domains = ["traffic", "civic"]

[[grades]]
label = "A"
min = 10.5

[[grades]]
label = "B"
min = 9.5

[[grades]]
label = "C"

[retention.month]
months = 1

[[rules]]
id = "civic.volunteering"
agency = "civil-affairs-bureau"
description = "Certified volunteer service of at least 20 hours"
delta = 1
domain = "civic"
purpose = "recognition of voluntary service"
legal_basis = "consent"
legal_authority = "Regulations on Volunteer Service, Art. 22"
evidence_required = true
retention = "month"
data_categories = ["voluntary-service"]
severity = "positive"

[[rules]]
id = "traffic.speeding"
agency = "transport-bureau"
description = "Speeding penalty decision"
delta = -1
domain = "traffic"
purpose = "road-safety compliance record"
legal_basis = "statutory-duty"
legal_authority = "Road Traffic Safety Law, Art. 90"
evidence_required = true
retention = "month"
data_categories = ["administrative-penalty"]
severity = "moderate"
grade_cap = "B"

[[rules]]
id = "traffic.drunk-driving"
agency = "transport-bureau"
description = "Penalty decision for driving under the influence of alcohol"
delta = 0
domain = "traffic"
purpose = "road-safety compliance record"
legal_basis = "statutory-duty"
legal_authority = "Road Traffic Safety Law, Art. 91"
evidence_required = true
retention = "month"
data_categories = ["administrative-penalty"]
severity = "serious"
grade_cap = "C"
"""


def test_nested_caps_with_two_cap_levels() -> None:
    from psc.hazmat.he.composites import GradingProfile

    cat = parse_catalog(TWO_CAPS)
    profile = GradingProfile("test-two-caps", SMALL_PROFILE.params, SMALL_CAP_4, SMALL_CAP_4)
    circuit = GradingCircuit.for_catalog(cat, profile=profile)
    assert circuit.cap_levels == (("C", 0), ("B", 1))
    assert circuit.segments() == [[], [0], [1]]
    authority = GradingAuthority.generate(circuit, catalog=cat)
    grader = HomomorphicGrader(circuit, authority.public)
    combos = np.array([(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    plus, speeding, drunk = combos.T
    raw = 10 + plus - speeding
    cap = np.where(drunk > 0, 0, np.where(speeding > 0, 1, 2))
    want = grades_of(cat, raw, cap)
    assert sorted(set(want.tolist())) == [0, 1, 2]
    scores = grader.scores.encrypt(raw - 10)
    caps = {"B": grader.caps.encrypt(speeding), "C": grader.caps.encrypt(drunk)}
    ct, factor = grader.grades_unflooded(scores, caps)
    got = np.asarray(ct.decrypt(authority.secret.context.secret_key()))[: raw.size] / factor
    assert np.array_equal(np.rint(got).astype(np.int64), want)
    assert np.array_equal(circuit.simulate(raw, {"B": speeding, "C": drunk}).round(), want)
    # the reveal: the authority logs signed submissions and evaluates them itself
    from psc.protocol.messages import GradeRequest
    from psc.protocol.signing import _signing_key_from_seed, public_bytes
    from psc.sim.he_driver import he_submission

    authority.expect_subjects(raw.size, first_period=0)
    keys = {a: _signing_key_from_seed(bytes([i + 9]) * 32) for i, a in enumerate(cat.agencies)}
    for a, k in keys.items():
        authority.register_agency(a, public_bytes(k), a)
    for a, counter, v in (
        ("transport-bureau", "score", -speeding),
        ("transport-bureau", "cap:B", speeding),
        ("transport-bureau", "cap:C", drunk),
        ("civil-affairs-bureau", "score", plus),
    ):
        authority.log_submission(he_submission(authority, a, keys[a], 0, "month", counter, v, a))
    rp = _signing_key_from_seed(b"\x33" * 32)
    authority.register_requester("bank", public_bytes(rp))
    req = GradeRequest("bank", "credit-assessment", 0, tuple(range(raw.size)), b"\x01" * 16, b"", 0)
    assert authority.reveal(seal(req, rp)) == {i: int(want[i]) for i in range(raw.size)}


def _submission_vectors() -> dict[str, Any]:
    import json
    from pathlib import Path

    doc = json.loads((Path(__file__).parent.parent / "protocols/vectors/he.json").read_text())
    out: dict[str, Any] = doc["he_submission"]
    return out


def test_he_submission_vectors_replay() -> None:
    import base64

    from psc.protocol.signing import open_signed

    vec = _submission_vectors()
    pk = bytes.fromhex(vec["signer_public_key"])
    good = vec["good"]
    wire = base64.b64decode(good["wire"])
    msg = open_signed(wire, HeSubmission, lambda m: pk)
    want = {
        k: bytes.fromhex(v) if k in ("context", "catalog_version", "nonce", "ciphertext") else v
        for k, v in good["fields"].items()
    }
    assert dataclasses.asdict(msg) == want
    assert msg.cap == "C"
    # re-encoding and re-signing reproduce the vector byte for byte (deterministic Ed25519)
    from psc.protocol.signing import _signing_key_from_seed, seal

    assert seal(msg, _signing_key_from_seed(bytes(range(32)))) == wire
    for case in vec["bad"]:
        with pytest.raises(InvalidMessage):
            open_signed(base64.b64decode(case["wire"]), HeSubmission, lambda m: pk)


def test_nothing_is_graded_outside_the_declared_deployment() -> None:
    cat = parse_catalog(SMALL_TEST_CATALOG)
    undeclared = GradingAuthority.generate(GradingCircuit.for_catalog(cat), catalog=cat)
    with pytest.raises(ParameterError, match="declare the deployment"):
        undeclared.missing(0)
    dep = he_small_deployment(2)
    with pytest.raises(ValueError, match="first period"):
        dep.authority.expect_subjects(2, first_period=-1)
    dep.authority._first_period = 1  # a deployment that starts at period 1
    with pytest.raises(PolicyViolation, match="before the deployment"):
        dep.authority.log_submission(dep.submission("transport-bureau", 0, "score", np.zeros(2)))
    dep.submit_scores(1, np.array([10, 12]))
    with pytest.raises(PolicyViolation, match="before the deployment"):
        dep.authority.reveal(dep.request([0], 0))
    assert dep.authority.reveal(dep.request([0, 1], 1)) == {0: 2, 1: 3}
    assert dep.authority.decryptions == 1
