"""Reference driver of the CKKS grading path: every party, one period, end to end.

Phases (each a few calls on the parties; keys, clock and randomness are arguments):

1. setup: the grading authority generates keys, publishes the context and the circuit,
   registers each agency's and each requester's signing key;
2. submit: each agency encrypts one dense vector per (period, retention class, counter)
   under the public context and signs an :class:`~psc.protocol.he_messages.HeSubmission`;
3. log: the aggregator forwards each signed submission; the authority verifies and logs it;
4. reveal: a registered requester signs a grade request; the authority recomputes the live
   sums from its log, runs the published circuit, floods, decrypts, releases grades.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from psc.catalog import Catalog
from psc.events import EventTable
from psc.hazmat.backends.base import IntArray
from psc.hazmat.he.circuit import GradingCircuit
from psc.hazmat.he.contexts import PublicContext
from psc.hazmat.he.evaluator import HomomorphicGrader
from psc.oracle import live_mask
from psc.parties.grading_authority import GradingAuthority
from psc.protocol.he_messages import HeSubmission, seal_submission
from psc.protocol.messages import GradeRequest
from psc.protocol.signing import new_signing_key, public_bytes, seal


@dataclass(frozen=True)
class HeRevealResult:
    """What :func:`grade_with_he` produced and what each party saw."""

    grades: dict[int, int]
    seen: dict[str, list[str]]
    circuit: GradingCircuit


def period_vectors(
    table: EventTable, periods: Sequence[int] | None = None
) -> dict[tuple[str, int, str, str], IntArray]:
    """Every dense vector the agencies of ``table`` submit on the CKKS path.

    Keys ``(catalog agency, period, retention class, counter)`` with counter ``"score"`` or
    ``"cap:<label>"``; one per period of ``periods`` (default: the table's) and per class
    and cap the agency's rules use, zero vectors included (dense: quiet agencies send too).
    """
    cat = table.catalog
    out: dict[tuple[str, int, str, str], IntArray] = {}
    zero = np.zeros(table.n_subjects, dtype=np.int64)
    for agency in cat.agencies:
        mine = table.for_agency(agency)
        rules = [r for r in cat.rules if r.agency == agency]
        for p in table.periods if periods is None else periods:
            deltas = mine.for_period(p).delta_vectors(p) if len(mine) else {}
            caps = mine.for_period(p).cap_vectors(p) if len(mine) else {}
            for cls in sorted({r.retention for r in rules}):
                out[(agency, p, cls, "score")] = deltas.get(cls, zero)
            for cls, lab in sorted({(r.retention, r.grade_cap) for r in rules if r.grade_cap}):
                out[(agency, p, cls, f"cap:{lab}")] = caps.get((cls, lab), zero)
    return out


def live_inputs(table: EventTable, at: int) -> tuple[dict[str, IntArray], dict[str, IntArray]]:
    """The live sums the circuit grades at the close of ``at`` (what the log adds up to).

    ``({"<agency>/<period>/<class>": deltas}, {cap label: live counter})``; a plaintext view
    for checks and benchmarks (the authority computes the same under encryption).
    """
    cat = table.catalog
    live = table.select(live_mask(table, at)) if len(table) else table
    subs: dict[str, IntArray] = {}
    for agency in cat.agencies:
        mine = live.for_agency(agency)
        for p in mine.periods:
            for cls, v in mine.delta_vectors(p).items():
                if np.any(v):
                    subs[f"{agency}/{p}/{cls}"] = v
    if not subs:
        subs["none"] = np.zeros(table.n_subjects, dtype=np.int64)
    caps = {lab: np.zeros(table.n_subjects, dtype=np.int64) for lab in cat.cap_labels()}
    for p in live.periods:
        for (_, lab), v in live.cap_vectors(p).items():
            caps[lab] += v
    return subs, caps


class SubmissionTarget(Protocol):
    """What an agency needs of the grading authority to encrypt for it: the catalog, the
    published context and an evaluator over it (the authority in process, or
    :class:`~psc.service.he_client.HttpGradingAuthority` with the context it fetched)."""

    catalog: Catalog

    @property
    def public(self) -> PublicContext: ...

    @property
    def grader(self) -> HomomorphicGrader: ...


def he_submission(
    authority: SubmissionTarget,
    agency: str,
    key: object,
    period: int,
    retention: str,
    counter: str,
    vector: IntArray,
    catalog_agency: str,
    *,
    randbytes: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """An agency's signed :class:`HeSubmission` of ``vector`` (agency side; public bound =
    the catalog's bound for its rules in ``retention``, never the data's)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError("key must be an Ed25519 private key")
    cat, grader = authority.catalog, authority.grader
    if counter == "score":
        be, bound = grader.scores, max(1, cat.agency_period_bound(catalog_agency, retention))
    else:
        lab = counter[4:]
        be = grader.caps
        bound = sum(
            r.max_per_period
            for r in cat.rules
            if r.agency == catalog_agency and r.retention == retention and r.grade_cap == lab
        )
    ct = be.encrypt(vector, bound=max(1, bound))
    msg = HeSubmission(
        agency,
        period,
        retention,
        counter,
        authority.public.fingerprint,
        bytes.fromhex(cat.version_hash),
        randbytes(16),
        be.serialize(ct),
    )
    return seal_submission(msg, key)


def grade_with_he(
    table: EventTable,
    at: int,
    subjects: Sequence[int],
    *,
    authority: GradingAuthority | None = None,
    purpose: str | None = None,
) -> HeRevealResult:
    """Grade ``subjects`` at the close of period ``at`` with the CKKS path (reference run).

    One agency instance per catalog agency (its catalog name as id), the registry as
    requester, one signed request for all ``subjects``.
    """
    catalog = table.catalog
    circuit = authority.circuit if authority is not None else GradingCircuit.for_catalog(catalog)
    # -- phase 1, setup: the authority's keys; agencies' and the registry's signing keys
    auth = (
        authority if authority is not None else GradingAuthority.generate(circuit, catalog=catalog)
    )
    first = min([*table.periods, at])
    auth.expect_subjects(table.n_subjects, first_period=first)
    keys = {a: new_signing_key() for a in catalog.agencies}
    for a, k in keys.items():
        auth.register_agency(a, public_bytes(k), a)
    registry = new_signing_key()
    auth.register_requester("registry", public_bytes(registry))
    seen: dict[str, list[str]] = {
        "agencies": [f"the public context ({auth.public.byte_size} bytes) and their own records"],
        "aggregator": [],
        "grading-authority": [],
        "relying-party": [],
    }
    # -- phases 2 and 3, submit and log: agencies encrypt and sign; the aggregator forwards
    vectors = period_vectors(table, range(first, max(at, *table.periods, first) + 1))
    wire = [
        he_submission(auth, a, keys[a], p, cls, counter, v, a)
        for (a, p, cls, counter), v in vectors.items()
    ]
    for data in wire:
        auth.log_submission(data)
    seen["aggregator"].append(
        f"{len(wire)} signed submissions ({sum(map(len, wire))} bytes), forwarded to the "
        "grading log; no secret key, nothing in the clear"
    )
    # -- phase 4, reveal: one signed request; the authority evaluates and decrypts
    slots = tuple(sorted(set(subjects)))
    req = GradeRequest(
        "registry", purpose or catalog.scheme.purposes[0], at, slots, os.urandom(16), b"", 0
    )
    grades = auth.reveal(seal(req, registry))
    seen["grading-authority"].append(
        f"recomputed the live sums from {len(wire)} logged submissions, ran the published "
        f"circuit, flooded and decrypted; released {len(grades)} grades"
    )
    seen["relying-party"] += [f"slot {s}: grade {circuit.labels[g]}" for s, g in grades.items()]
    return HeRevealResult(grades, seen, circuit)


def grade_table_with_he(
    table: EventTable,
    at: int,
    subjects: Sequence[int],
    *,
    authority: GradingAuthority | None = None,
) -> HeRevealResult:
    """:func:`grade_with_he` (the demo's entry point; kept for its callers)."""
    return grade_with_he(table, at, subjects, authority=authority)


#: A small catalog whose raw-score domain [6, 12] fits :data:`SMALL_PROFILE` (ratio 11 <= 12):
#: the circuit at N=16384 runs in seconds, so tests and vectors use it.  Not a real scheme.
SMALL_TEST_CATALOG = """
[scheme]
name = "he-small-test"
version = "1"
domain = "public-credit"
subject_kind = "person"
base_score = 10
min_score = 0
max_score = 20
purposes = ["credit-assessment"]
rule_domains = ["traffic", "civic"]

[[grades]]
label = "A"
min = 11.5

[[grades]]
label = "B"
min = 9.5

[[grades]]
label = "C"
min = 7.5

[[grades]]
label = "D"

[retention.month]
months = 1

[[rules]]
id = "traffic.ticket"
agency = "transport-bureau"
description = "Traffic ticket confirmed by a penalty decision"
delta = -1
domain = "traffic"
purpose = "road-safety compliance record"
legal_basis = "statutory-duty"
legal_authority = "Road Traffic Safety Law, Art. 87"
evidence_required = true
retention = "month"
data_categories = ["administrative-penalty"]
severity = "minor"
max_per_period = 2

[[rules]]
id = "traffic.drunk-driving"
agency = "transport-bureau"
description = "Penalty decision for driving under the influence of alcohol"
delta = -2
domain = "traffic"
purpose = "road-safety compliance record"
legal_basis = "statutory-duty"
legal_authority = "Road Traffic Safety Law, Art. 91"
evidence_required = true
retention = "month"
data_categories = ["administrative-penalty"]
severity = "serious"
max_per_period = 1
grade_cap = "C"

[[rules]]
id = "civic.volunteering"
agency = "civil-affairs-bureau"
description = "Certified volunteer service of at least 20 hours"
delta = 1
domain = "civic"
purpose = "recognition of voluntary service"
legal_basis = "consent"
legal_authority = "Regulations on Volunteer Service, Art. 22"
evidence_required = true
retention = "month"
data_categories = ["voluntary-service"]
severity = "positive"
max_per_period = 2
"""
