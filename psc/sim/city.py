"""A seeded synthetic city: population, districts, agencies and their records.

Used by the demo, the tests and benchmarks.  Everything is a deterministic function of
the seed (numpy's PCG64), so a run can be repeated exactly.

Model (plausible, not calibrated: see ``protocols/README.md``):

* ``subjects`` residents, each living in one of ``districts`` districts (uniform);
* each district has a conduct factor drawn from ``[0.6, 1.4]`` that scales every
  negative rule's rate (districts differ), positive rules use the inverse factor;
* per period, subject and rule, the number of events is Poisson with a monthly rate set by
  the rule's severity (:data:`MONTHLY_RATES`), clipped at the rule's ``max_per_period``;
* each event gets a day of the month and an evidence hash (SHA-256 of a synthetic
  document reference), both from the seed;
* agencies are the catalog's agencies; with ``agencies > len(catalog.agencies)`` the extra
  ones are further instances of catalog agencies in turn (e.g. ``intermediate-court#2``),
  each instance serving the districts ``d`` with ``d % instances == k``.

Subjects here are addressed by *population index*; the driver maps them to pseudonymous
slots through the :class:`~psc.parties.registry.Registry`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from psc.catalog import Catalog, period_index, period_start
from psc.events import Event, EventTable, IntArray

#: Expected events per subject per month, by rule severity.
MONTHLY_RATES: Mapping[str, float] = {
    "positive": 0.012,
    "minor": 0.02,
    "moderate": 0.004,
    "serious": 0.001,
}
#: The first simulated period when none is given (January 2026).
DEFAULT_FIRST_PERIOD = period_index(dt.date(2026, 1, 1))


@dataclass(frozen=True)
class AgencyInstance:
    """One agency party: its id and the catalog agency whose rules it applies."""

    id: str
    catalog_agency: str
    index: int  # 0 for the first instance of a catalog agency
    instances: int  # how many instances that catalog agency has


@dataclass(frozen=True)
class City:
    """A simulated city: who lives where, which agencies exist, who did what when."""

    catalog: Catalog
    n_subjects: int
    district: IntArray  # district of each population index
    agencies: tuple[AgencyInstance, ...]
    periods: tuple[int, ...]
    events: Mapping[str, Mapping[int, tuple[Event, ...]]]  # agency id -> period -> events
    seed: int

    @property
    def multiplicity(self) -> int:
        """Most instances of any one catalog agency (sizes the slot layout)."""
        return max(a.instances for a in self.agencies)

    @property
    def n_events(self) -> int:
        return sum(len(v) for per in self.events.values() for v in per.values())

    def table(self, slot_of: IntArray | None = None) -> EventTable:
        """All events as one table, subjects mapped through ``slot_of`` (default: identity)."""
        evs = [e for per in self.events.values() for v in per.values() for e in v]
        if slot_of is not None:
            evs = _by_slot(evs, slot_of)
        return EventTable.from_events(self.catalog, evs, self.n_subjects)

    def records(self, agency: str, period: int, slot_of: IntArray) -> list[Event]:
        """What agency ``agency`` recorded in ``period``, subjects mapped to their slots
        through ``slot_of`` (what that agency submits).  Raises ``KeyError`` for an
        unknown agency id or period."""
        return _by_slot(self.events[agency][period], slot_of)


def _by_slot(events: Iterable[Event], slot_of: IntArray) -> list[Event]:
    return [Event(int(slot_of[e.subject]), e.rule, e.date, e.evidence) for e in events]


def agency_instances(catalog: Catalog, agencies: int | None = None) -> tuple[AgencyInstance, ...]:
    """The catalog's agencies, plus further instances in turn up to ``agencies`` in total.

    Raises ``ValueError`` if ``agencies`` is fewer than the catalog's agencies (every
    catalog agency needs at least one instance).
    """
    base = catalog.agencies
    total = len(base) if agencies is None else agencies
    if total < len(base):
        raise ValueError(
            f"catalog {catalog.scheme.name!r} has {len(base)} agencies; --agencies must be at "
            f"least {len(base)} (extra agencies are further instances, e.g. district courts)"
        )
    counts = {a: 1 for a in base}
    for k in range(total - len(base)):
        counts[base[k % len(base)]] += 1
    out = []
    for a in base:
        for i in range(counts[a]):
            out.append(AgencyInstance(a if i == 0 else f"{a}#{i + 1}", a, i, counts[a]))
    return tuple(out)


def simulate_city(
    catalog: Catalog,
    *,
    subjects: int,
    agencies: int | None = None,
    periods: int = 3,
    seed: int = 0,
    first_period: int = DEFAULT_FIRST_PERIOD,
    districts: int = 12,
) -> City:
    """Simulate ``periods`` months of records for ``subjects`` residents (see module doc).

    Deterministic in ``seed``.  Raises ``ValueError`` for non-positive sizes or too few
    agencies.
    """
    if subjects < 1 or periods < 1 or districts < 1:
        raise ValueError("subjects, periods and districts must be positive")
    rng = np.random.default_rng(seed)
    district = rng.integers(0, districts, size=subjects).astype(np.int64)
    factor = rng.uniform(0.6, 1.4, size=districts)
    instances = agency_instances(catalog, agencies)
    serving: dict[tuple[str, int], str] = {}
    for inst in instances:
        for d in range(districts):
            if d % inst.instances == inst.index:
                serving[(inst.catalog_agency, d)] = inst.id
    plist = tuple(first_period + k for k in range(periods))
    events: dict[str, dict[int, list[Event]]] = {a.id: {p: [] for p in plist} for a in instances}
    for p in plist:
        start = period_start(p)
        for r in catalog.rules:
            base_rate = MONTHLY_RATES[r.severity]
            f = factor if r.severity != "positive" else 1.0 / factor
            lam = base_rate * f[district]
            counts = np.minimum(rng.poisson(lam), r.max_per_period)
            days = rng.integers(1, 29, size=(subjects, r.max_per_period))
            for subj in np.flatnonzero(counts):
                for k in range(int(counts[subj])):
                    date = start.replace(day=int(days[subj, k]))
                    ref = f"{seed}/{r.agency}/{r.id}/{p}/{int(subj)}/{k}"
                    evidence = hashlib.sha256(ref.encode()).hexdigest()
                    agency = serving[(r.agency, int(district[subj]))]
                    events[agency][p].append(Event(int(subj), r.id, date, evidence))
    frozen = {a: {p: tuple(sorted(v)) for p, v in per.items()} for a, per in events.items()}
    return City(catalog, subjects, district, instances, plist, frozen, seed)
