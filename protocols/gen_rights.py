"""Write ``protocols/vectors/rights.json``: consent-gate and adjustment vectors, good and ``bad_*``.

Deterministic: a fixed insecure 512-bit Paillier key given by its primes, every Ed25519 key,
nonce, salt, slot permutation and pseudonym from :func:`psc.sim.sources.seeded_randbytes`,
Paillier randomness from a seeded ``random.Random``, and a fixed clock.  Spec:
``protocols/rights.md``.  Replayed by ``tests/test_vectors_rights.py``.

Layout (all bytes in lowercase hex):

* ``setup``: as in ``protocol.json`` (catalog, primes, key seeds, sealed parameters and
  registrations, times), plus the envelopes to ingest and the ledger state digest after them;
* ``gate``: a subject credential (and ``bad_*`` ones), relying-party grade requests with
  the reason the gate gives (``ok`` or a refusal reason, with the exception class name);
* ``adjustments``: ``bad_*`` adjustments refused before the good one (state unchanged),
  the good correction with its exact log inclusion and the state digest after it,
  ``bad_*`` adjustments refused after it, and the grades revealed after it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import gmpy2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.catalog import Catalog, load_catalog, period_index
from psc.events import Event, EventTable
from psc.hazmat.backends.paillier import RandomnessPool
from psc.hazmat.paillier import _keypair_from_primes
from psc.oracle import score
from psc.parties.consent_gate import SubjectCredential
from psc.parties.relying_party import read_grades
from psc.parties.rights import Adjustment, RightsAgency, adjustment_bounds
from psc.policy.clock import SimulatedClock
from psc.policy.consent import _issue_from_parts
from psc.protocol import codec, validity
from psc.protocol.messages import ClassCiphertext, SignedMessage
from psc.protocol.signing import _signing_key_from_seed, digest, public_bytes, seal
from psc.sim.city import agency_instances
from psc.sim.rights_deployment import setup_rights
from psc.sim.sources import seeded_randbytes

OUT = Path(__file__).parent / "vectors" / "rights.json"
SEED = "psc/rights-vectors/v1"
N_SUBJECTS = 16
KEY_BITS = 512
SETUP_TIME = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
INGEST_TIME = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)
P1 = period_index(dt.date(2026, 1, 1))
NOW_PERIOD = period_index(INGEST_TIME.date())

# (population index, rule, period, day)
EVENTS = [
    (0, "court.judgment-default", P1, 12),
    (0, "tax.arrears", P1 + 1, 3),
    (1, "traffic.drunk-driving", P1, 9),
    (2, "court.judgment-default", P1, 20),
    (3, "civic.volunteering", P1 + 1, 6),
]


def primes() -> tuple[int, int]:
    rnd = random.Random(SEED + "/paillier")
    half = KEY_BITS // 2
    while True:
        p = int(gmpy2.next_prime(rnd.getrandbits(half) | (3 << (half - 2))))
        q = int(gmpy2.next_prime(rnd.getrandbits(half) | (3 << (half - 2))))
        if p != q and (p * q).bit_length() == KEY_BITS:
            return p, q


def _reseal(agency: RightsAgency, sealed: bytes, **changes: Any) -> bytes:
    adj = codec.decode(codec.decode(sealed, SignedMessage).body, Adjustment)
    return seal(dataclasses.replace(adj, **changes), agency._key)


def _out_of_range(catalog: Catalog, court: RightsAgency, sealed: bytes) -> bytes:
    """``sealed`` with slot 1 of its first delta vector one point below its adjustment range,
    proven (honestly) against a range widened by 1000: a well-formed proof, the wrong range."""
    adj = codec.decode(codec.decode(sealed, SignedMessage).body, Adjustment)
    true = validity.adjustment_ranges(catalog, court.catalog_agency, len(adj.leaves))[0]
    wide = validity.VectorRange(true.retention, "", true.lo - 1000, true.hi + 1000)
    vec = np.zeros(adj.n_subjects, dtype=np.int64)
    vec[1] = true.lo - 1
    bound = adjustment_bounds(catalog, court.catalog_agency, len(adj.leaves))[0][true.retention]
    fields = {f: getattr(adj, f) for f in validity.ADJUSTMENT_HEADER}
    ctx = validity.adjustment_context(**fields, index=0, vector=wide)
    ct, proof = court._encrypt_proven(vec, bound, wide, ctx)
    return _reseal(
        court,
        sealed,
        deltas=(ClassCiphertext(true.retention, ct), *adj.deltas[1:]),
        proofs=(proof, *adj.proofs[1:]),
    )


def build() -> dict[str, Any]:
    catalog = load_catalog("city")
    p, q = primes()
    pk, sk = _keypair_from_primes(p, q, allow_insecure=True)
    clock = SimulatedClock(SETUP_TIME)
    randbytes = seeded_randbytes(SEED)
    r = setup_rights(
        catalog,
        agency_instances(catalog),
        N_SUBJECTS,
        (pk, sk),
        clock=clock,
        desk_db=sqlite3.connect(":memory:"),
        key_holder_db=sqlite3.connect(":memory:"),
        randbytes=randbytes,
    )
    d = r.deployment
    rnd = random.Random(SEED + "/randomizers")
    for a in r.agencies:
        a.use_pool(RandomnessPool(pk, randbelow=rnd.randrange))
    clock.advance(seconds=(INGEST_TIME - SETUP_TIME).total_seconds())
    by_agency = {a.catalog_agency: a for a in r.agencies}

    def slot(i: int) -> int:
        return r.registry.slot_of(f"resident-{i:07d}")

    events = [
        Event(
            slot(i),
            rule,
            dt.date(per // 12, per % 12 + 1, day),
            digest(f"{SEED}/{i}/{rule}/{day}".encode()).hex(),
        )
        for i, rule, per, day in EVENTS
    ]
    oracle = score(EventTable.from_events(catalog, events, N_SUBJECTS), NOW_PERIOD)
    envelopes = []
    for period in (P1, P1 + 1):
        for a in r.agencies:
            mine = [
                e
                for e in events
                if e.period == period and catalog.rule(e.rule).agency == a.catalog_agency
            ]
            sealed_env = a.submit(mine, period)
            receipt = r.aggregator.ingest(sealed_env)
            a.accept_receipt(receipt)
            envelopes.append({"envelope": sealed_env.hex(), "receipt": receipt.hex()})
    state_after_envelopes = d.ledger.state_digest()

    # -- the gate: a credential, and relying-party requests with tokens ------------------
    alice = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    credential = r.registry.certify_consent_key("resident-0000000", public_bytes(alice))
    cred = codec.decode(codec.decode(credential, SignedMessage).body, SubjectCredential)
    rogue = _signing_key_from_seed(randbytes(32))
    registry_key = r.registry._key
    bad_credentials = {
        "bad_signature": (seal(cred, rogue), "InvalidMessage"),
        "bad_slot_out_of_range": (
            seal(dataclasses.replace(cred, slot=N_SUBJECTS), registry_key),
            "InvalidMessage",
        ),
    }

    def token(n: int, **kw: Any) -> bytes:
        base: dict[str, Any] = {
            "subject": cred.subject,
            "relying_party": d.bank.id,
            "purpose": d.bank_purpose,
            "domain": catalog.scheme.domain,
            "catalog_hash": catalog.version_hash,
            "issued_at": INGEST_TIME - dt.timedelta(days=1),
            "expires_at": INGEST_TIME + dt.timedelta(days=30),
            "period": NOW_PERIOD,
        }
        signer = kw.pop("key", alice)
        return _issue_from_parts(signer, token_id=bytes([n]) * 16, **(base | kw)).encode()

    def ask(consent: bytes, who: int = 0, period: int = NOW_PERIOD) -> str:
        return d.bank.request_grade(slot(who), d.bank_purpose, period, consent).hex()

    day = dt.timedelta(days=1)
    requests = [
        {
            "name": "good",
            "request": ask(token(1)),
            "expect": "ok",
            "grade": oracle.labels(catalog)[slot(0)],
        },
        {"name": "bad_missing", "request": ask(b""), "expect": "missing"},
        {
            "name": "bad_expired",
            "request": ask(
                token(2, issued_at=INGEST_TIME - 40 * day, expires_at=INGEST_TIME - day)
            ),
            "expect": "expired",
        },
        {
            "name": "bad_relying_party",
            "request": ask(token(3, relying_party="other-bank")),
            "expect": "relying-party",
        },
        {
            "name": "bad_purpose",
            "request": ask(token(4, purpose="tenancy-screening")),
            "expect": "purpose",
        },
        {"name": "bad_domain", "request": ask(token(5, domain="employment")), "expect": "domain"},
        {"name": "bad_signature", "request": ask(token(6, key=rogue)), "expect": "bad-token"},
        {"name": "bad_other_subject", "request": ask(token(7), who=1), "expect": "no-credential"},
        {
            "name": "bad_past_period",
            "request": ask(token(9), period=NOW_PERIOD - 1),
            "expect": "period",
        },
        {
            "name": "bad_too_long",
            "request": ask(token(10, expires_at=INGEST_TIME + 36500 * day)),
            "expect": "too-long",
        },
        {
            "name": "bad_subject_field",
            "request": ask(token(8, subject="subject-" + "0" * 24)),
            "expect": "subject",
        },
    ]

    # -- adjustments: a correction of resident 0's judgment --------------------------------
    court, transport = by_agency["intermediate-court"], by_agency["transport-bureau"]
    env = r.aggregator.ledger.envelope_for(court.id, P1)
    assert env is not None
    (leaf,) = [idx for e, _, idx in court._committed[P1].openings[slot(0)]]
    other_leaf = next(
        i for i in range(court._committed[P1].size) if i != leaf
    )  # any leaf: the aggregator cannot tell whose
    order = r.registry.adjustment_order(
        "resident-0000000",
        court.id,
        "correction",
        case="rights-1",
        original=env.envelope_hash,
        leaves=[leaf],
    )
    (good,) = court.compensate(order)
    (twin,) = court.compensate(order)
    msg = codec.decode(codec.decode(good, SignedMessage).body, Adjustment)
    w = codec.decode(good, SignedMessage)
    flipped = bytearray(w.signature)
    flipped[0] ^= 1
    right = adjustment_bounds(catalog, court.catalog_agency, 1)[0][msg.deltas[0].retention]
    wide = court._backend.encrypt(np.zeros(N_SUBJECTS, dtype=np.int64), bound=right + 1)
    rogue_agency = _signing_key_from_seed(randbytes(32))
    before = {
        "bad_signature": (codec.encode(SignedMessage(w.body, bytes(flipped))), "InvalidMessage"),
        "bad_other_agency_signature": (seal(msg, transport._key), "InvalidMessage"),
        "bad_not_the_authors_envelope": (
            seal(dataclasses.replace(msg, agency=transport.id), transport._key),
            "InvalidMessage",
        ),
        "bad_unregistered_agency": (
            seal(dataclasses.replace(msg, agency="rogue-agency"), rogue_agency),
            "UnknownParty",
        ),
        "bad_leaf_beyond_commitment": (_reseal(court, good, leaves=(10_000,)), "InvalidMessage"),
        "bad_wrong_period": (_reseal(court, good, period=P1 + 1), "InvalidMessage"),
        "bad_catalog_version": (_reseal(court, good, catalog_version=bytes(32)), "CatalogMismatch"),
        "bad_stale_effective_period": (
            _reseal(court, good, effective_period=NOW_PERIOD - 1),
            "StalePeriod",
        ),
        "bad_wrong_slot_count": (_reseal(court, good, n_subjects=N_SUBJECTS + 1), "InvalidMessage"),
        "bad_missing_class": (
            _reseal(court, good, deltas=(), proofs=msg.proofs[len(msg.deltas) :]),
            "InvalidMessage",
        ),
        # a court only penalizes: an adjustment may give points back, never take them
        "bad_slot_outside_adjustment_range": (_out_of_range(catalog, court, good), "InvalidProof"),
        # proofs are bound to every field: the same proofs under a fresh nonce fail
        "bad_proof_of_another_adjustment": (
            _reseal(court, good, nonce=bytes(range(16))),
            "InvalidProof",
        ),
        "bad_wrong_bound": (
            _reseal(
                court,
                good,
                deltas=(ClassCiphertext(msg.deltas[0].retention, court._backend.serialize(wide)),),
            ),
            "InvalidMessage",
        ),
    }
    inclusion = r.aggregator.ingest_adjustment(good)
    court.accept_adjustment(good, inclusion)
    state_after_good = d.ledger.state_digest()
    after = {
        # the same leaf under another order (a twin under the same order is idempotent)
        "bad_duplicate_leaf": (
            _reseal(court, twin, order=digest(b"another order")),
            "DuplicateSubmission",
        ),
        "bad_replayed_nonce": (_reseal(court, good, leaves=(other_leaf,)), "ReplayedNonce"),
    }
    grade_request = r.registry.grade_request(range(N_SUBJECTS), NOW_PERIOD)
    answer = d.key_holder.answer(d.aggregator.prepare_reveal(grade_request))
    d.key_holder.check_logged(answer, d.aggregator.release(answer.notice))
    grades = read_grades(d.params, grade_request, answer.response)

    def cases(table: dict[str, tuple[bytes, str]], field: str) -> list[dict[str, str]]:
        return [{"name": k, field: v.hex(), "error": e} for k, (v, e) in table.items()]

    return {
        "description": (
            "psc rights vectors (protocols/rights.md): consent gate and compensating "
            "adjustments; generated by protocols/gen_rights.py with fixed seeds"
        ),
        "protocol_version": 1,
        "setup": {
            "catalog": "city",
            "catalog_version": catalog.version_hash,
            "paillier_p": str(p),
            "paillier_q": str(q),
            "n_subjects": N_SUBJECTS,
            "aggregator_seed": r.aggregator._key.private_bytes_raw().hex(),
            "key_holder_seed": d.key_holder._key.private_bytes_raw().hex(),
            "registry_key": d.params.registry_key.hex(),
            "parameters": d.sealed_params.hex(),
            "agency_registrations": [x.hex() for x in d.registrations],
            "relying_party_registration": d.bank_registration.hex(),
            "setup_time": SETUP_TIME.isoformat(),
            "ingest_time": INGEST_TIME.isoformat(),
            "envelopes": envelopes,
            "state_digest_after_envelopes": state_after_envelopes.hex(),
        },
        "gate": {
            "credential": credential.hex(),
            "bad_credentials": cases(bad_credentials, "credential"),
            "requests": requests,
        },
        "adjustments": {
            "original": env.envelope_hash.hex(),
            "bad_before": cases(before, "adjustment"),
            "good": {"adjustment": good.hex(), "log_inclusion": inclusion.hex()},
            "state_digest_after_good": state_after_good.hex(),
            "bad_after": cases(after, "adjustment"),
            "grade_request": grade_request.hex(),
            "grades_after": {str(s): g for s, g in sorted(grades.items())},
            "corrected_slot": slot(0),
        },
    }


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
