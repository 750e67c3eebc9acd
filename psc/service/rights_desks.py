"""Opening the rights office from its files, wired to its peers over HTTP.

Normative: ``protocols/service.md`` §7 and §10.  ``DIR/rights_office.toml`` (written by
``psc init``) names the desk's SQLite file (``ledger``: requests, intents, ledger links),
and optionally ``rights_calendar``, a deployment TOML (``protocols/deployment.md``) whose
``[rights]`` section gives the holidays, make-up working days and deadlines; without it,
weekdays and the default deadlines.  The clock is the system clock.

Peers (``psc serve rights-office --peer NAME=URL``): ``aggregator``, ``registry``,
``key-holder`` and every registered agency by its id.  The agencies are those the log
registers (read from a verified replica of the aggregator's log, kept next to the desk as
``<ledger stem>.log.sqlite``); each needs its URL.

At start the office runs :meth:`~psc.parties.rights.office.RightsOffice.recover`: every
workflow a crash (even ``kill -9``) left between its commit boundaries is completed, each
order at most once.  So the peers must be running first.

Raises :class:`~psc.exceptions.ServiceConfigError` naming a missing peer or an unreadable
file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from psc.exceptions import ServiceConfigError
from psc.parties.rights.office import RightsOffice
from psc.policy.clock import SystemClock, WorkingCalendar
from psc.policy.requests import DeadlinePolicy
from psc.policy.rights import RightsDesk
from psc.service.config import ServiceConfig, load_params
from psc.service.desks import peer
from psc.service.replica import LogReplica
from psc.service.rights_client import (
    HttpGradeDesk,
    HttpRightsAgency,
    HttpRightsAggregator,
    HttpRightsRegistry,
)


def open_rights_office(cfg: ServiceConfig, peers: Mapping[str, str]) -> RightsOffice:
    """The rights office of ``cfg`` with its peers behind HTTP, recovered (module doc)."""
    params = load_params(cfg)
    calendar, deadlines = _calendar(cfg)
    agg = peer(peers, "aggregator")
    replica = LogReplica(params, agg, cfg.path(cfg.ledger).with_suffix(".log.sqlite"))
    aggregator = HttpRightsAggregator(params, agg, replica)
    registered = aggregator.ledger.parties("agency")  # synced and verified by the replica
    missing = [r.party for r in registered if r.party not in peers]
    if missing:
        raise ServiceConfigError(
            f"the rights office calls every registered agency: give --peer {missing[0]}=URL"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    try:
        conn = sqlite3.connect(str(cfg.path(cfg.ledger)), check_same_thread=False)
        conn.execute("PRAGMA synchronous=FULL")
    except sqlite3.Error as e:
        raise ServiceConfigError(f"cannot open the rights desk {cfg.path(cfg.ledger)}: {e}") from e
    desk = RightsDesk(
        conn, SystemClock(), calendar=calendar, deadlines=deadlines, catalog=params.catalog
    )
    office = RightsOffice(
        desk,
        HttpRightsRegistry(params, peer(peers, "registry")),
        aggregator,
        HttpGradeDesk(peer(peers, "key-holder")),
        [HttpRightsAgency(r.party, peer(peers, r.party)) for r in registered],
        [r.registration for r in registered],
    )
    office.recover()
    return office


def _calendar(cfg: ServiceConfig) -> tuple[WorkingCalendar, DeadlinePolicy]:
    if not cfg.rights_calendar:
        return WorkingCalendar(), DeadlinePolicy()
    from psc.policy.deployment import load_deployment

    try:
        dep = load_deployment(cfg.path(cfg.rights_calendar))
    except (OSError, ValueError) as e:
        raise ServiceConfigError(
            f"{cfg.path(cfg.rights_calendar)} is not a deployment file ({e})"
        ) from e
    cal = WorkingCalendar.of(dep.rights.holidays, dep.rights.extra_workdays)
    return cal, DeadlinePolicy.from_config(dep.rights)


__all__ = ["open_rights_office"]
