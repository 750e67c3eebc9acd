"""Replay ``protocols/vectors/packing.json``: good cases byte for byte, bad ones by error class."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from phe import paillier as phe

from psc import exceptions
from psc.catalog import load_catalog
from psc.hazmat.backends.paillier import PackedPaillier, RandomnessPool
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey, _keypair_from_primes

VECTORS = json.loads(
    (Path(__file__).parent.parent / "protocols" / "vectors" / "packing.json").read_text("utf-8")
)
CASES = {c["name"]: c for c in VECTORS["cases"]}


def keys(name: str) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    k = VECTORS["keys"][name]
    pk, sk = _keypair_from_primes(int(k["p"], 16), int(k["q"], 16), allow_insecure=True)
    assert int(pk.n) == int(k["n"], 16) and pk.fingerprint.hex() == k["fingerprint"]
    return pk, sk


def layout_of(case: dict[str, Any], pk: PaillierPublicKey) -> SlotLayout:
    lay = case["layout"]
    layout = SlotLayout(lay["slot_bits"], lay["slots"])
    assert (
        layout == SlotLayout.for_key(pk.bits, lay["slot_bits"])
        and layout.max_value == lay["max_value"]
    )
    return layout


def scripted(values: list[int]) -> Callable[[int], int]:
    it: Iterator[int] = iter(values)
    return lambda bound: next(it)


def backend(
    case: dict[str, Any], rs: list[int] | None = None
) -> tuple[PackedPaillier, PaillierPrivateKey]:
    pk, sk = keys(case["key"])
    pool = RandomnessPool(pk, randbelow=scripted(rs or []))
    return PackedPaillier(pk, layout_of(case, pk), pool=pool, allow_insecure_key=True), sk


def test_the_file_has_every_kind_of_case() -> None:
    assert VECTORS["version"] == 1
    names = {b["name"] for b in VECTORS["bad"]}
    for want in (
        "bad_truncated",
        "bad_altered_header_byte",
        "bad_altered_block",
        "bad_wrong_key_fingerprint",
        "bad_wrong_slot_count",
        "bad_bound_above_range",
        "bad_add_overflow",
        "bad_encrypt_above_bound",
        "bad_layout_too_narrow",
    ):
        assert want in names
    assert all(n.startswith("bad_") for n in names)
    assert len(VECTORS["cases"]) >= 4 and VECTORS["sums"]


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_good_case_reproduces_byte_for_byte(case: dict[str, Any]) -> None:
    rs = [int(b["r"], 16) for b in case["blocks"]]
    be, sk = backend(case, rs)
    pk = be.public_key
    v = np.array(case["vector"], dtype=np.int64)
    S = be.layout.slots
    for j, block in enumerate(case["blocks"]):
        packed = be.layout.pack(v[j * S : (j + 1) * S])
        assert packed == int(block["packed"])
        assert packed % int(pk.n) == int(block["plaintext"], 16)
        assert sk.raw_decrypt(int(block["ciphertext"], 16)) == int(block["plaintext"], 16)
    ct = be.encrypt(v, bound=case["bound"])
    assert [f"{int(c):x}" for c in ct.blocks] == [b["ciphertext"] for b in case["blocks"]]
    blob = be.serialize(ct)
    assert blob.hex() == case["serialized"]
    assert be.byte_size(ct) == len(blob)
    back = be.deserialize(blob)
    assert back == ct
    assert be.decrypt(back, sk).tolist() == case["vector"]
    assert (be.pool.taken, be.pool.made_online) == (len(rs), len(rs))


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_phe_reads_the_good_cases(case: dict[str, Any]) -> None:
    pk, sk = keys(case["key"])
    psk = sk.to_phe()
    for block in case["blocks"]:
        assert psk.raw_decrypt(int(block["ciphertext"], 16)) == int(block["plaintext"], 16)
    if len(case["vector"]) == 1:  # one slot: phe's signed decoding gives the value itself
        enc = phe.EncryptedNumber(pk.to_phe(), int(case["blocks"][0]["ciphertext"], 16), 0)
        assert psk.decrypt(enc) == case["vector"][0]


@pytest.mark.parametrize("case", VECTORS["sums"], ids=lambda c: c["name"])
def test_sum_case_reproduces(case: dict[str, Any]) -> None:
    be, sk = backend(case)
    inputs = [be.deserialize(bytes.fromhex(CASES[name]["serialized"])) for name in case["inputs"]]
    total = be.sum(inputs)
    assert total.bound == case["bound"]
    assert be.serialize(total).hex() == case["serialized"]
    assert be.decrypt(total, sk).tolist() == case["vector"]


def run_bad(case: dict[str, Any]) -> None:
    op = case["op"]
    if op == "layout":
        SlotLayout.for_catalog(
            load_catalog(case["catalog"]), case["key_bits"], slot_bits=case["slot_bits"]
        )
        return
    be, sk = backend(case)
    if op == "deserialize":
        be.deserialize(bytes.fromhex(case["serialized"]))
    elif op == "decrypt":
        ct = be.deserialize(bytes.fromhex(case["serialized"]))
        be.decrypt(ct, keys(case["decrypt_key"])[1] if "decrypt_key" in case else sk)
    elif op == "encrypt":
        be.encrypt(np.array(case["vector"], dtype=np.int64), bound=case["bound"])
    elif op == "add":
        a, b = (be.deserialize(bytes.fromhex(x)) for x in case["inputs"])
        be.add(a, b)
    else:
        raise AssertionError(f"unknown op {op!r}")


@pytest.mark.parametrize("case", VECTORS["bad"], ids=lambda c: c["name"])
def test_bad_case_raises_exactly_the_named_error(case: dict[str, Any]) -> None:
    error = getattr(exceptions, case["error"])
    with pytest.raises(error) as info:
        run_bad(case)
    assert type(info.value) is error
