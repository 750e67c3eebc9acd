"""A dishonest agency (issue 11): every slot it contributes is proven within its catalog
range, so it cannot move a score beyond its rules, make a block undecryptable, or erase
another agency's grade cap.

The attacker is a registered agency with its real signing key: it builds the envelope
itself, encrypts whatever it likes under the catalog's declared bound, and sends the
strongest validity proof the protocol lets it make (the honest prover's algorithm run on
its false values).  Every attack must be refused at ingest with nothing changed.

First run against ``ebb0b87`` (before validity proofs): the three attacks of the issue were
accepted (each test failed with "DID NOT RAISE").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from typing import Any

import numpy as np
import pytest
from gmpy2 import mpz

from psc.catalog import load_catalog, period_index
from psc.exceptions import InvalidMessage
from psc.hazmat.backends.paillier import BlockOpening, PackedCiphertext, RandomnessPool
from psc.parties.agency import Agency
from psc.protocol import codec
from psc.protocol.messages import SignedMessage, Submission
from psc.protocol.parameters import cap_bounds, delta_bounds
from psc.protocol.signing import seal
from psc.sim.city import agency_instances
from psc.sim.deployment import Deployment, setup
from psc.sim.sources import SimClock, seeded_randbytes
from psc.testing import insecure_keypair

N_SUBJECTS = 40
NOW = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)
PERIOD = period_index(NOW.date())


@pytest.fixture
def deployment() -> Deployment:
    catalog = load_catalog("city")
    clock = SimClock(NOW)
    d = setup(
        catalog,
        agency_instances(catalog),
        N_SUBJECTS,
        insecure_keypair(3, 512),
        clock=clock,
        randbytes=seeded_randbytes("psc/attacks/agency"),
    )
    rnd = random.Random("psc/attacks/agency")
    for a in d.agencies:
        a.use_pool(RandomnessPool(d.params.public_key, randbelow=rnd.randrange))
    return d


def agency(d: Deployment, catalog_agency: str) -> Agency:
    return next(a for a in d.agencies if a.catalog_agency == catalog_agency)


def _raw_encrypt(
    a: Agency, values: np.ndarray, bound: int, rng: random.Random
) -> tuple[PackedCiphertext, tuple[BlockOpening, ...]]:
    """Pack any integers (no bound check: the attacker's own code) and encrypt them."""
    pk, layout = a.params.public_key, a.params.layout
    S, w = layout.slots, layout.slot_bits
    blocks, openings = [], []
    for j in range(0, values.size, S):
        m = sum(int(v) << (w * i) for i, v in enumerate(values[j : j + S])) % int(pk.n)
        r, rn = pk.random_r_rn(rng.randrange)
        blocks.append(pk.raw_encrypt(m, rn))
        openings.append(BlockOpening(mpz(m), r))
    ct = PackedCiphertext(pk.fingerprint, layout, int(values.size), bound, tuple(blocks))
    return ct, tuple(openings)


def forge(
    a: Agency, overrides: dict[tuple[str, str], dict[int, int]], period: int = PERIOD
) -> bytes:
    """The attacker's envelope: zeros everywhere but ``overrides[(class, cap)][slot]``, each
    vector declared under its catalog bound and 'proven' by the honest algorithm run on
    the false values (where the protocol has proofs)."""
    honest = codec.decode(codec.decode(a.submit([], period), SignedMessage).body, Submission)
    a._committed.pop(period)  # the attacker re-submits its own period
    cat, rng = a.params.catalog, random.Random(f"forge/{a.id}")
    bounds = {(c, ""): b for c, b in delta_bounds(cat, a.catalog_agency).items()}
    bounds.update(cap_bounds(cat, a.catalog_agency))
    vectors: list[
        tuple[tuple[str, str], PackedCiphertext, tuple[BlockOpening, ...], np.ndarray]
    ] = []
    for key, bound in bounds.items():
        v = np.zeros(N_SUBJECTS, dtype=np.int64)
        for slot, value in overrides.get(key, {}).items():
            v[slot] = value
        ct, ops = _raw_encrypt(a, v, bound, rng)
        vectors.append((key, ct, ops, v))
    be = a._backend
    changes: dict[str, Any] = {
        "deltas": tuple(
            dataclasses.replace(d, ciphertext=be.serialize(ct))
            for d, (_, ct, _, _) in zip(honest.deltas, vectors, strict=False)
        ),
        "caps": tuple(
            dataclasses.replace(c, ciphertext=be.serialize(ct))
            for c, (_, ct, _, _) in zip(honest.caps, vectors[len(honest.deltas) :], strict=True)
        ),
    }
    if hasattr(honest, "proofs"):
        changes["proofs"] = tuple(_cheating_proofs(a, honest, vectors))
    return seal(dataclasses.replace(honest, **changes), a._key)


def _cheating_proofs(a: Agency, sub: Any, vectors: list[Any]) -> list[bytes]:
    from psc.hazmat.proofs.range import _prove
    from psc.protocol import validity

    p, out = a.params, []
    for index, vr in enumerate(validity.vector_ranges(p.catalog, a.catalog_agency)):
        key, ct, ops, values = vectors[index]
        assert key == (vr.retention, vr.cap)
        ctx = validity.vector_context(
            agency=sub.agency,
            period=sub.period,
            catalog_version=sub.catalog_version,
            nonce=sub.nonce,
            n_subjects=sub.n_subjects,
            commitment_root=sub.commitment_root,
            commitment_size=sub.commitment_size,
            created_at=sub.created_at,
            index=index,
            vector=vr,
        )
        proof = _prove(
            p.public_key,
            p.layout,
            [int(c) for c in ct.blocks],
            ops,
            [int(x) for x in values],
            [vr.lo] * N_SUBJECTS,
            [vr.hi] * N_SUBJECTS,
            ctx,
            randbelow=random.Random(index).randrange,
            pool=None,
            digit_bits=6,
            honest=False,
        )
        out.append(proof.to_bytes(p.public_key, p.layout))
    return out


def refused(d: Deployment, envelope: bytes, agency_id: str) -> InvalidMessage:
    before = d.ledger.state_digest()
    with pytest.raises(InvalidMessage) as info:
        d.aggregator.ingest(envelope)
    assert d.ledger.state_digest() == before, "a refused envelope changed the state"
    assert type(info.value).__name__ == "InvalidProof"
    assert agency_id in str(info.value)
    return info.value


def test_over_range_delta_is_refused(deployment: Deployment) -> None:
    """Issue 11: civil affairs (+10 allowed per slot and period) adds +150 and -150."""
    a = agency(deployment, "civil-affairs-bureau")
    cls = next(iter(delta_bounds(deployment.params.catalog, a.catalog_agency)))
    err = refused(deployment, forge(a, {(cls, ""): {0: 150, 1: -150}}), a.id)
    assert "[0, 10]" in str(err)


def test_overflowing_value_is_refused(deployment: Deployment) -> None:
    """Issue 11: 10^6 in one slot would make the whole block fail to decrypt (a denial of
    service for every subject packed with it)."""
    a = agency(deployment, "intermediate-court")
    cls = next(iter(delta_bounds(deployment.params.catalog, a.catalog_agency)))
    refused(deployment, forge(a, {(cls, ""): {5: 10**6}}), a.id)


def test_negative_cap_counter_is_refused(deployment: Deployment) -> None:
    """Issue 11: -1 in a cap counter would erase another agency's grade cap."""
    a = agency(deployment, "transport-bureau")
    key = next(iter(cap_bounds(deployment.params.catalog, a.catalog_agency)))
    refused(deployment, forge(a, {key: {2: -1}}), a.id)


def test_non_zero_padding_slot_is_refused(deployment: Deployment) -> None:
    """A value hidden in the last block's padding slots (past n_subjects) would make that
    block undecryptable: padding is proven zero."""
    a = agency(deployment, "civil-affairs-bureau")
    p = deployment.params
    cls = next(iter(delta_bounds(p.catalog, a.catalog_agency)))
    honest = codec.decode(codec.decode(a.submit([], PERIOD), SignedMessage).body, Submission)
    a._committed.pop(PERIOD)
    rng = random.Random(1)
    v = np.zeros(p.layout.blocks(N_SUBJECTS) * p.layout.slots, dtype=np.int64)
    v[N_SUBJECTS] = 7  # the first padding slot
    ct, _ = _raw_encrypt(a, v, delta_bounds(p.catalog, a.catalog_agency)[cls], rng)
    ct = PackedCiphertext(ct.key_fingerprint, ct.layout, N_SUBJECTS, ct.bound, ct.blocks)
    forged = dataclasses.replace(
        honest, deltas=(dataclasses.replace(honest.deltas[0], ciphertext=a._backend.serialize(ct)),)
    )
    refused(deployment, seal(forged, a._key), a.id)


def test_proof_for_another_envelope_is_refused(deployment: Deployment) -> None:
    """An honest proof replayed under a fresh nonce (or onto another envelope) fails."""
    a = agency(deployment, "civil-affairs-bureau")
    env = codec.decode(codec.decode(a.submit([], PERIOD), SignedMessage).body, Submission)
    refused(deployment, seal(dataclasses.replace(env, nonce=bytes(16)), a._key), a.id)
    refused(deployment, seal(dataclasses.replace(env, created_at=env.created_at - 1), a._key), a.id)


def test_replayed_honest_proof_on_other_ciphertexts_is_refused(deployment: Deployment) -> None:
    """The ciphertexts of a malicious envelope with the proofs of an honest one."""
    a = agency(deployment, "civil-affairs-bureau")
    cls = next(iter(delta_bounds(deployment.params.catalog, a.catalog_agency)))
    honest = codec.decode(codec.decode(a.submit([], PERIOD), SignedMessage).body, Submission)
    a._committed.pop(PERIOD)
    bad = codec.decode(
        codec.decode(forge(a, {(cls, ""): {0: 150}}), SignedMessage).body, Submission
    )
    mixed = dataclasses.replace(honest, deltas=bad.deltas)
    refused(deployment, seal(mixed, a._key), a.id)


def test_truncated_or_missing_proof_is_refused(deployment: Deployment) -> None:
    a = agency(deployment, "transport-bureau")
    env = codec.decode(codec.decode(a.submit([], PERIOD), SignedMessage).body, Submission)
    cut = (env.proofs[0][:-1], *env.proofs[1:])
    refused(deployment, seal(dataclasses.replace(env, proofs=cut), a._key), a.id)
    empty = (b"", *env.proofs[1:])
    refused(deployment, seal(dataclasses.replace(env, proofs=empty), a._key), a.id)


def test_honest_envelopes_are_still_accepted(deployment: Deployment) -> None:
    a = agency(deployment, "civil-affairs-bureau")
    receipt = deployment.aggregator.ingest(a.submit([], PERIOD))
    assert a.accept_receipt(receipt).period == PERIOD
