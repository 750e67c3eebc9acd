"""Replay ``protocols/vectors/proofs.json``: good proofs byte for byte, bad ones by error class."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from psc import exceptions
from psc.hazmat.backends.paillier import PackedPaillier, RandomnessPool
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import PaillierPublicKey, _keypair_from_primes
from psc.hazmat.proofs.plaintext import PlaintextProof, prove_plaintexts, verify_plaintexts

VECTORS = json.loads(
    (Path(__file__).parent.parent / "protocols" / "vectors" / "proofs.json").read_text("utf-8")
)


def key(name: str) -> PaillierPublicKey:
    k = VECTORS["keys"][name]
    pk, _ = _keypair_from_primes(int(k["p"], 16), int(k["q"], 16), allow_insecure=True)
    assert int(pk.n) == int(k["n"], 16)
    return pk


def scripted(values: list[str]) -> Callable[[int], int]:
    it: Iterator[int] = (int(v, 16) for v in values)

    def draw(bound: int) -> int:
        v = next(it)
        assert 0 <= v < bound
        return v

    return draw


def ints(xs: list[str]) -> list[int]:
    return [int(x, 16) for x in xs]


def test_the_file_has_every_kind_of_case() -> None:
    assert VECTORS["version"] == 1
    names = {b["name"] for b in VECTORS["bad"]}
    for want in (
        "bad_plaintext_wrong_context",
        "bad_plaintext_swapped_blocks",
        "bad_plaintext_truncated",
        "bad_plaintext_scaled_ciphertexts",
        "bad_plaintext_tampered_commitment",
        "bad_plaintext_tampered_response_m",
        "bad_plaintext_tampered_response_r",
    ):
        assert want in names
    assert {c["kind"] for c in VECTORS["cases"]} >= {"plaintext"}


@pytest.mark.parametrize(
    "case", [c for c in VECTORS["cases"] if c["kind"] == "plaintext"], ids=lambda c: c["name"]
)
def test_plaintext_proofs_replay_byte_for_byte(case: dict[str, Any]) -> None:
    pk = key(case["key"])
    lay = case["layout"]
    layout = SlotLayout(lay["slot_bits"], lay["slots"])
    pool = RandomnessPool(pk, randbelow=scripted(case["encryption_draws"]))
    be = PackedPaillier(pk, layout, pool=pool, allow_insecure_key=True)
    ct, openings = be.encrypt_with_openings(np.array(case["values"], dtype=np.int64))
    assert [int(c) for c in ct.blocks] == ints(case["ciphertexts"])
    assert [(int(o.plaintext), int(o.randomness)) for o in openings] == [
        (int(o["m"], 16), int(o["r"], 16)) for o in case["openings"]
    ]
    context = bytes.fromhex(case["context"])
    proof = prove_plaintexts(
        pk, ints(case["ciphertexts"]), openings, context, randbelow=scripted(case["prover_draws"])
    )
    assert proof.to_bytes(pk).hex() == case["proof"]
    parsed = PlaintextProof.from_bytes(pk, bytes.fromhex(case["proof"]), len(openings))
    verify_plaintexts(pk, ints(case["ciphertexts"]), parsed, context)


@pytest.mark.parametrize(
    "case", [c for c in VECTORS["bad"] if c["kind"] == "plaintext"], ids=lambda c: c["name"]
)
def test_bad_plaintext_proofs_raise_the_named_error(case: dict[str, Any]) -> None:
    pk = key(case["key"])
    error = getattr(exceptions, case["error"])
    cts = ints(case["ciphertexts"])
    with pytest.raises(error) as info:
        proof = PlaintextProof.from_bytes(pk, bytes.fromhex(case["proof"]), len(cts))
        verify_plaintexts(pk, cts, proof, bytes.fromhex(case["context"]))
    assert type(info.value).__name__ == case["error"]
