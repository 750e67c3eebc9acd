"""Replay ``protocols/vectors/threshold.json`` (keygen and decryption shares, good and bad).

The vectors pin the byte encodings, the Fiat-Shamir transcript and the dealer's algebra:
re-dealing from the shipped primes and the generator's seeded randomness must give the
same key, and every share in the file must verify (or fail) exactly as recorded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gmpy2 import mpz

from protocols.gen_threshold import SUITES, Drbg, safe_test_primes
from psc.exceptions import InsufficientShares, InvalidMessage
from psc.hazmat.backends.paillier import PackedPaillier
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import _keypair_from_primes
from psc.hazmat.threshold.combine import combine, decrypt_packed, decrypt_with_committee
from psc.hazmat.threshold.dealer import deal
from psc.hazmat.threshold.encoding import decode_packed_share, decode_share
from psc.hazmat.threshold.keys import KeyShare, ThresholdPublicKey

VECTORS = json.loads(
    (Path(__file__).parent.parent / "protocols" / "vectors" / "threshold.json").read_text()
)
SUITE_DATA = VECTORS["suites"]
ERRORS: dict[str, type[Exception]] = {
    "InvalidMessage": InvalidMessage,
    "InsufficientShares": InsufficientShares,
    "ValueError": ValueError,
}


def h(x: str) -> int:
    return int(x, 16)


def primes_of(suite: dict[str, Any]) -> tuple[int, int]:
    entry = VECTORS["test_safe_primes"][suite["primes"]]
    return h(entry["p"]), h(entry["q"])


def test_file_header_and_suites() -> None:
    assert VECTORS["version"] == 1
    assert [(s["k"], s["parties"], s["bits"]) for s in SUITE_DATA] == list(SUITES)
    assert set(VECTORS["test_safe_primes"]) == {"512", "1024", "2048"}


@pytest.mark.parametrize("bits", [512, 1024])
def test_shipped_primes_regenerate(bits: int) -> None:
    entry = VECTORS["test_safe_primes"][str(bits)]
    assert safe_test_primes(bits) == (h(entry["p"]), h(entry["q"]))


@pytest.mark.parametrize("suite", SUITE_DATA, ids=lambda s: s["name"])
def test_keygen_vector(suite: dict[str, Any]) -> None:
    pk = ThresholdPublicKey.from_json(suite["public_key"])
    assert pk.fingerprint.hex() == suite["fingerprint"]
    dealer = Drbg(f"{suite['name']}/dealer")
    again, shares = deal(
        suite["k"],
        suite["parties"],
        bits=suite["bits"],
        randbelow=dealer.randbelow,
        allow_insecure=True,
        _primes=primes_of(suite),
    )
    assert again == pk
    assert [s.to_json() for s in shares] == suite["key_shares"]
    pk.check_verification_keys()
    for obj in suite["key_shares"]:
        KeyShare.from_json(pk, obj).check()


@pytest.mark.parametrize("suite", SUITE_DATA, ids=lambda s: s["name"])
def test_decryption_share_vectors(suite: dict[str, Any]) -> None:
    pk = ThresholdPublicKey.from_json(suite["public_key"])
    ct = suite["ciphertext"]
    c, m = h(ct["c"]), h(ct["plaintext"])
    assert pk.public.raw_encrypt(m, pk.public.random_rn(lambda _b: h(ct["r"]))) == c
    assert _keypair_from_primes(*primes_of(suite), allow_insecure=True)[1].raw_decrypt(c) == m
    shares = {}
    for obj in suite["decryption_shares"]:
        share = decode_share(pk, bytes.fromhex(obj["encoded"]))
        assert (share.index, share.value) == (obj["index"], h(obj["value"]))
        assert (share.proof.challenge, share.proof.response) == (
            h(obj["challenge"]),
            h(obj["response"]),
        )
        key = KeyShare.from_json(pk, suite["key_shares"][share.index - 1])
        # the share value is deterministic: c^(2 Delta s_i) mod n^2
        assert key.decryption_share(c).value == share.value
        pk.verify_share(c, share)
        shares[share.index] = share
    for combo in suite["combinations"]:
        assert combine(pk, c, [shares[i] for i in combo["indices"]]) == h(combo["plaintext"])


@pytest.mark.parametrize("suite", SUITE_DATA, ids=lambda s: s["name"])
def test_committee_vector(suite: dict[str, Any]) -> None:
    pk = ThresholdPublicKey.from_json(suite["public_key"])
    c = h(suite["ciphertext"]["c"])
    want = suite["committee"]["expected"]
    shares = [decode_share(pk, bytes.fromhex(x)) for x in suite["committee"]["shares"]]
    result = decrypt_with_committee(pk, c, shares)
    assert result.plaintext == h(want["plaintext"])
    assert list(result.bad) == want["bad"] and list(result.used) == want["used"]


@pytest.mark.parametrize("suite", SUITE_DATA, ids=lambda s: s["name"])
def test_packed_vector(suite: dict[str, Any]) -> None:
    pk = ThresholdPublicKey.from_json(suite["public_key"])
    packed = suite["packed"]
    layout = SlotLayout(packed["slot_bits"], packed["slots"])
    backend = PackedPaillier(pk.public, layout, allow_insecure_key=True)
    ct = backend.deserialize(bytes.fromhex(packed["ciphertext"]))
    shares = [decode_packed_share(pk, bytes.fromhex(x)) for x in packed["shares"]]
    for s in shares:
        pk.verify_packed_share(ct.blocks, s)
    result = decrypt_packed(pk, ct, shares[-suite["k"] :])
    np.testing.assert_array_equal(result.plaintext, np.array(packed["plaintext"], dtype=np.int64))


def _run(pk: ThresholdPublicKey, suite: dict[str, Any], case: dict[str, Any]) -> object:
    c = mpz(h(suite["ciphertext"]["c"]))
    raw = [bytes.fromhex(x) for x in case["shares"]]
    op = case["op"]
    if op == "decode_share":
        return decode_share(pk, raw[0])
    if op == "verify_packed_share":
        layout = SlotLayout(suite["packed"]["slot_bits"], suite["packed"]["slots"])
        backend = PackedPaillier(pk.public, layout, allow_insecure_key=True)
        ct = backend.deserialize(bytes.fromhex(suite["packed"]["ciphertext"]))
        pk.verify_packed_share(ct.blocks, decode_packed_share(pk, raw[0]))
        return None
    shares = [decode_share(pk, b) for b in raw]
    if op == "verify_share":
        pk.verify_share(c, shares[0])
        return None
    if op == "combine":
        return combine(pk, c, shares)
    if op == "decrypt_with_committee":
        return decrypt_with_committee(pk, c, shares)
    raise AssertionError(f"unknown op {op}")


BAD = [(s, b) for s in SUITE_DATA for b in s["bad"]]


@pytest.mark.parametrize(("suite", "case"), BAD, ids=[f"{s['name']}:{b['name']}" for s, b in BAD])
def test_bad_cases(suite: dict[str, Any], case: dict[str, Any]) -> None:
    pk = ThresholdPublicKey.from_json(suite["public_key"])
    want = case["expected"]
    with pytest.raises(ERRORS[want["error"]]) as info:
        _run(pk, suite, case)
    assert type(info.value) is ERRORS[want["error"]]
    if "party" in want:
        assert f"party {want['party']}" in str(info.value)
    if "bad" in want:
        assert isinstance(info.value, InsufficientShares)
        assert list(info.value.bad) == want["bad"]


def test_every_bad_case_name_is_covered() -> None:
    names = {b["name"] for s in SUITE_DATA for b in s["bad"]}
    assert all(n.startswith("bad_") for n in names)
    assert {
        "bad_share_value",
        "bad_proof_challenge",
        "bad_proof_response",
        "bad_other_ciphertext",
        "bad_wrong_index",
        "bad_duplicate_index",
        "bad_too_few",
    } <= names
