"""Homomorphic grading: composites, circuit parameters, encrypted grades, the reveal."""

from __future__ import annotations

import numpy as np
import pytest

from psc.catalog import load_catalog, parse_catalog
from psc.exceptions import InvalidMessage, KeyMismatch, ParameterError, PolicyViolation
from psc.he_grading import (
    BAND_8400,
    CAP_256,
    CITY_PROFILE,
    SMALL_12,
    SMALL_CAP_4,
    SMALL_PROFILE,
    SMALL_TEST_CATALOG,
    GradeQuery,
    GradingAuthority,
    GradingCircuit,
    HomomorphicGrader,
    SignComposite,
)
from psc.oracle import grades_of


@pytest.fixture(scope="module")
def small() -> tuple[GradingCircuit, GradingAuthority, HomomorphicGrader]:
    circuit = GradingCircuit.for_catalog(parse_catalog(SMALL_TEST_CATALOG))
    authority = GradingAuthority.generate(circuit)
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
    # the reveal: masked, flooded, one query per subject, released as rounded grades
    queries = grader.grade_many(scores, capct, [[i] for i in range(0, raw.size, 7)])
    for q in queries:
        (slot,) = q.slots
        assert authority.decrypt_grades(q) == {slot: int(want[slot])}


def test_the_authority_refuses_unmasked_and_foreign_queries(
    small: tuple[GradingCircuit, GradingAuthority, HomomorphicGrader],
) -> None:
    circuit, authority, grader = small
    raw = np.array([12, 6, 10, 8])
    scores = grader.scores.encrypt(raw - circuit.base)
    capct = {"C": grader.caps.encrypt(np.zeros(4, dtype=np.int64))}
    prep = grader.prepare(scores, capct, 0)
    everyone = grader._masked(prep, np.ones(circuit.slots))
    unmasked = grader._flood_from_parts(everyone, 0, [0], np.zeros(circuit.slots))
    with pytest.raises(PolicyViolation, match="not masked"):
        authority.decrypt_grades(unmasked)
    good = grader.grade(scores, capct, [2], rng=np.random.default_rng(1))
    assert authority.decrypt_grades(good) == {2: 2}
    with pytest.raises(KeyMismatch):
        authority.decrypt_grades(GradeQuery(b"\x00" * 16, 0, (2,), good.ciphertext))
    with pytest.raises(InvalidMessage):
        authority.decrypt_grades(GradeQuery(good.fingerprint, 0, (2,), good.ciphertext[:100]))
    with pytest.raises(ValueError, match="slots"):
        grader.grade(scores, capct, [4])
    from psc.backends.ckks import CkksBackend

    short = CkksBackend(authority.public, unit=circuit.score_unit).encrypt(raw - circuit.base)
    with pytest.raises(ValueError, match="fill every slot"):
        grader.grade(short, capct, [0])


def test_grader_refuses_a_context_without_relinearization_keys(
    small: tuple[GradingCircuit, GradingAuthority, HomomorphicGrader],
) -> None:
    from psc.he_params import generate

    circuit, _, _ = small
    bare = generate(circuit.params, relin_keys=False)
    with pytest.raises(ParameterError, match="relinearization"):
        HomomorphicGrader(circuit, bare.public)


def test_district_histogram_with_distributed_dp_noise() -> None:
    from fractions import Fraction

    from psc.dp.random import SeededRandomSource
    from psc.dp.sampling import sample_skellam
    from psc.he_grading import encrypt_noise_shares, encrypted_histogram, histogram_rotation_steps

    cat = parse_catalog(SMALL_TEST_CATALOG)
    circuit = GradingCircuit.for_catalog(cat)
    n = 32
    assert histogram_rotation_steps(circuit.slots) == tuple(1 << i for i in range(13))
    authority = GradingAuthority.generate(circuit, histograms=True)
    grader = HomomorphicGrader(circuit, authority.public)
    rng = np.random.default_rng(3)
    raw = rng.integers(6, 13, n)
    caps = rng.integers(0, 2, n)
    want = grades_of(cat, raw, np.where(caps > 0, 1, 3))
    district = list(range(4, 27))
    scores = grader.scores.encrypt(raw - circuit.base)
    capct = {"C": grader.caps.encrypt(caps)}
    # two key holders, each contributing Skellam(2) per bin: the sum is Skellam(4)
    drawn: list[int] = []
    sources = [SeededRandomSource(b"holder-1"), SeededRandomSource(b"holder-2")]

    def sampler(src: SeededRandomSource) -> int:
        z = sample_skellam(Fraction(2), rng=src)
        drawn.append(z)
        return z

    shares = [encrypt_noise_shares(authority.public, 4, lambda s=s: sampler(s)) for s in sources]
    q = encrypted_histogram(grader, scores, capct, district, shares, rng=np.random.default_rng(9))
    got = authority.decrypt_histogram(q)
    exact = np.bincount(want[4:27], minlength=4)
    noise = np.array(drawn[:4]) + np.array(drawn[4:])
    assert [got[lab] for lab in cat.labels] == list(exact + noise)
    assert any(noise != 0)  # the noise is really there
    # every slot of a bin holds the same noisy total: no partial sums of single subjects
    import tenseal as ts

    sk = authority.secret.context.secret_key()
    for data in q.ciphertexts:
        values = np.asarray(ts.ckks_vector_from(authority.secret.context, data).decrypt(sk))
        assert values.size == circuit.slots
        assert float(values.max() - values.min()) < 1e-3


def test_reference_driver_grades_and_reports_what_each_party_saw(
    small: tuple[GradingCircuit, GradingAuthority, HomomorphicGrader],
) -> None:
    from psc.he_grading import grade_with_he

    _circuit, authority, _ = small
    cat = parse_catalog(SMALL_TEST_CATALOG)
    transport = np.array([-2, -4, 0, 0, -1], dtype=np.int64)
    civic = np.array([2, 0, 1, 0, 2], dtype=np.int64)
    caps = {"C": np.array([1, 1, 0, 0, 0], dtype=np.int64)}
    res = grade_with_he(
        cat, {"transport": transport, "civic": civic}, caps, [0, 1, 2, 4], authority=authority
    )
    want = grades_of(cat, 10 + transport + civic, np.where(caps["C"] > 0, 1, 3))
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
    from psc.he_grading import GradingProfile

    cat = parse_catalog(TWO_CAPS)
    profile = GradingProfile("test-two-caps", SMALL_PROFILE.params, SMALL_CAP_4, SMALL_CAP_4)
    circuit = GradingCircuit.for_catalog(cat, profile=profile)
    assert circuit.cap_levels == (("C", 0), ("B", 1))
    assert circuit.segments() == [[], [0], [1]]
    authority = GradingAuthority.generate(circuit)
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
    for q in grader.grade_many(scores, caps, [[i] for i in range(len(raw))]):
        assert authority.decrypt_grades(q) == {q.slots[0]: int(want[q.slots[0]])}
