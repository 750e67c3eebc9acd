"""A reference deployment with the rights office and the consent gate."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from psc.catalog import Catalog
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.parties.consent_gate import ConsentKeyDirectory, TokenConsentVerifier
from psc.parties.rights.agency import RightsAgency
from psc.parties.rights.aggregator import RightsAggregator
from psc.parties.rights.office import RightsOffice
from psc.parties.rights.registry import RightsRegistry
from psc.policy.clock import Clock as PolicyClock
from psc.policy.clock import WorkingCalendar
from psc.policy.consent import SqliteRefusalLog
from psc.policy.requests import DeadlinePolicy
from psc.policy.rights import RightsDesk
from psc.protocol.parameters import ProtocolParameters
from psc.protocol.replay import AnsweredRequests
from psc.seams import RandBytes
from psc.sim.city import AgencyInstance
from psc.sim.deployment import Deployment, setup


@dataclass
class RightsDeployment:
    """A reference deployment (:func:`psc.sim.deployment.setup`) with rights workflows.

    ``directory`` is the key holder's consent-key directory (add registry-signed
    credentials to it), ``refusals`` the key holder's consent refusal log, ``office`` the
    rights office (its desk on ``office.desk``).
    """

    deployment: Deployment
    office: RightsOffice
    registry: RightsRegistry
    aggregator: RightsAggregator
    agencies: list[RightsAgency]
    directory: ConsentKeyDirectory
    refusals: SqliteRefusalLog


def setup_rights(
    catalog: Catalog,
    agencies: Sequence[AgencyInstance],
    n_subjects: int,
    keypair: tuple[PaillierPublicKey, PaillierPrivateKey],
    *,
    clock: PolicyClock,
    desk_db: sqlite3.Connection,
    key_holder_db: sqlite3.Connection,
    randbytes: RandBytes = os.urandom,
    ledger_path: str = ":memory:",
    calendar: WorkingCalendar | None = None,
    deadlines: DeadlinePolicy | None = None,
    max_validity: dt.timedelta | None = None,
) -> RightsDeployment:
    """Set up every party with the rights extensions, one clock for all of them.

    The key holder's consent gate is a :class:`TokenConsentVerifier` whose withdrawals come
    from the rights desk and whose refusals go to ``consent_refusals`` on ``key_holder_db``;
    the desk's tables live on ``desk_db``; the key holder's answered requests (replay state)
    live on ``key_holder_db`` too.  Every agency and the key holder keep the heads the log
    shows them and check them with consistency proofs from the log
    (:mod:`psc.protocol.heads`).  Keys, slots, nonces and pseudonyms come from
    ``randbytes``.
    """
    desk = RightsDesk(desk_db, clock, calendar=calendar, deadlines=deadlines, catalog=catalog)
    refusals = SqliteRefusalLog(key_holder_db)
    made: list[ConsentKeyDirectory] = []

    def gate(params: ProtocolParameters) -> TokenConsentVerifier:
        made.append(ConsentKeyDirectory(params))
        return TokenConsentVerifier(
            catalog,
            made[0],
            clock=clock.now,
            withdrawn=desk.is_withdrawn,
            refusals=refusals,
            max_validity=max_validity,
        )

    d = setup(
        catalog,
        agencies,
        n_subjects,
        keypair,
        clock=clock.now,
        ledger_path=ledger_path,
        randbytes=randbytes,
        registry_cls=RightsRegistry,
        agency_cls=RightsAgency,
        aggregator_cls=RightsAggregator,
        consent=gate,
    )
    registry, aggregator = d.registry, d.aggregator
    assert isinstance(registry, RightsRegistry) and isinstance(aggregator, RightsAggregator)
    parties = [a for a in d.agencies if isinstance(a, RightsAgency)]
    assert len(parties) == len(d.agencies)
    # parties keep every head they are shown and ask the log for consistency proofs (which
    # they verify); the key holder's answered requests survive a restart
    for a in parties:
        a.prove = aggregator.ledger.log.consistency_proof
    d.key_holder.prove = aggregator.ledger.log.consistency_proof
    d.key_holder._answered = AnsweredRequests(key_holder_db)
    office = RightsOffice(desk, registry, aggregator, d.key_holder, parties, d.registrations)
    return RightsDeployment(d, office, registry, aggregator, parties, made[0], refusals)
