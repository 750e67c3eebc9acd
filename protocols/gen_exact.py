"""Write ``protocols/vectors/exact.json``: the exact reveal's messages and its algebra.

Spec: ``protocols/exact-reveal.md``.  Deterministic: Ed25519 keys from fixed seeds
(signatures are deterministic), fixed message fields, and the public algebra (the toy
catalog's grade polynomials over Z_65537, the integer Lagrange coefficients, the
smudging widths).  SEAL's sampling cannot be seeded safely (a seeded factory gives every
generator the same seed), so no ciphertext is recorded: the end-to-end behaviour is
tested against the oracle instead (``tests/test_exact_protocol.py``).

Cases: ``good`` messages (decode, verify under the recorded key, ``check()`` passes) and
``bad_*`` ones, each with the error it must raise (``"success": false``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.catalog import load_catalog
from psc.hazmat.exact import threshold
from psc.hazmat.exact.polynomial import grade_polynomials
from psc.protocol import codec
from psc.protocol.exact_messages import (
    BfvContribution,
    ExactDecryptionShare,
    ExactGrades,
    ExactRevealRequest,
    ExactRevealTask,
)
from psc.protocol.messages import PROTOCOL_VERSION, Message, SignedMessage, SlotGrade
from psc.protocol.signing import _signing_key_from_seed, label_for, public_bytes, seal, sign

OUT = Path(__file__).parent / "vectors" / "exact.json"
TOY = Path(__file__).parent.parent / "tests" / "data" / "exact-toy.toml"
VERSION = 1


def _key(name: str) -> Ed25519PrivateKey:
    return _signing_key_from_seed(hashlib.sha256(b"psc/exact/vectors/" + name.encode()).digest())


def _h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _case(name: str, msg: Message, signer: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": msg.TYPE,
        "signer": signer,
        "sealed": seal(msg, _key(signer)).hex(),
        "success": True,
        **extra,
    }


def _bad(name: str, sealed: bytes, type_: str, signer: str, error: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": type_,
        "signer": signer,
        "sealed": sealed.hex(),
        "success": False,
        "error": error,
    }


def _unchecked_seal(msg: Message, signer: str) -> bytes:
    """A correctly signed message whose values fail ``check()`` (a party that skips its
    own checks): encoded field by field, bypassing the encoder's checks."""
    body = codec._to_cbor(msg)
    body["@t"] = msg.TYPE
    body["@v"] = PROTOCOL_VERSION
    raw = cbor2.dumps(body, canonical=True)
    sig = sign(_key(signer), label_for(msg.TYPE), raw)
    return codec.encode(SignedMessage(body=raw, signature=sig))


def messages() -> list[dict[str, Any]]:
    request = ExactRevealRequest(
        request_hash=_h("grade-request"),
        period=24,
        block=0,
        slots=(3, 17),
        tree_size=12,
        tree_root=_h("root"),
        issued_at=1_790_000_000,
    )
    sealed_request = seal(request, _key("aggregator"))
    task = ExactRevealTask(authorization=sealed_request, issued_at=1_790_000_001)
    share = ExactDecryptionShare(
        member=2,
        task_hash=hashlib.sha256(seal(task, _key("combiner"))).digest(),
        ciphertext_digest=_h("ciphertext"),
        share=bytes(range(64)),
    )
    grades = ExactGrades(
        request_hash=_h("grade-request"),
        period=24,
        grades=(SlotGrade(slot=3, grade="A"), SlotGrade(slot=17, grade="B")),
        members=(1, 2, 4),
        issued_at=1_790_000_002,
    )
    contribution = BfvContribution(
        agency="tax-bureau",
        period=24,
        retention="short",
        label="score",
        block=0,
        ring=bytes(16),
        ciphertext=b"SEAL-stream-placeholder",
        issued_at=1_790_000_000,
    )
    cases = [
        _case("good_request", request, "aggregator"),
        _case("good_task", task, "combiner"),
        _case("good_share", share, "member-2"),
        _case("good_grades", grades, "combiner"),
        _case("good_contribution", contribution, "agency-tax-bureau"),
    ]
    # bad cases: each with the error a receiver must raise
    sig_by_other = seal(request, _key("combiner"))
    cases.append(
        _bad(
            "bad_request_signed_by_combiner",
            sig_by_other,
            request.TYPE,
            "aggregator",
            "InvalidMessage",
        )
    )
    wrapper = codec.decode(seal(request, _key("aggregator")), SignedMessage)
    tampered = codec.encode(
        SignedMessage(
            body=codec.encode(dataclasses.replace(request, slots=())), signature=wrapper.signature
        )
    )
    cases.append(
        _bad(
            "bad_request_widened_to_every_slot",
            tampered,
            request.TYPE,
            "aggregator",
            "InvalidMessage",
        )
    )
    cases.append(
        _bad(
            "bad_request_slots_unsorted",
            _unchecked_seal(dataclasses.replace(request, slots=(17, 3)), "aggregator"),
            request.TYPE,
            "aggregator",
            "InvalidMessage",
        )
    )
    cases.append(
        _bad(
            "bad_request_short_root",
            _unchecked_seal(dataclasses.replace(request, tree_root=b"\x00" * 31), "aggregator"),
            request.TYPE,
            "aggregator",
            "InvalidMessage",
        )
    )
    cases.append(
        _bad(
            "bad_task_as_request",
            seal(task, _key("combiner")),
            request.TYPE,
            "combiner",
            "InvalidMessage",
        )
    )
    cases.append(
        _bad(
            "bad_share_not_words",
            _unchecked_seal(dataclasses.replace(share, share=bytes(13)), "member-2"),
            share.TYPE,
            "member-2",
            "InvalidMessage",
        )
    )
    cases.append(
        _bad(
            "bad_share_member_zero",
            _unchecked_seal(dataclasses.replace(share, member=0), "member-2"),
            share.TYPE,
            "member-2",
            "InvalidMessage",
        )
    )
    cases.append(
        _bad(
            "bad_grades_unsorted",
            _unchecked_seal(
                dataclasses.replace(grades, grades=tuple(reversed(grades.grades))), "combiner"
            ),
            grades.TYPE,
            "combiner",
            "InvalidMessage",
        )
    )
    cases.append(
        _bad(
            "bad_contribution_short_fingerprint",
            _unchecked_seal(dataclasses.replace(contribution, ring=bytes(15)), "agency-tax-bureau"),
            contribution.TYPE,
            "agency-tax-bureau",
            "InvalidMessage",
        )
    )
    return cases


def algebra() -> dict[str, Any]:
    polys = grade_polynomials(load_catalog(TOY), 65537)
    lagrange = {
        f"{k}-of-{n}": {
            ",".join(map(str, subset)): threshold.scaled_lagrange(subset, n)
            for subset in itertools.combinations(range(1, n + 1), k)
        }
        for k, n in ((2, 3), (3, 5))
    }
    return {
        "plain_modulus": 65537,
        "toy_catalog": "tests/data/exact-toy.toml",
        "v_domain": list(polys.v_domain),
        "band": [int(c) for c in polys.band],
        "cap_labels": list(polys.cap_labels),
        "cap_take": [[int(c) for c in p] for p in polys.cap_take],
        "cap_indicator": [[int(c) for c in p] for p in polys.cap_indicator],
        "scaled_lagrange": {
            name: {s: {str(k): v for k, v in d.items()} for s, d in table.items()}
            for name, table in lagrange.items()
        },
        "simulation_factor": {
            f"{k}-of-{n}": threshold.simulation_factor(k, n) for k, n in ((2, 3), (3, 5))
        },
    }


def main() -> None:
    keys = {
        name: public_bytes(_key(name)).hex()
        for name in ("aggregator", "combiner", "member-2", "agency-tax-bureau")
    }
    doc = {
        "version": VERSION,
        "spec": "protocols/exact-reveal.md",
        "public_keys": keys,
        "messages": messages(),
        "algebra": algebra(),
    }
    OUT.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
