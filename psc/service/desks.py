"""Opening the registry, an agency and the key holder from their files, wired to their peers.

Normative: ``protocols/service.md``.  Each function reads one party's config
(:class:`~psc.service.deploy.ServiceConfig`), its keys and state, and returns the party's
transport-neutral core with its peers behind HTTP clients: the aggregator as
:class:`~psc.service.client.HttpAggregator`, committee members as
:class:`~psc.service.client.HttpMemberLink`.  ``peers`` maps a peer's name
(``aggregator``, ``member-<i>``) to its base URL: ports are chosen when the peers start,
so whoever starts the parties passes them (``psc serve --peer NAME=URL``).

Raises :class:`~psc.exceptions.ServiceConfigError` naming a missing peer or an unreadable
file, with what to do.
"""

from __future__ import annotations

import json
import multiprocessing as mp
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction

from gmpy2 import mpz

from psc.catalog import load_catalog
from psc.dp.accounting import ApproxDP
from psc.exceptions import KeyMismatch, ServiceConfigError
from psc.hazmat.backends.paillier import ShortExponentPool
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.ledger.durable import open_durable
from psc.parties.agency_desk import AgencyDesk, RecordStore
from psc.parties.committee import CommitteeRevealer, KeyCommittee, parallel
from psc.parties.committee.transport import MemberLink
from psc.parties.key_holder import KeyHolder, Revealer, TrustedDecryptor
from psc.parties.reveal_desk import RevealDesk
from psc.parties.rights.agency import RightsAgency
from psc.parties.rights.registry import RightsRegistry
from psc.service.client import HttpAggregator, HttpMemberLink, HttpPeer
from psc.service.config import ServiceConfig, load_params, read_key
from psc.service.deploy import load_committee, party_log_view
from psc.service.rights_client import consistency_prover

#: Seconds a desk waits for a peer's answer (a committee reveal of a city takes minutes).
PEER_TIMEOUT = 1800.0


def peer(peers: Mapping[str, str], name: str) -> HttpPeer:
    """An HTTP client for peer ``name``.  Raises :class:`ServiceConfigError` if unknown."""
    url = peers.get(name)
    if url is None:
        raise ServiceConfigError(
            f"this party needs the URL of its peer {name!r}: start it with --peer {name}=URL"
        )
    return HttpPeer(url, timeout=PEER_TIMEOUT)


def open_registry(cfg: ServiceConfig) -> RightsRegistry:
    """The registry with its private enrolment (``slots``), also signing the rights
    office's adjustment orders (``protocols/rights.md`` §3.2)."""
    try:
        doc = json.loads(cfg.path(cfg.slots).read_text("utf-8"))
        slots = {str(k): int(v) for k, v in doc.items()}
        reg = RightsRegistry.restore(
            load_catalog(cfg.catalog), read_key(cfg.path(cfg.signing_key)), slots
        )
        assert isinstance(reg, RightsRegistry)  # restore builds its own class
        return reg
    except (OSError, ValueError, AttributeError) as e:
        raise ServiceConfigError(
            f"{cfg.path(cfg.slots)} is not the registry's enrolment ({e}); run psc init"
        ) from e


def open_agency_desk(cfg: ServiceConfig, peers: Mapping[str, str]) -> AgencyDesk:
    """An agency with its records and outbox, sending to the aggregator peer."""
    params = load_params(cfg)
    # short-exponent randomizers (packing.md 2.1) under the agency's own secret base, made
    # as the envelope is encrypted: what the single-process run precomputes in workers
    agency = RightsAgency(
        cfg.agency_id,
        cfg.catalog_agency,
        params,
        read_key(cfg.path(cfg.signing_key)),
        pool=ShortExponentPool(params.public_key),
    )
    aggregator = HttpAggregator(peer(peers, "aggregator"))
    agency.prove = consistency_prover(aggregator.peer)  # heads it is shown must extend
    return AgencyDesk(
        agency, RecordStore(cfg.path(cfg.records)), aggregator, str(cfg.path(cfg.ledger))
    )


def open_reveal_desk(cfg: ServiceConfig, peers: Mapping[str, str]) -> RevealDesk:
    """The key holder's reveal desk: the trusted key, or the combiner of the committee
    whose members are the ``member-<i>`` peers.  Relying parties: every
    ``*.registration`` file next to the config (registry-signed; verified on reading)."""
    params = load_params(cfg)
    revealer: Revealer
    if cfg.committee:
        cparams = load_committee(cfg.path(cfg.committee).parent, params)
        links: list[MemberLink] = [
            HttpMemberLink(i, peer(peers, f"member-{i}"))
            for i in range(1, cparams.n + 1)
            if f"member-{i}" in peers
        ]
        if len(links) < cparams.k:
            raise ServiceConfigError(
                f"the combiner needs at least {cparams.k} members' URLs (--peer member-<i>=URL)"
            )
        store = open_durable(str(cfg.path(cfg.committee_store)), threads=True)
        assert cparams.policy.cap_epsilon is not None
        per_release = cparams.policy.epsilon + cparams.policy.cap_epsilon
        budget = ApproxDP(cfg.budget_releases * per_release, Fraction(1, 10**9))
        committee = KeyCommittee(
            cparams,
            read_key(cfg.path(cfg.combiner_key)),
            links,
            store,
            budget=budget,
            map_members=parallel,
            verify_pool=ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")),
        )
        revealer = CommitteeRevealer(committee)
    else:
        revealer = TrustedDecryptor(params, _private_key(cfg, params.public_key))
    holder = KeyHolder(
        params,
        revealer,
        read_key(cfg.path(cfg.signing_key)),
        log_view=party_log_view(cfg, params),
    )
    for reg in sorted(cfg.path(".").glob("*.registration")):
        holder.register_relying_party(reg.read_bytes())
    return RevealDesk(holder, HttpAggregator(peer(peers, "aggregator")), str(cfg.path(cfg.ledger)))


def _private_key(cfg: ServiceConfig, public: PaillierPublicKey) -> PaillierPrivateKey:
    path = cfg.path(cfg.paillier_key)
    try:
        doc = json.loads(path.read_text("utf-8"))
        if mpz(doc["n"]) != public.n:
            raise KeyMismatch("not the key of the published parameters")
        return PaillierPrivateKey(public, mpz(doc["p"]), mpz(doc["q"]))
    except (OSError, ValueError, KeyError, TypeError, KeyMismatch) as e:
        raise ServiceConfigError(f"{path} is not the key holder's Paillier key ({e})") from e


__all__ = ["PEER_TIMEOUT", "open_agency_desk", "open_registry", "open_reveal_desk", "peer"]
