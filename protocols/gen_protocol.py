"""Write ``protocols/vectors/protocol.json``: submit, ingest, reveal and access vectors.

Deterministic: a fixed insecure 512-bit Paillier key given by its primes, every Ed25519 key,
nonce, salt and slot permutation from :func:`psc.sim.sources.seeded_randbytes`, Paillier
randomness from a seeded ``random.Random``, and a fixed clock.  Regenerating leaves the file
byte-identical unless the protocol changed.  Replayed by ``tests/test_vectors_protocol.py``.

Layout of the file (all bytes in lowercase hex):

* ``setup``: catalog, primes, the aggregator's and key holder's key seeds, the sealed public
  parameters, agency registrations and the relying party's registration, ingest clock;
* ``good``: envelopes to ingest in order, each with the exact receipt expected, then the
  ledger ``state_digest`` expected after all of them;
* ``replays``: envelopes already ingested; re-ingesting returns the same receipt;
* ``bad``: ``bad_*`` envelopes, each rejected with ``error`` (an exception class name of
  :mod:`psc.exceptions`) leaving the state digest unchanged;
* ``reveal``: a registry grade request, the aggregator's reveal request, the key holder's
  response and the grades it carries;
* ``access``: one subject's access request and an agency's response, the log inclusions to
  check it with, the events it proves, and ``bad_*`` tampered responses.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import cbor2
import gmpy2
import numpy as np

from psc import exceptions
from psc.catalog import load_catalog, period_index
from psc.events import Event
from psc.hazmat.backends.paillier import BlockOpening, PackedCiphertext, RandomnessPool
from psc.hazmat.paillier import _keypair_from_primes
from psc.hazmat.proofs.range import _prove
from psc.hazmat.proofs.range_statement import DEFAULT_DIGIT_BITS
from psc.parties.agency import Agency
from psc.parties.relying_party import read_grades
from psc.protocol import codec, validity
from psc.protocol.messages import AccessResponse, ClassCiphertext, SignedMessage, Submission
from psc.protocol.signing import (
    _signing_key_from_seed,
    digest,
    label_for,
    public_bytes,
    seal,
    sign,
)
from psc.sim.city import agency_instances
from psc.sim.deployment import setup
from psc.sim.sources import SimClock, seeded_randbytes

OUT = Path(__file__).parent / "vectors" / "protocol.json"
SEED = "psc/protocol-vectors/v1"
N_SUBJECTS = 40
KEY_BITS = 512
SETUP_TIME = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
INGEST_TIME = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)
P1 = period_index(dt.date(2026, 1, 1))
P2 = P1 + 1
P3 = P1 + 2  # still open to submissions at INGEST_TIME; bad cases use it

# (population index, rule, day) per period: every agency and the grade cap are exercised
EVENTS = {
    P1: [
        (0, "traffic.violation", 3),
        (0, "traffic.violation", 17),
        (1, "traffic.drunk-driving", 9),
        (2, "court.judgment-default", 12),
        (3, "tax.arrears", 20),
        (4, "admin.unpaid-fine", 2),
        (5, "utility.arrears", 28),
        (6, "civic.volunteering", 6),
        (7, "civic.blood-donation", 14),
    ],
    P2: [
        (0, "traffic.violation", 5),
        (2, "tax.arrears", 11),
        (8, "civic.volunteering", 1),
        (8, "civic.volunteering", 21),
        (9, "court.judgment-default", 8),
    ],
}


def primes() -> tuple[int, int]:
    rnd = random.Random(SEED + "/paillier")
    half = KEY_BITS // 2
    while True:
        p = int(gmpy2.next_prime(rnd.getrandbits(half) | (3 << (half - 2))))
        q = int(gmpy2.next_prime(rnd.getrandbits(half) | (3 << (half - 2))))
        if p != q and (p * q).bit_length() == KEY_BITS:
            return p, q


def _reseal(agency: Agency, sealed: bytes, **changes: Any) -> bytes:
    """A variant of a sealed submission, validly signed by the agency (vector building)."""
    sub = codec.decode(codec.decode(sealed, SignedMessage).body, Submission)
    return seal(dataclasses.replace(sub, **changes), agency._key)


def _out_of_range(agency: Agency, sealed: bytes) -> bytes:
    """The agency's envelope with +10 in slot 0 of its first delta vector (its range is
    [-50, 0]), encrypted under the declared bound and 'proven' by the honest prover's
    algorithm run on the false value (the private seam ``honest=False``)."""
    sub = codec.decode(codec.decode(sealed, SignedMessage).body, Submission)
    p = agency.params
    vr = validity.vector_ranges(p.catalog, agency.catalog_agency)[0]
    pk, layout, n = p.public_key, p.layout, p.n_subjects
    values = [10] + [0] * (n - 1)
    rnd = random.Random(SEED + "/out-of-range")
    S, w = layout.slots, layout.slot_bits
    blocks, openings = [], []
    for j in range(0, n, S):
        m = sum(v << (w * i) for i, v in enumerate(values[j : j + S])) % int(pk.n)
        r, rn = pk.random_r_rn(rnd.randrange)
        blocks.append(pk.raw_encrypt(m, rn))
        openings.append(BlockOpening(gmpy2.mpz(m), r))
    ct = PackedCiphertext(pk.fingerprint, layout, n, -vr.lo, tuple(blocks))
    ctx = validity.vector_context(
        agency=sub.agency,
        period=sub.period,
        catalog_version=sub.catalog_version,
        nonce=sub.nonce,
        n_subjects=sub.n_subjects,
        commitment_root=sub.commitment_root,
        commitment_size=sub.commitment_size,
        created_at=sub.created_at,
        index=0,
        vector=vr,
    )
    proof = _prove(
        pk,
        layout,
        [int(c) for c in blocks],
        openings,
        values,
        [vr.lo] * n,
        [vr.hi] * n,
        ctx,
        randbelow=rnd.randrange,
        pool=None,
        digit_bits=DEFAULT_DIGIT_BITS,
        honest=False,
    )
    deltas = (dataclasses.replace(sub.deltas[0], ciphertext=agency._backend.serialize(ct)),)
    return _reseal(
        agency,
        sealed,
        deltas=deltas + sub.deltas[1:],
        proofs=(proof.to_bytes(pk, layout), *sub.proofs[1:]),
    )


def _event(slot_of: Any, who: int, rule: str, period: int, day: int) -> Event:
    date = dt.date(period // 12, period % 12 + 1, day)
    evidence = digest(f"{SEED}/evidence/{who}/{rule}/{date}".encode()).hex()
    return Event(int(slot_of[who]), rule, date, evidence)


def build() -> dict[str, Any]:
    catalog = load_catalog("city")
    p, q = primes()
    pk, sk = _keypair_from_primes(p, q, allow_insecure=True)
    clock = SimClock(SETUP_TIME)
    randbytes = seeded_randbytes(SEED)
    d = setup(
        catalog, agency_instances(catalog), N_SUBJECTS, (pk, sk), clock=clock, randbytes=randbytes
    )
    rnd = random.Random(SEED + "/randomizers")
    for a in d.agencies:
        a.use_pool(RandomnessPool(pk, randbelow=rnd.randrange))
    by_agency = {a.catalog_agency: a for a in d.agencies}
    clock.advance_to(INGEST_TIME)

    good = []
    sealed_by: dict[tuple[str, int], bytes] = {}
    for period, evs in EVENTS.items():
        for a in d.agencies:
            mine = [
                _event(d.slot_of, who, rule, period, day)
                for who, rule, day in evs
                if catalog.rule(rule).agency == a.catalog_agency
            ]
            env = a.submit(mine, period)
            receipt = d.aggregator.ingest(env)
            a.accept_receipt(receipt)
            sealed_by[(a.id, period)] = env
            good.append(
                {"agency": a.id, "period": period, "envelope": env.hex(), "receipt": receipt.hex()}
            )
    state = d.ledger.state_digest()

    # -- bad cases: each from a fresh, otherwise valid envelope for P3 --------------------
    court, transport = by_agency["intermediate-court"], by_agency["transport-bureau"]
    fresh = court.submit([], P3)
    fresh_t = transport.submit([], P3)
    sub_t = codec.decode(codec.decode(fresh_t, SignedMessage).body, Submission)
    w = codec.decode(fresh, SignedMessage)
    flipped = bytearray(w.signature)
    flipped[0] ^= 1
    sub = codec.decode(w.body, Submission)
    first_ct = sub.deltas[0].ciphertext
    rogue = _signing_key_from_seed(randbytes(32))
    v2 = cbor2.loads(w.body)
    v2["@v"] = 2
    body2 = cbor2.dumps(v2, canonical=True)
    n_small = N_SUBJECTS - 1
    small = court._backend.encrypt(
        np.zeros(n_small, dtype=np.int64),
        bound=catalog.agency_period_bound("intermediate-court", "judgment"),
    )
    old_sub = codec.decode(codec.decode(sealed_by[(court.id, P1)], SignedMessage).body, Submission)
    old_nonce, old_proofs = old_sub.nonce, old_sub.proofs
    bad = {
        "bad_signature": (
            codec.encode(SignedMessage(w.body, bytes(flipped))),
            "InvalidMessage",
        ),
        "bad_catalog_version": (
            _reseal(court, fresh, catalog_version=bytes(32)),
            "CatalogMismatch",
        ),
        "bad_replayed_nonce": (_reseal(court, fresh, nonce=old_nonce), "ReplayedNonce"),
        "bad_truncated_ciphertext": (
            _reseal(court, fresh, deltas=(ClassCiphertext("judgment", first_ct[:-1]),)),
            "InvalidMessage",
        ),
        "bad_wrong_slot_count": (
            _reseal(
                court,
                fresh,
                n_subjects=n_small,
                deltas=(ClassCiphertext("judgment", court._backend.serialize(small)),),
            ),
            "InvalidMessage",
        ),
        "bad_stale_period": (
            _reseal(court, fresh, period=period_index(INGEST_TIME.date()) - 36),
            "StalePeriod",
        ),
        "bad_future_period": (
            _reseal(court, fresh, period=period_index(INGEST_TIME.date()) + 1),
            "StalePeriod",
        ),
        "bad_unregistered_agency": (
            seal(dataclasses.replace(sub, agency="rogue-agency"), rogue),
            "UnknownParty",
        ),
        "bad_duplicate_period": (_reseal(court, fresh, period=P1), "DuplicateSubmission"),
        "bad_missing_class": (
            _reseal(
                transport,
                fresh_t,
                deltas=sub_t.deltas[:1],
                proofs=sub_t.proofs[:1] + sub_t.proofs[len(sub_t.deltas) :],
            ),
            "InvalidMessage",
        ),
        "bad_protocol_version": (
            codec.encode(SignedMessage(body2, sign(court._key, label_for("submission"), body2))),
            "InvalidMessage",
        ),
        "bad_signed_by_other_agency": (
            seal(sub, transport._key),
            "InvalidMessage",
        ),
        # validity proofs (protocols/proofs.md 3, submit.md, ingest.md)
        "bad_out_of_range_slot": (_out_of_range(court, fresh), "InvalidProof"),
        "bad_proof_for_another_envelope": (
            _reseal(court, fresh, nonce=bytes(range(16))),
            "InvalidProof",
        ),
        "bad_truncated_proof": (
            _reseal(court, fresh, proofs=(sub.proofs[0][:-1], *sub.proofs[1:])),
            "InvalidProof",
        ),
        "bad_replayed_proof": (
            _reseal(court, fresh, proofs=(old_proofs[0], *sub.proofs[1:])),
            "InvalidProof",
        ),
    }

    for name, (env, err) in bad.items():  # the generator checks its own expectations
        try:
            d.aggregator.ingest(env)
        except getattr(exceptions, err):
            pass
        else:
            raise AssertionError(f"{name} was accepted")
        assert d.ledger.state_digest() == state, name

    # -- reveal: every subject's own grade at P2, and a relying party's ----------------------
    request = d.registry.grade_request(range(N_SUBJECTS), P2)
    reveal_request = d.aggregator.prepare_reveal(request)
    answer = d.key_holder.answer(reveal_request)
    logged = d.aggregator.release(answer.notice)
    d.key_holder.check_logged(answer, logged)
    response = answer.response
    grades = read_grades(d.params, request, response)

    # -- access: subject 0 (two traffic violations in P1, one in P2) asks the transport bureau
    ident = "resident-0000000"
    acc_req = d.registry.access_request(ident, P1, P2)
    acc_resp = transport.answer_access(acc_req)
    inclusions = {
        rec.envelope_hash.hex(): d.aggregator.log_inclusion(rec.envelope_hash).hex()
        for rec in d.ledger.envelopes()
        if rec.agency == transport.id
    }
    resp = codec.decode(codec.decode(acc_resp, SignedMessage).body, AccessResponse)
    pe0 = resp.periods[0]
    ev0 = pe0.events[0]
    other_date = ev0.date[:-2] + ("01" if ev0.date[-2:] != "01" else "02")
    tampered_date = dataclasses.replace(
        resp,
        periods=(
            dataclasses.replace(
                pe0, events=(dataclasses.replace(ev0, date=other_date), *pe0.events[1:])
            ),
            *resp.periods[1:],
        ),
    )
    dropped_proof = dataclasses.replace(
        resp,
        periods=(
            dataclasses.replace(
                pe0, events=(dataclasses.replace(ev0, proof=ev0.proof[:-1]), *pe0.events[1:])
            ),
            *resp.periods[1:],
        ),
    )
    rw = codec.decode(acc_resp, SignedMessage)
    unsigned = bytearray(rw.body)
    access_bad = {
        "bad_tampered_date": seal(tampered_date, transport._key).hex(),
        "bad_dropped_proof_node": seal(dropped_proof, transport._key).hex(),
        "bad_signature": codec.encode(SignedMessage(bytes(unsigned), bytes(64))).hex(),
        "bad_wrong_agency_key": seal(resp, court._key).hex(),
    }

    return {
        "description": (
            "psc protocol vectors (protocols/submit.md, ingest.md, reveal-baseline.md, "
            "access.md); generated by protocols/gen_protocol.py with fixed seeds"
        ),
        "protocol_version": 1,
        "setup": {
            "catalog": "city",
            "catalog_version": catalog.version_hash,
            "paillier_p": str(p),
            "paillier_q": str(q),
            "n_subjects": N_SUBJECTS,
            "aggregator_seed": d.aggregator._key.private_bytes_raw().hex(),
            "key_holder_seed": d.key_holder._key.private_bytes_raw().hex(),
            "registry_key": d.params.registry_key.hex(),
            "parameters": d.sealed_params.hex(),
            "agency_registrations": [r.hex() for r in d.registrations],
            "relying_party_registration": d.bank_registration.hex(),
            "setup_time": SETUP_TIME.isoformat(),
            "ingest_time": INGEST_TIME.isoformat(),
        },
        "good": good,
        "state_digest_after_good": state.hex(),
        "replays": [good[0]["envelope"], good[5]["envelope"]],
        "bad": [
            {"name": name, "envelope": env.hex(), "error": err} for name, (env, err) in bad.items()
        ],
        "reveal": {
            "period": P2,
            "request": request.hex(),
            "reveal_request": reveal_request.hex(),
            "response": response.hex(),
            "notice": answer.notice.hex(),
            "log_inclusion": logged.hex(),
            "grades": {str(s): g for s, g in sorted(grades.items())},
        },
        "access": {
            "identity": ident,
            "slot": int(d.slot_of[0]),
            "agency": transport.id,
            "request": acc_req.hex(),
            "response": acc_resp.hex(),
            "log_inclusions": inclusions,
            "events": [
                {"rule": e.rule, "date": e.date, "evidence": e.evidence}
                for pe in resp.periods
                for e in pe.events
            ],
            "bad": access_bad,
        },
        "public_key_check": public_bytes(d.aggregator._key).hex(),
    }


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
