"""BFV and CKKS backends over TenSEAL: parameters, public contexts, encryption, sums, bytes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import tenseal as ts

from psc.catalog import load_catalog
from psc.exceptions import InvalidMessage, KeyMismatch, OverflowRisk, ParameterError
from psc.hazmat.backends.bfv import BfvBackend
from psc.hazmat.backends.ckks import AGGREGATION_PARAMS, CkksBackend
from psc.hazmat.he.contexts import SecretContext, generate, load_public
from psc.hazmat.he.params import (
    MAX_MODULUS_BITS,
    BfvParams,
    CkksParams,
    check_security,
    seal_primes,
)
from psc.hazmat.packing import worst_case_sum
from psc.oracle import grades_of

VECTORS = Path(__file__).resolve().parent.parent / "protocols" / "vectors" / "he.json"


@pytest.fixture(scope="module")
def bfv() -> SecretContext:
    return generate(BfvParams.for_bound(4380))


@pytest.fixture(scope="module")
def ckks() -> SecretContext:
    return generate(AGGREGATION_PARAMS)


# -- parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "bits"), sorted(MAX_MODULUS_BITS.items()))
def test_security_bound_is_enforced_at_the_he_standard_limit(n: int, bits: int) -> None:
    if n < 4096:
        with pytest.raises(ParameterError, match="not supported"):
            check_security(n, [bits])
        return
    check_security(n, [bits])
    with pytest.raises(ParameterError, match="128-bit security"):
        check_security(n, [bits + 1])


def test_insecure_ckks_parameters_are_refused() -> None:
    with pytest.raises(ParameterError, match="at most 218 bits"):
        CkksParams(8192, (60, 40, 40, 40, 60), 40)
    with pytest.raises(ParameterError, match="at most 881 bits"):
        CkksParams(32768, (60, *(40,) * 20, 60), 40)


def test_seal_primes_match_the_context_seal_builds() -> None:
    params = CkksParams(8192, (60, 40, 40, 60), 40)
    primes = seal_primes(params.n, params.coeff_bits)
    assert [q.bit_length() for q in primes] == [60, 40, 40, 60]
    assert all(q % (2 * params.n) == 1 for q in primes)
    ctx = params.new_secret_context()
    kd = ctx.data.seal_context().key_context_data()
    product = 1
    for q in primes:
        product *= q
    assert int(kd.total_coeff_modulus_bit_count()) == product.bit_length()
    # the rescale factor Delta/q_top predicted from the primes is what TenSEAL produces
    v = ts.ckks_vector(ctx, [1.0, 2.0])
    got = np.asarray((v * 1.0).decrypt()) / np.array([1.0, 2.0])
    assert np.allclose(got, params.scale / primes[-2], rtol=0, atol=1e-6)


def test_bfv_plain_modulus_is_sized_from_the_catalog_worst_case() -> None:
    cat = load_catalog("city")
    need = worst_case_sum(cat)
    p = BfvBackend.params_for_catalog(cat)
    assert p.max_value >= need
    assert p.plain_modulus % (2 * p.n) == 1
    with pytest.raises(OverflowRisk, match="worst-case sum"):
        BfvBackend.params_for_catalog(cat, multiplicity=10, plain_modulus=40961)


def test_bfv_packing_digits() -> None:
    p = BfvParams.for_bound(4380)
    assert p.digit_bits == 14 and p.digits == 3 and p.slots == 3 * 4096
    assert p.plain_modulus > 1 << 42
    assert p.max_doublings >= 20
    unpacked = BfvParams.for_bound(4380, pack=False)
    assert unpacked.digits == 1 and unpacked.max_value >= 4380


def test_bfv_noise_budget_relation_holds_and_sums_beyond_it_are_refused() -> None:
    p = BfvParams.for_bound(1 << 20)  # a wide digit: the budget is thinnest here
    secret = generate(p)
    x = ts.bfv_vector(secret.public.context, [0] * p.n)
    for _ in range(p.max_doublings - 1):
        x = x + x
    assert not np.any(np.asarray(x.decrypt(secret.context.secret_key())))
    be = BfvBackend(secret.public)
    one = be.encrypt(np.zeros(3, dtype=np.int64), bound=0)
    many = type(one)(one.fingerprint, 3, 0, one.unit, one.parts, p.max_summands)
    with pytest.raises(OverflowRisk, match="noise budget"):
        be.add(many, one)


# -- public contexts -----------------------------------------------------------------------


def test_published_context_has_no_secret_key_and_cannot_decrypt(bfv: SecretContext) -> None:
    pub = load_public(bfv.public.data)
    assert not pub.context.has_secret_key()
    assert pub.fingerprint == bfv.fingerprint
    be = BfvBackend(pub)
    ct = be.encrypt(np.array([1, -2, 3], dtype=np.int64))
    with pytest.raises(ValueError):  # TenSEAL: no secret key in this context
        ct.parts[0].decrypt()
    with pytest.raises(KeyMismatch):
        be.decrypt(ct, pub)  # type: ignore[arg-type]
    other = generate(bfv.public.params)
    with pytest.raises(KeyMismatch):
        be.decrypt(ct, other)
    assert np.array_equal(be.decrypt(ct, bfv), [1, -2, 3])


def test_a_context_holding_the_secret_key_is_refused(bfv: SecretContext) -> None:
    head_len = len(bfv.public.data) - len(
        bfv.context.serialize(save_secret_key=False, save_relin_keys=False, save_galois_keys=False)
    )
    leaked = bfv.public.data[:head_len] + bfv.context.serialize(save_secret_key=True)
    with pytest.raises(ParameterError, match="secret key"):
        load_public(leaked)


@pytest.mark.parametrize("garbage", [b"", b"PSCX", b"PSCX\x01\x00\x00\x00\x02{}", b"x" * 100])
def test_garbage_contexts_are_invalid(garbage: bytes) -> None:
    with pytest.raises(InvalidMessage):
        load_public(garbage)


# -- encryption, sums, bytes ----------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["bfv", "ckks"])
def test_sum_of_dense_vectors_across_parts(
    scheme: str, bfv: SecretContext, ckks: SecretContext
) -> None:
    secret = bfv if scheme == "bfv" else ckks
    be = BfvBackend(secret.public) if scheme == "bfv" else CkksBackend(secret.public)
    rng = np.random.default_rng(5)
    n = be.slots + 17  # two parts
    xs = [rng.integers(-60, 61, n).astype(np.int64) for _ in range(4)]
    cts = [be.encrypt(x, bound=60) for x in xs]
    assert all(len(c.parts) == 2 for c in cts)
    total = be.sum(cts)
    assert total.bound == 240
    assert np.array_equal(be.decrypt(total, secret), np.sum(xs, axis=0))
    # operands are not modified by sum()
    assert np.array_equal(be.decrypt(cts[0], secret), xs[0])
    acc = be.sum(cts[:2])
    acc = be.accumulate(acc, cts[2])
    assert np.array_equal(be.decrypt(acc, secret), xs[0] + xs[1] + xs[2])
    wire = be.serialize(total)
    assert be.byte_size(total) == len(wire)
    back = be.deserialize(wire)
    assert np.array_equal(be.decrypt(back, secret), np.sum(xs, axis=0))


def test_ckks_unit_scales_values(ckks: SecretContext) -> None:
    be = CkksBackend(ckks.public, unit=4189.5)
    x = np.array([-4000, 0, 1, 1240], dtype=np.int64)
    ct = be.encrypt(x)
    slots = np.asarray(ct.parts[0].decrypt(ckks.context.secret_key()))
    assert np.allclose(slots, x / 4189.5, atol=1e-6)
    assert np.array_equal(be.decrypt(ct, ckks), x)
    with pytest.raises(KeyMismatch, match="unit"):
        CkksBackend(ckks.public).add(ct, ct)


def test_overflow_is_refused_before_it_can_happen(bfv: SecretContext) -> None:
    be = BfvBackend(bfv.public)
    m = be.max_value
    a = be.encrypt(np.array([m], dtype=np.int64))
    with pytest.raises(OverflowRisk):
        be.add(a, a)
    with pytest.raises(OverflowRisk):
        be.encrypt(np.array([m + 1], dtype=np.int64))
    with pytest.raises(OverflowRisk):
        be.encrypt(np.array([5], dtype=np.int64), bound=4)


def test_ciphertexts_under_another_context_are_refused(bfv: SecretContext) -> None:
    other = generate(bfv.public.params)
    mine, theirs = BfvBackend(bfv.public), BfvBackend(other.public)
    x = np.arange(5, dtype=np.int64)
    foreign = theirs.encrypt(x)
    with pytest.raises(KeyMismatch):
        mine.add(mine.encrypt(x), foreign)
    with pytest.raises(KeyMismatch):
        mine.deserialize(theirs.serialize(foreign))


@pytest.mark.parametrize("scheme", ["bfv", "ckks"])
def test_garbage_ciphertexts_are_invalid(
    scheme: str, bfv: SecretContext, ckks: SecretContext
) -> None:
    secret = bfv if scheme == "bfv" else ckks
    be = BfvBackend(secret.public) if scheme == "bfv" else CkksBackend(secret.public)
    wire = be.serialize(be.encrypt(np.arange(10, dtype=np.int64)))
    bad = [
        wire[:10],
        wire[:-1],
        wire + b"\x00",
        b"XXXX" + wire[4:],
        wire[:60] + bytes(200) + wire[260:],
    ]
    for b in bad:
        with pytest.raises(InvalidMessage):
            be.deserialize(b)


def test_bfv_decrypt_refuses_values_outside_the_bound(bfv: SecretContext) -> None:
    be = BfvBackend(bfv.public)
    ct = be.encrypt(np.array([100, -100], dtype=np.int64))
    lied = type(ct)(ct.fingerprint, ct.n_values, 10, ct.unit, ct.parts)
    with pytest.raises(InvalidMessage):
        be.decrypt(lied, bfv)


# -- vectors -------------------------------------------------------------------------------


def _vectors() -> dict[str, object]:
    doc: dict[str, object] = json.loads(VECTORS.read_text())
    return doc


def test_vectors_bad_cases_replay() -> None:
    doc = _vectors()
    contexts = doc["contexts"]
    assert isinstance(contexts, dict)
    cases = [*doc["bad"], *doc["bad_keyed"]]  # type: ignore[misc]
    kinds = {c["case"] for c in cases}
    assert kinds == {
        "bad_insecure_params",
        "bad_context_with_secret_key",
        "bad_ciphertext_other_context",
        "bad_ciphertext_garbage",
    }
    for case in cases:
        kind = case["case"]
        if kind == "bad_insecure_params":
            with pytest.raises(ParameterError, match="128-bit security"):
                CkksParams(int(case["n"]), tuple(case["coeff_bits"]), int(case["scale_bits"]))
            continue
        ctx_bytes = base64.b64decode(contexts[case["context"]])
        if kind == "bad_context_with_secret_key":
            with pytest.raises(ParameterError, match="secret key"):
                load_public(ctx_bytes)
            continue
        be = BfvBackend(load_public(ctx_bytes))
        err = KeyMismatch if kind == "bad_ciphertext_other_context" else InvalidMessage
        with pytest.raises(err):
            be.deserialize(base64.b64decode(case["ciphertext"]))


def test_vectors_good_case_replays() -> None:
    doc = _vectors()
    good = doc["good"]
    contexts = doc["contexts"]
    assert isinstance(good, dict) and isinstance(contexts, dict)
    pub = load_public(base64.b64decode(contexts[good["context"]]))
    assert pub.fingerprint.hex() == good["fingerprint"]
    assert pub.params.as_json() == good["params"]
    be = BfvBackend(pub)
    ct = be.deserialize(base64.b64decode(good["ciphertext"]))
    assert ct.n_values == len(good["plaintext"]) and ct.bound == good["bound"]
    assert be.serialize(ct) == base64.b64decode(good["ciphertext"])


@pytest.mark.parametrize("which", ["city", "small"])
def test_vectors_circuit_and_expected_grades_replay(which: str) -> None:
    from psc.catalog import parse_catalog
    from psc.hazmat.he.circuit import GradingCircuit
    from psc.sim.he_driver import SMALL_TEST_CATALOG

    doc = _vectors()[which]
    assert isinstance(doc, dict)
    cat = load_catalog("city") if which == "city" else parse_catalog(SMALL_TEST_CATALOG)
    circuit = GradingCircuit.for_catalog(cat)
    assert json.loads(json.dumps(circuit.as_json())) == doc["circuit"]
    for row in doc["grades"]:
        caps = {lab: np.array([row["cap_counter"]]) for lab, _ in circuit.cap_levels}
        value = float(circuit.simulate(np.array([row["raw"]]), caps)[0])
        assert round(value) == row["grade"]
        assert abs(value - row["circuit_float64"]) < 1e-8
        cap = 1 if row["cap_counter"] else len(cat.labels) - 1
        assert int(grades_of(cat, np.array([row["raw"]]), np.array([cap]))[0]) == row["grade"]


# -- the noise budget counts the data-level modulus only (issue 16) --------------------------


def _doublings_survived(p: BfvParams, times: int) -> bool:
    """Encryptions of 1 doubled ``times`` times still decrypt to ``2^times mod t``."""
    secret = generate(p)
    x = ts.bfv_vector(secret.public.context, [1] * 8)
    for _ in range(times):
        x = x + x
    t, want = p.plain_modulus, pow(2, times, p.plain_modulus)
    got = [v % t for v in x.decrypt(secret.context.secret_key())]
    return got == [want] * 8


def test_bfv_budget_excludes_the_key_switching_prime() -> None:
    """SEAL's last coefficient prime is the special (key-switching) prime: it adds nothing to
    the noise room of a ciphertext, so a large last prime must not buy budget."""
    t = 40961  # 16 bits, = 1 mod 8192
    with pytest.raises(ParameterError, match="noise budget"):
        BfvParams(4096, t, (20, 60))  # a sum of two already fails to decrypt
    custom = BfvParams(4096, t, (30, 60))
    assert 2 <= custom.max_doublings <= 8
    assert _doublings_survived(custom, custom.max_doublings - 1)
    default = BfvParams(4096, t)  # SEAL's default moduli: the budget measured before
    assert default.max_doublings == 109 - 44 - 16  # unchanged for the default moduli
    assert _doublings_survived(default, default.max_doublings - 1)
