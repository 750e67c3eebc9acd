"""Replay protocols/vectors/exact.json (spec: protocols/exact-reveal.md): every good message
opens under its recorded key and passes its checks, every bad_* one raises the recorded
error; the toy catalog's grade polynomials and the integer Lagrange coefficients are
recomputed and must match."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from psc import exceptions
from psc.catalog import load_catalog
from psc.hazmat.exact import threshold
from psc.hazmat.exact.polynomial import grade_polynomials
from psc.protocol.exact_messages import (
    BfvContribution,
    ExactDecryptionShare,
    ExactGrades,
    ExactRevealRequest,
    ExactRevealTask,
)
from psc.protocol.signing import open_signed

ROOT = Path(__file__).parent.parent
DOC = json.loads((ROOT / "protocols" / "vectors" / "exact.json").read_text())
TYPES = {
    m.TYPE: m
    for m in (
        ExactRevealRequest,
        ExactRevealTask,
        ExactDecryptionShare,
        ExactGrades,
        BfvContribution,
    )
}


def _open(case):  # type: ignore[no-untyped-def]
    key = bytes.fromhex(DOC["public_keys"][case["signer"]])
    msg = open_signed(bytes.fromhex(case["sealed"]), TYPES[case["type"]], lambda _m: key)
    msg.check()
    return msg


@pytest.mark.parametrize("case", DOC["messages"], ids=lambda c: c["name"])
def test_message_vector(case) -> None:  # type: ignore[no-untyped-def]
    assert DOC["version"] == 1
    if case["success"]:
        assert case["type"] == _open(case).TYPE
    else:
        with pytest.raises(getattr(exceptions, case["error"])):
            _open(case)


def test_algebra_vectors() -> None:
    alg = DOC["algebra"]
    polys = grade_polynomials(load_catalog(ROOT / alg["toy_catalog"]), alg["plain_modulus"])
    assert list(polys.v_domain) == alg["v_domain"]
    assert [int(c) for c in polys.band] == alg["band"]
    assert [[int(c) for c in p] for p in polys.cap_take] == alg["cap_take"]
    assert [[int(c) for c in p] for p in polys.cap_indicator] == alg["cap_indicator"]
    for name, table in alg["scaled_lagrange"].items():
        k, n = (int(x) for x in name.split("-of-"))
        for subset in itertools.combinations(range(1, n + 1), k):
            got = threshold.scaled_lagrange(subset, n)
            assert {str(a): b for a, b in got.items()} == table[",".join(map(str, subset))]
        assert threshold.simulation_factor(k, n) == alg["simulation_factor"][name]
