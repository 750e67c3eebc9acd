"""Hypothesis strategies for psc: catalogs, events, dense delta vectors, scores and keys.

This is the only psc module that imports :mod:`hypothesis`; nothing else in the library
depends on it.  Every strategy is a plural noun with keyword-only arguments and small
defaults, so property tests stay fast.  Arguments are checked when the strategy is
*built*: a bad one raises :class:`hypothesis.errors.InvalidArgument` naming the argument
and the allowed range, before any example is drawn.

.. warning::

   :func:`paillier_keypairs` and :func:`insecure_keypair` produce **INSECURE TEST KEYS**:
   tiny moduli (512 bits by default) whose primes are derived deterministically from a
   small public seed with :class:`random.Random`.  Anyone can recompute them.  They exist
   only so property tests run in seconds; never encrypt real data under them.
   :class:`psc.hazmat.backends.paillier.PackedPaillier` refuses them unless the caller passes
   ``allow_insecure_key=True``.

Requires the ``dev`` extra (``pip install 'psc[dev]'``), which brings hypothesis; without
it, importing this module raises an ``ImportError`` that says so.

Generated catalogs are valid by construction (they go through
:func:`psc.catalog.catalog_from_dict`, so a strategy that drifts from the format fails
loudly) and never name a sensitive category: their ids and texts come from a fixed neutral
vocabulary.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import gmpy2
import numpy as np

try:
    from hypothesis import strategies as st
    from hypothesis.errors import InvalidArgument
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "psc.testing needs hypothesis, which is part of psc's dev extra and not of the "
        "library itself: install it with  pip install 'psc[dev]'  (or pip install hypothesis)"
    ) from exc

from psc.catalog import LEGAL_BASES, Catalog, catalog_from_dict, parse_period, period_start
from psc.events import Event, EventTable, IntArray
from psc.hazmat.packing import GUARD_BITS, MAX_SLOT_BITS, SlotLayout
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey, _keypair_from_primes

__all__ = [
    "DEFAULT_PERIODS",
    "catalog_documents",
    "catalogs",
    "contributions",
    "delta_vectors",
    "event_tables",
    "events",
    "insecure_keypair",
    "paillier_keypairs",
    "scores",
    "slot_layouts",
]

#: Twelve periods (2025-01 .. 2025-12), the default window :func:`events` draws from.
DEFAULT_PERIODS = range(parse_period("2025-01"), parse_period("2026-01"))

#: Grade labels, highest first; a catalog with ``G`` grades uses the last ``G`` of them.
_LABELS = ("AAA", "AA", "A", "B", "C", "D", "E", "F")
_AGENCIES = ("tax-bureau", "intermediate-court", "transport-bureau", "utility-company")
_CATEGORIES = ("administrative-penalty", "tax-record", "court-judgment", "contract-performance")
_NEGATIVE_SEVERITIES = ("minor", "moderate", "serious")
_MAX_CATALOG_DELTA = 10_000  # psc.catalog refuses |delta| above this
_INT64_BOUND = (1 << (MAX_SLOT_BITS - 1)) - 1  # the largest value a slot can carry


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name} must be an int in {lo}..{hi}, got {value!r}")
    if not lo <= value <= hi:
        raise InvalidArgument(f"{name} must be in {lo}..{hi}, got {value}")
    return value


def _check_order(lo_name: str, lo: int, hi_name: str, hi: int) -> None:
    if lo > hi:
        raise InvalidArgument(f"{lo_name}={lo} must not exceed {hi_name}={hi}")


def _boundary_ints(lo: int, hi: int, *boundaries: int) -> st.SearchStrategy[int]:
    """Integers in ``[lo, hi]`` that hit the given boundary values often."""
    edges = sorted({b for b in (lo, hi, *boundaries) if lo <= b <= hi})
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


# ----------------------------------------------------------------------------------------
# catalogs


def catalog_documents(
    *,
    min_rules: int = 1,
    max_rules: int = 6,
    max_grades: int = 6,
    max_retention_classes: int = 3,
    max_months: int = 24,
    max_abs_delta: int = 50,
    max_per_period: int = 3,
    grade_caps: bool = True,
) -> st.SearchStrategy[dict[str, Any]]:
    """Parsed-TOML documents (plain dicts) of valid catalogs; see :func:`catalogs`.

    Useful to test the loader itself: mutate one field and check what it reports.
    """
    _check_int("min_rules", min_rules, 1, 64)
    _check_int("max_rules", max_rules, 1, 64)
    _check_order("min_rules", min_rules, "max_rules", max_rules)
    _check_int("max_grades", max_grades, 2, len(_LABELS))
    _check_int("max_retention_classes", max_retention_classes, 1, 16)
    _check_int("max_months", max_months, 1, 600)
    _check_int("max_abs_delta", max_abs_delta, 1, _MAX_CATALOG_DELTA)
    _check_int("max_per_period", max_per_period, 1, 1000)
    if not isinstance(grade_caps, bool):
        raise InvalidArgument(f"grade_caps must be a bool, got {grade_caps!r}")

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        n_grades = draw(st.integers(2, max_grades))
        labels = _LABELS[len(_LABELS) - n_grades :]  # highest first
        # Score bounds wide enough for distinct thresholds, narrow enough that a few
        # events move a score across bands and into the clamps.
        lo = draw(st.integers(-200, 200))
        span = draw(st.integers(n_grades, 4 * max_abs_delta + 3 * n_grades))
        hi = lo + span
        base = draw(_boundary_ints(lo, hi, (lo + hi) // 2))
        cuts = draw(
            st.lists(
                st.integers(lo, hi - 1), min_size=n_grades - 1, max_size=n_grades - 1, unique=True
            )
        )
        thresholds = sorted((c + 0.5 for c in cuts), reverse=True)
        grades: list[dict[str, Any]] = [
            {"label": lab, "min": t, "description": f"band {lab}"}
            for lab, t in zip(labels, thresholds, strict=False)
        ]
        grades.append({"label": labels[-1], "description": f"band {labels[-1]}"})

        n_classes = draw(st.integers(1, max_retention_classes))
        retention = {
            f"class-{i}": {"months": draw(_boundary_ints(1, max_months)), "description": ""}
            for i in range(n_classes)
        }
        domains = ["credit-a", "credit-b"]

        any_delta = _boundary_ints(-max_abs_delta, max_abs_delta, -1, 0, 1)
        nonzero_delta = any_delta.filter(lambda d: d != 0)
        rules: list[dict[str, Any]] = []
        n_rules = draw(st.integers(min_rules, max_rules))
        for i in range(n_rules):
            cap: str | None = None
            if grade_caps and draw(st.integers(0, 3)) == 0:
                cap = draw(st.sampled_from(labels[1:]))  # a cap at the top band is refused
            # a rule with delta 0 is only valid as a pure grade cap
            delta = draw(any_delta if cap is not None else nonzero_delta)
            severity = "positive" if delta > 0 else draw(st.sampled_from(_NEGATIVE_SEVERITIES))
            rule: dict[str, Any] = {
                "id": f"rule-{i}",
                "agency": draw(st.sampled_from(_AGENCIES)),
                "description": f"test rule {i}: an officially recorded event",
                "delta": delta,
                "domain": draw(st.sampled_from(domains)),
                "purpose": "credit compliance record",
                "legal_basis": draw(st.sampled_from(sorted(LEGAL_BASES))),
                "legal_authority": "Test Regulation, Art. 1",
                "evidence_required": True,
                "retention": draw(st.sampled_from(sorted(retention))),
                "data_categories": [draw(st.sampled_from(_CATEGORIES))],
                "severity": severity,
                "max_per_period": draw(_boundary_ints(1, max_per_period)),
            }
            if cap is not None:
                rule["grade_cap"] = cap
            rules.append(rule)

        return {
            "scheme": {
                "name": "test-scheme",
                "version": "0",
                "domain": "test-credit",
                "subject_kind": draw(st.sampled_from(["person", "company"])),
                "base_score": base,
                "min_score": lo,
                "max_score": hi,
                "purposes": ["credit-assessment"],
                "rule_domains": domains,
            },
            "grades": grades,
            "retention": retention,
            "rules": rules,
        }

    return build()


def catalogs(
    *,
    min_rules: int = 1,
    max_rules: int = 6,
    max_grades: int = 6,
    max_retention_classes: int = 3,
    max_months: int = 24,
    max_abs_delta: int = 50,
    max_per_period: int = 3,
    grade_caps: bool = True,
) -> st.SearchStrategy[Catalog]:
    """Random valid :class:`~psc.catalog.Catalog` objects.

    Each has 2..``max_grades`` bands with half-integer thresholds strictly inside the
    score bounds, 1..``max_retention_classes`` retention classes of 1..``max_months``
    months, and ``min_rules``..``max_rules`` rules with deltas of both signs in
    ``[-max_abs_delta, max_abs_delta]`` (the extremes, ``+-1`` and the score-bound edges
    are drawn often), ``max_per_period`` in ``1..max_per_period`` and, if ``grade_caps``,
    optional grade caps (a capping rule may have delta 0).
    """
    return catalog_documents(
        min_rules=min_rules,
        max_rules=max_rules,
        max_grades=max_grades,
        max_retention_classes=max_retention_classes,
        max_months=max_months,
        max_abs_delta=max_abs_delta,
        max_per_period=max_per_period,
        grade_caps=grade_caps,
    ).map(lambda doc: catalog_from_dict(doc, source="<psc.testing.catalogs>"))


# ----------------------------------------------------------------------------------------
# events


def _check_periods(periods: Any) -> tuple[int, ...]:
    if isinstance(periods, str | bytes) or not isinstance(periods, range | Sequence):
        raise InvalidArgument(
            f"periods must be a range or sequence of period indices, got {periods!r}"
        )
    out = tuple(periods)
    if not out:
        raise InvalidArgument("periods must name at least one period index")
    for p in out:
        _check_int("each period", p, 0, 9999 * 12 + 11)
    return out


def events(
    catalog: Catalog,
    *,
    n_subjects: int = 8,
    periods: range | Sequence[int] = DEFAULT_PERIODS,
    max_events: int = 40,
) -> st.SearchStrategy[list[Event]]:
    """Lists of :class:`~psc.events.Event` valid for ``catalog``.

    Subjects are slots ``0..n_subjects-1``, periods are drawn from ``periods`` (indices as
    :func:`psc.catalog.period_index` gives them), the date is a day of that month, and the
    evidence is a random 64-hex digest.  Events come in bursts of one rule for one subject
    in one period, so ``max_per_period`` is reached often but never exceeded.  At most
    ``max_events`` events are drawn.
    """
    if not isinstance(catalog, Catalog):
        raise InvalidArgument(f"catalog must be a psc.catalog.Catalog, got {catalog!r}")
    _check_int("n_subjects", n_subjects, 1, 1 << 20)
    pers = _check_periods(periods)
    _check_int("max_events", max_events, 0, 10_000)
    rules = catalog.rules

    @st.composite
    def build(draw: st.DrawFn) -> list[Event]:
        bursts = draw(
            st.lists(
                st.tuples(
                    st.integers(0, n_subjects - 1),
                    st.integers(0, len(rules) - 1),
                    st.sampled_from(pers),
                    st.integers(1, 1000),
                ),
                max_size=max_events,
            )
        )
        used: Counter[tuple[int, int, int]] = Counter()
        out: list[Event] = []
        for subject, ri, period, want in bursts:
            key = (subject, ri, period)
            take = min(want, rules[ri].max_per_period - used[key], max_events - len(out))
            used[key] += max(take, 0)
            first = period_start(period)
            for _ in range(max(take, 0)):
                day = draw(st.integers(1, 28))
                evidence = draw(st.binary(min_size=32, max_size=32)).hex()
                out.append(Event(subject, rules[ri].id, first.replace(day=day), evidence))
        return out

    return build()


def event_tables(
    catalog: Catalog | None = None,
    *,
    n_subjects: int = 8,
    periods: range | Sequence[int] = DEFAULT_PERIODS,
    max_events: int = 40,
) -> st.SearchStrategy[EventTable]:
    """:class:`~psc.events.EventTable` objects built from :func:`events`.

    With ``catalog=None`` the catalog is drawn from :func:`catalogs` too (read it back
    from ``table.catalog``).
    """
    if catalog is None:
        _check_int("n_subjects", n_subjects, 1, 1 << 20)
        _check_periods(periods)
        _check_int("max_events", max_events, 0, 10_000)
        return catalogs().flatmap(
            lambda cat: event_tables(
                cat, n_subjects=n_subjects, periods=periods, max_events=max_events
            )
        )
    return events(catalog, n_subjects=n_subjects, periods=periods, max_events=max_events).map(
        lambda evs: EventTable.from_events(catalog, evs, n_subjects)
    )


# ----------------------------------------------------------------------------------------
# vectors and scores


def delta_vectors(
    *, size: int = 16, bound: int = 50, min_size: int | None = None
) -> st.SearchStrategy[IntArray]:
    """Dense int64 vectors with entries in ``[-bound, bound]``; ``+-bound`` and 0 drawn often.

    The length is ``size``, or drawn from ``min_size..size`` when ``min_size`` is given.
    """
    _check_int("size", size, 1, 1 << 16)
    _check_int("bound", bound, 0, _INT64_BOUND)
    lo = size if min_size is None else _check_int("min_size", min_size, 1, size)
    elements = _boundary_ints(-bound, bound, 0)
    return st.lists(elements, min_size=lo, max_size=size).map(
        lambda xs: np.array(xs, dtype=np.int64)
    )


def scores(*, min_value: int = 0, max_value: int = 1200) -> st.SearchStrategy[int]:
    """Integer scores in ``[min_value, max_value]``, with both ends drawn often."""
    _check_int("min_value", min_value, -(1 << 62), 1 << 62)
    _check_int("max_value", max_value, -(1 << 62), 1 << 62)
    _check_order("min_value", min_value, "max_value", max_value)
    return _boundary_ints(min_value, max_value)


def slot_layouts(
    *, key_bits: int = 512, min_slot_bits: int = 2, max_slot_bits: int = MAX_SLOT_BITS
) -> st.SearchStrategy[SlotLayout]:
    """Layouts :meth:`SlotLayout.for_key` gives a ``key_bits`` modulus, for drawn slot widths."""
    _check_int("key_bits", key_bits, GUARD_BITS + 4, 16384)
    _check_int("min_slot_bits", min_slot_bits, 2, MAX_SLOT_BITS)
    _check_int("max_slot_bits", max_slot_bits, 2, MAX_SLOT_BITS)
    _check_order("min_slot_bits", min_slot_bits, "max_slot_bits", max_slot_bits)
    if key_bits - 1 - GUARD_BITS < min_slot_bits:
        raise InvalidArgument(
            f"a {key_bits}-bit key has no room for a {min_slot_bits}-bit slot plus "
            f"{GUARD_BITS} guard bits; use key_bits >= {min_slot_bits + GUARD_BITS + 1}"
        )
    top = min(max_slot_bits, key_bits - 1 - GUARD_BITS)
    return _boundary_ints(min_slot_bits, top).map(lambda w: SlotLayout.for_key(key_bits, w))


# ----------------------------------------------------------------------------------------
# INSECURE test keys


@lru_cache(maxsize=64)
def insecure_keypair(
    seed: int = 0, bits: int = 512
) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    """An INSECURE Paillier keypair whose ``bits``-bit modulus is a function of ``seed``.

    ``p`` and ``q`` are ``gmpy2.next_prime`` of ``random.Random(f"psc-test-key/{bits}/{seed}")``
    draws with their top two bits set, so ``n = p*q`` has exactly ``bits`` bits.  Anyone can
    recompute the primes: for tests and test vectors only.  Cached, so a test suite pays
    for each key once.
    """
    _check_int("bits", bits, 2 * GUARD_BITS, 8192)
    _check_int("seed", seed, 0, 1 << 64)
    rng = random.Random(f"psc-test-key/{bits}/{seed}")
    half = (bits // 2, bits - bits // 2)

    def prime(size: int, avoid: int = 0) -> int:
        while True:
            x = rng.getrandbits(size) | (3 << (size - 2))
            p = int(gmpy2.next_prime(x))
            if p.bit_length() == size and p != avoid:
                return p

    p = prime(half[0])
    q = prime(half[1], avoid=p)
    return _keypair_from_primes(p, q, allow_insecure=True)


def paillier_keypairs(
    *, bits: int = 512, seeds: int = 4
) -> st.SearchStrategy[tuple[PaillierPublicKey, PaillierPrivateKey]]:
    """INSECURE Paillier keypairs for tests: ``insecure_keypair(seed, bits)`` for a drawn seed.

    Drawn from only ``seeds`` distinct keys so the (cached) prime search runs a few times
    per test session.  **Never use these keys for real data**; see the module warning.
    """
    _check_int("bits", bits, 2 * GUARD_BITS, 8192)
    _check_int("seeds", seeds, 1, 1024)
    return st.integers(0, seeds - 1).map(lambda seed: insecure_keypair(seed, bits))


# ----------------------------------------------------------------------------------------
# CKKS grading deployments (tests of psc.hazmat.he and tests/attacks): not strategies


class HeDeployment:
    """A grading authority over ``psc.hazmat.he.SMALL_TEST_CATALOG`` with its two agencies
    (``transport-bureau``, ``civil-affairs-bureau``) and two requesters (``registry``,
    ``bank``) registered, for tests.  Signing keys come from fixed seeds (INSECURE)."""

    def __init__(self, authority: Any, n_subjects: int) -> None:
        from psc.protocol.signing import _signing_key_from_seed, public_bytes

        self.authority = authority
        self.n_subjects = n_subjects
        authority.expect_subjects(n_subjects, first_period=0)
        self.keys = {
            name: _signing_key_from_seed(bytes([i + 1]) * 32)
            for i, name in enumerate(
                ("transport-bureau", "civil-affairs-bureau", "registry", "bank")
            )
        }
        for agency in ("transport-bureau", "civil-affairs-bureau"):
            authority.register_agency(agency, public_bytes(self.keys[agency]), agency)
        for requester in ("registry", "bank"):
            authority.register_requester(requester, public_bytes(self.keys[requester]))
        self._nonce = 0

    def nonce(self) -> bytes:
        self._nonce += 1
        return self._nonce.to_bytes(16, "big")

    def submission(self, agency: str, period: int, counter: str, vector: IntArray) -> bytes:
        """The agency's signed submission of ``vector`` (class ``month``)."""
        from psc.sim.he_driver import he_submission

        return he_submission(
            self.authority,
            agency,
            self.keys[agency],
            period,
            "month",
            counter,
            np.asarray(vector, dtype=np.int64),
            agency,
            randbytes=lambda n: self.nonce()[:n],
        )

    def submit_scores(self, period: int, raw: IntArray, caps: IntArray | None = None) -> None:
        """Log what makes the live raw scores at ``period`` equal ``raw`` (in 6..12) and the
        drunk-driving counter equal ``caps``: transport the negative part, civic the rest."""
        d = np.asarray(raw, dtype=np.int64) - 10
        c = np.zeros(d.size, dtype=np.int64) if caps is None else np.asarray(caps)
        for agency, counter, v in (
            ("transport-bureau", "score", np.minimum(d, 0)),
            ("transport-bureau", "cap:C", c),
            ("civil-affairs-bureau", "score", np.maximum(d, 0)),
        ):
            self.authority.log_submission(self.submission(agency, period, counter, v))

    def request(
        self,
        slots: Sequence[int],
        period: int,
        *,
        requester: str = "bank",
        purpose: str = "credit-assessment",
        nonce: bytes | None = None,
    ) -> bytes:
        """A signed grade request."""
        from psc.protocol.messages import GradeRequest
        from psc.protocol.signing import seal

        req = GradeRequest(requester, purpose, period, tuple(slots), nonce or self.nonce(), b"", 0)
        return seal(req, self.keys[requester])


def he_small_deployment(n_subjects: int, *, max_queries: int = 64) -> HeDeployment:
    """A fresh :class:`HeDeployment` (new CKKS keys at N=16384: a few seconds)."""
    from psc.catalog import parse_catalog
    from psc.hazmat.he.circuit import GradingCircuit
    from psc.parties.grading_authority import GradingAuthority
    from psc.sim.he_driver import SMALL_TEST_CATALOG

    cat = parse_catalog(SMALL_TEST_CATALOG)
    auth = GradingAuthority.generate(
        GradingCircuit.for_catalog(cat), catalog=cat, max_queries=max_queries
    )
    return HeDeployment(auth, n_subjects)


# contributions for validity proofs (psc.hazmat.proofs.range, psc.protocol.validity)


def contributions(
    *,
    valid: bool = True,
    min_slots: int = 1,
    max_slots: int = 8,
    max_width: int = 300,
    max_abs: int = 1000,
) -> st.SearchStrategy[tuple[list[int], list[int], list[int]]]:
    """``(values, lo, hi)``: per-slot ranges ``lo[i] <= hi[i]`` (``|bound| <= max_abs``,
    ``hi - lo <= max_width``) and values.

    ``valid=True``: every ``lo[i] <= values[i] <= hi[i]`` (boundaries drawn often).
    ``valid=False``: the same, except that at least one slot is outside its range, by 1
    (just over or just under, the hardest case for a range proof) up to ``10^6`` (the
    overflowing value of issue 11).  Bad arguments raise ``InvalidArgument`` at draw time.
    """
    _check_int("min_slots", min_slots, 1, 10_000)
    _check_int("max_slots", max_slots, 1, 10_000)
    _check_order("min_slots", min_slots, "max_slots", max_slots)
    _check_int("max_width", max_width, 0, 1 << 40)
    _check_int("max_abs", max_abs, 0, 1 << 40)

    @st.composite
    def build(draw: st.DrawFn) -> tuple[list[int], list[int], list[int]]:
        count = draw(st.integers(min_slots, max_slots))
        lo: list[int] = []
        hi: list[int] = []
        values: list[int] = []
        for _ in range(count):
            a = draw(st.integers(-max_abs, max_abs))
            b = draw(st.integers(a, min(max_abs, a + max_width)))
            lo.append(a)
            hi.append(b)
            values.append(draw(_boundary_ints(a, b)))
        if not valid:
            bad = draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=count, unique=True))
            for i in bad:
                by = draw(st.one_of(st.just(1), st.integers(1, 10**6)))
                values[i] = hi[i] + by if draw(st.booleans()) else lo[i] - by
        return values, lo, hi

    return build()
