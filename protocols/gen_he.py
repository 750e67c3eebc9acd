"""Write ``protocols/vectors/he.json``: the CKKS grading circuit and TenSEAL message vectors.

``python -m protocols.generate he`` (or ``python -m protocols.gen_he [--new-keys]``).

Deterministic content (circuit parameters, composite coefficients, expected grades of fixed
scores, the insecure-parameter case, the signed ``he-submission`` message and its ``bad_*``
cases from fixed seeds) is recomputed every time.  Key material (TenSEAL
contexts and ciphertexts) cannot be seeded through TenSEAL, so it is generated once and
kept on regeneration unless ``--new-keys`` is given; regenerating therefore leaves the file
byte-identical unless the protocol changed.

``--design`` prints the composite polynomials recomputed by linear-programming minimax
(needs scipy, a dev dependency), to check the constants in :mod:`psc.hazmat.he`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from psc.catalog import load_catalog, parse_catalog
from psc.hazmat.backends.bfv import BfvBackend
from psc.hazmat.he.circuit import GradingCircuit
from psc.hazmat.he.contexts import generate
from psc.hazmat.he.params import BfvParams
from psc.oracle import grades_of
from psc.sim.he_driver import SMALL_TEST_CATALOG

OUT = Path(__file__).resolve().parent / "vectors" / "he.json"
#: fixed city scores around every threshold and at the domain ends
CITY_SCORES = (-3140, 0, 599, 600, 849, 850, 959, 960, 961, 1000, 1029, 1030, 1049, 1050, 1240)


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _expected(catalog_name: str | None) -> dict[str, Any]:
    cat = load_catalog(catalog_name) if catalog_name else parse_catalog(SMALL_TEST_CATALOG)
    circuit = GradingCircuit.for_catalog(cat)
    lo, hi = circuit.raw_bounds
    scores = CITY_SCORES if catalog_name == "city" else tuple(range(lo, hi + 1))
    rows = []
    for counter in (0, 1):
        raw = np.array(scores, dtype=np.int64)
        caps = np.full(raw.size, counter, dtype=np.int64)
        top = len(cat.labels) - 1
        cap_idx = np.where(caps > 0, min(i for _, i in circuit.cap_levels), top)
        want = grades_of(cat, raw, cap_idx)
        sim = circuit.simulate(raw, {lab: caps for lab, _ in circuit.cap_levels})
        for s, g, v in zip(scores, want, sim, strict=True):
            rows.append(
                {
                    "raw": int(s),
                    "cap_counter": counter,
                    "grade": int(g),
                    "label": cat.labels[int(g)],
                    "circuit_float64": round(float(v), 9),
                }
            )
    return {
        "catalog": catalog_name or "SMALL_TEST_CATALOG",
        "circuit": circuit.as_json(),
        "grades": rows,
    }


def _key_material() -> dict[str, Any]:
    params = BfvParams.for_bound(4380)
    a, b = generate(params), generate(params)
    be_a, be_b = BfvBackend(a.public), BfvBackend(b.public)
    plain = [1, -2, 3, 0, 4380, -4380, 7]
    ct = be_a.encrypt(np.array(plain, dtype=np.int64), bound=4380)
    wire = be_a.serialize(ct)
    head_len = len(a.public.data) - len(
        a.context.serialize(save_secret_key=False, save_relin_keys=False, save_galois_keys=False)
    )
    with_secret = a.public.data[:head_len] + a.context.serialize(save_secret_key=True)
    garbage = wire[:80] + bytes(256) + wire[336:]
    return {
        "contexts": {"A": _b64(a.public.data), "A_with_secret_key": _b64(with_secret)},
        "good": {
            "context": "A",
            "fingerprint": a.public.fingerprint.hex(),
            "params": params.as_json(),
            "plaintext": plain,
            "bound": 4380,
            "ciphertext": _b64(wire),
        },
        "bad_keyed": [
            {
                "case": "bad_context_with_secret_key",
                "context": "A_with_secret_key",
                "expect": "ParameterError",
            },
            {
                "case": "bad_ciphertext_other_context",
                "context": "A",
                "ciphertext": _b64(be_b.serialize(be_b.encrypt(np.array(plain, dtype=np.int64)))),
                "expect": "KeyMismatch",
            },
            {
                "case": "bad_ciphertext_garbage",
                "context": "A",
                "ciphertext": _b64(garbage),
                "expect": "InvalidMessage",
            },
        ],
    }


#: fixed seeds and fields of the he-submission vectors (insecure: public test seeds)
SUBMISSION_SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))
#: a stand-in for the CKKS ciphertext: the vectors test the message and its signature;
#: ciphertext checks (context, freshness) are replayed by tests/attacks/test_he_evaluator.py
PLACEHOLDER_CIPHERTEXT = b"PSCK\x01" + bytes(27)


def _submission_fields() -> dict[str, Any]:
    return {
        "agency": "transport-bureau",
        "period": 24301,
        "retention": "month",
        "counter": "cap:C",
        "context": bytes(range(16)),
        "catalog_version": bytes(range(32, 64)),
        "nonce": bytes(range(64, 80)),
        "ciphertext": PLACEHOLDER_CIPHERTEXT,
    }


def _submission_vectors() -> dict[str, Any]:
    """Deterministic (Ed25519 signatures are): recomputed on every run."""
    import cbor2

    from psc.protocol import codec
    from psc.protocol.he_messages import HeSubmission
    from psc.protocol.messages import PROTOCOL_VERSION, SignedMessage
    from psc.protocol.signing import _signing_key_from_seed, label_for, public_bytes, sign

    key, other = _signing_key_from_seed(SUBMISSION_SEED), _signing_key_from_seed(OTHER_SEED)
    fields = _submission_fields()
    body = codec.encode(HeSubmission(**fields))
    good = codec.encode(SignedMessage(body, sign(key, label_for(HeSubmission.TYPE), body)))

    def signed_raw(doc: dict[str, Any], k: Any = key, label: str = HeSubmission.TYPE) -> str:
        raw = cbor2.dumps({**doc, "@t": HeSubmission.TYPE, "@v": PROTOCOL_VERSION}, canonical=True)
        return _b64(codec.encode(SignedMessage(raw, sign(k, label_for(label), raw))))

    wrapper = codec.decode(good, SignedMessage)
    flipped = bytes([wrapper.signature[0] ^ 1]) + wrapper.signature[1:]
    bad = [
        ("bad_signature_flipped", _b64(codec.encode(SignedMessage(body, flipped)))),
        ("bad_signed_by_another_key", signed_raw(fields, other)),
        ("bad_signed_under_another_type", signed_raw(fields, label="grade-request")),
        ("bad_counter", signed_raw({**fields, "counter": "cap C"})),
        ("bad_agency_name", signed_raw({**fields, "agency": "Transport Bureau"})),
        ("bad_context_length", signed_raw({**fields, "context": bytes(15)})),
        ("bad_catalog_version_length", signed_raw({**fields, "catalog_version": bytes(31)})),
        ("bad_nonce_length", signed_raw({**fields, "nonce": bytes(17)})),
        ("bad_negative_period", signed_raw({**fields, "period": -1})),
        ("bad_empty_ciphertext", signed_raw({**fields, "ciphertext": b""})),
        ("bad_extra_field", signed_raw({**fields, "bound": 4})),
    ]
    return {
        "spec": "protocols/he-grading.md section 3.3",
        "signer_public_key": public_bytes(key).hex(),
        "good": {
            "fields": {k: v.hex() if isinstance(v, bytes) else v for k, v in fields.items()},
            "wire": _b64(good),
            "digest": hashlib.sha256(good).hexdigest(),
        },
        "bad": [{"case": c, "wire": w, "expect": "InvalidMessage"} for c, w in bad],
    }


def build(previous: dict[str, Any] | None, *, new_keys: bool) -> dict[str, Any]:
    keyed = (
        {k: previous[k] for k in ("contexts", "good", "bad_keyed")}
        if previous and not new_keys and "contexts" in previous
        else _key_material()
    )
    return {
        "version": 1,
        "spec": "protocols/he-grading.md",
        "city": _expected("city"),
        "small": _expected(None),
        "he_submission": _submission_vectors(),
        **keyed,
        "bad": [
            {
                "case": "bad_insecure_params",
                "n": 16384,
                "coeff_bits": [60, *[40] * 9, 60],
                "scale_bits": 40,
                "expect": "ParameterError",
                "why": "500 bits > 438 allowed at N=16384 (HE standard, 128-bit)",
            },
            {
                "case": "bad_insecure_params",
                "n": 32768,
                "coeff_bits": [60, *[40] * 20, 60],
                "scale_bits": 40,
                "expect": "ParameterError",
                "why": "920 bits > 881 allowed at N=32768",
            },
        ],
    }


def design() -> None:  # pragma: no cover - dev tool, needs scipy
    from scipy.optimize import linprog

    mu, noise = 2.0**-12, 2.0**-16

    def minimax(deg: int, a: float, b: float) -> np.ndarray:
        xs = np.unique(np.concatenate([np.geomspace(a, b, 4000), np.linspace(a, b, 4000)]))
        k = deg // 2 + 1
        v = np.stack([xs ** (2 * i + 1) for i in range(k)], 1)
        ones = np.ones((len(xs), 1))
        a_ub = np.block([[v, -ones], [-v, -ones]])
        b_ub = np.concatenate([np.ones(len(xs)), -np.ones(len(xs))])
        cost = np.zeros(k + 1)
        cost[-1] = 1
        r = linprog(
            cost, A_ub=a_ub, b_ub=b_ub, bounds=[(None, None)] * k + [(0, None)], method="highs"
        )
        return np.asarray(r.x[:k])

    for name, ratio, stages in (
        ("BAND_8400", 8400, 7),
        ("CAP_256", 256, 5),
        ("SMALL_12", 12, 3),
        ("SMALL_CAP_4", 4, 2),
    ):
        a = 1.0 / ratio
        print(name)
        for _ in range(stages):
            c = minimax(7, a, 1 + mu)
            xs = np.linspace(a, 1 + mu, 200_001)
            y = sum(ck * xs ** (2 * i + 1) for i, ck in enumerate(c))
            c = c / y.max()
            print("   ", tuple(float(x) for x in c))
            a = float(y.min() / y.max()) - noise


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if "--design" in args:
        design()
        return
    previous = json.loads(OUT.read_text()) if OUT.exists() else None
    doc = build(previous, new_keys="--new-keys" in args)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
