"""A loopback deployment on disk: ``psc init DIR`` writes it, ``psc serve ROLE`` runs a party.

Normative: ``protocols/service.md`` (files and their keys).  :func:`init_deployment` runs
setup once (:func:`psc.sim.deployment.setup`: a registry enrols the synthetic residents,
publishes and signs the parameters, registers every agency and a bank) and writes what
each party needs to start on its own, one TOML file per served party:

``DIR/params.cbor``              the registry-signed public parameters (public)
``DIR/registry.pub``             the registry's Ed25519 public key (the root of trust)
``DIR/aggregator.toml``          the aggregator's config; ``aggregator/ledger.sqlite`` its
                                 ledger (registrations already logged), ``aggregator.key``
``DIR/agencies/<id>.toml``       each agency's config; ``agencies/<id>.key`` its signing
                                 key, ``agencies/<id>/records.sqlite`` its records (empty:
                                 the simulation fills them), ``outbox.sqlite`` its outbox
``DIR/agencies.toml``            agency id -> catalog agency
``DIR/registry.toml``            the registry's config; ``registry.key``, and
                                 ``registry/slots.json`` its private enrolment
``DIR/key_holder.toml``          the key holder's reveal desk; ``key_holder.key``, and
                                 ``key_holder/paillier.json`` the trusted private key (or,
                                 with a committee, the combiner's key and store)
``DIR/bank.key``, ``bank.toml``, ``bank.registration``
                                 a relying party's key and registration (a client)
``DIR/rights_office.toml``       the rights office's config; ``rights_office/desk.sqlite``
                                 its desk (requests, intents, ledger links); no key
``DIR/member-<i>.toml``          with a committee: each member's config; ``members/`` its
                                 key share, signing key and durable release record;
                                 ``committee.json`` the public committee parameters;
                                 ``combiner.key`` the combiner's signing key

Key files are written with mode 0600; whoever reads one *is* that party.  This is a
loopback deployment for demos and tests: the synthetic residents' identities, one
machine, no TLS.  :func:`load_config` refuses unknown keys (naming the nearest valid one)
and missing files with :class:`~psc.exceptions.ServiceConfigError`, saying what to do.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.catalog import Catalog, load_catalog
from psc.exceptions import ServiceConfigError
from psc.hazmat.backends.paillier import ShortExponentPool
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.hazmat.threshold.keys import KeyShare, ThresholdPublicKey
from psc.ledger.store import SQLiteLedger
from psc.parties.agency import Agency
from psc.parties.committee.member import CommitteeMember
from psc.parties.committee.member_store import MemberStore
from psc.parties.committee.params import CommitteeParameters, RevealPolicy, reveal_layout
from psc.parties.key_holder import Revealer
from psc.parties.rights.aggregator import RightsAggregator
from psc.protocol.logview import LedgerLogView, LogView
from psc.protocol.parameters import ProtocolParameters
from psc.protocol.signing import new_signing_key, public_bytes
from psc.seams import system_clock
from psc.service.config import (
    ServiceConfig,
    _toml,
    _write_key,
    _write_private,
    is_log_url,
    load_params,
    read_key,
)

if TYPE_CHECKING:
    from psc.sim.city import AgencyInstance
    from psc.sim.deployment import Deployment


def init_deployment(
    directory: str | Path,
    *,
    catalog: str = "city",
    subjects: int = 200,
    key_bits: int = 2048,
    keypair: tuple[PaillierPublicKey, PaillierPrivateKey | None] | None = None,
    randbytes: Callable[[int], bytes] = os.urandom,
    clock: Callable[[], dt.datetime] = system_clock,
    committee: tuple[ThresholdPublicKey, list[KeyShare]] | None = None,
    epsilon: Fraction = Fraction(1),
) -> Path:
    """Write a loopback deployment into ``directory`` (see :func:`write_deployment`)."""
    root, _ = write_deployment(
        directory,
        catalog=load_catalog(catalog),
        catalog_name=catalog,
        subjects=subjects,
        key_bits=key_bits,
        keypair=keypair,
        randbytes=randbytes,
        clock=clock,
        committee=committee,
        epsilon=epsilon,
    )
    return root


def write_deployment(
    directory: str | Path,
    *,
    catalog: Catalog,
    catalog_name: str,
    subjects: int,
    key_bits: int = 2048,
    keypair: tuple[PaillierPublicKey, PaillierPrivateKey | None] | None = None,
    randbytes: Callable[[int], bytes] = os.urandom,
    clock: Callable[[], dt.datetime] = system_clock,
    committee: tuple[ThresholdPublicKey, list[KeyShare]] | None = None,
    epsilon: Fraction = Fraction(1),
    agencies: Sequence[AgencyInstance] | None = None,
    noise_witness: Path | None = None,
) -> tuple[Path, Deployment]:
    """Write a loopback deployment into ``directory`` (which must be empty or absent).

    ``keypair`` overrides the Paillier key (tests pass small insecure keys; keys below
    2048 bits are then allowed in every config).  ``committee`` (a dealt threshold key)
    makes the deployment reveal through a k-of-n committee instead: every member gets a
    config, its key share and signing key (``members/``), the combiner and key holder
    their keys, and ``committee.json`` the public committee parameters (DP policy:
    ``epsilon`` for the score and for the cap counters, ``honest = k``).
    ``noise_witness`` (SIMULATION ONLY: ``psc demo``'s god view) has every member record
    the grade noise it draws in that directory.  Returns the directory and the setup.  Raises
    :class:`ServiceConfigError` if ``directory`` holds anything.
    """
    from psc.sim.city import agency_instances
    from psc.sim.deployment import setup
    from psc.sim.sources import demo_keypair

    root = Path(directory)
    if root.exists() and any(root.iterdir()):
        raise ServiceConfigError(f"{root} is not empty; psc init writes into a new directory")
    root.mkdir(parents=True, exist_ok=True)
    cat = catalog
    instances = list(agencies) if agencies is not None else agency_instances(cat)
    layout = None
    captured: dict[str, object] = {}
    revealer = None
    if committee is not None:
        tpk = committee[0]
        pk, sk = tpk.public, None
        policy = _policy(epsilon, tpk.k)
        layout = reveal_layout(
            cat,
            pk.bits,
            multiplicity=max(a.instances for a in instances),
            members=tpk.parties,
            policy=policy,
        )

        def revealer(
            params: ProtocolParameters, combiner_key: Ed25519PrivateKey, view: LogView
        ) -> Revealer:
            captured["combiner_key"] = combiner_key
            return _NotServedHere()

    else:
        pk, sk = keypair if keypair is not None else demo_keypair(key_bits)
    insecure = pk.bits < 2048
    ledger_path = root / "aggregator" / "ledger.sqlite"
    ledger_path.parent.mkdir(parents=True)
    d = setup(
        cat,
        instances,
        subjects,
        (pk, sk),
        clock=clock,
        ledger_path=ledger_path,
        randbytes=randbytes,
        revealer=revealer,
        layout=layout,
    )
    d.ledger.close()
    (root / "params.cbor").write_bytes(d.sealed_params)
    (root / "registry.pub").write_text(d.params.registry_key.hex() + "\n")
    _write_key(root / "aggregator.key", d.aggregator._key)
    common = {
        "catalog": catalog_name,
        "params": "params.cbor",
        "registry_key": d.params.registry_key.hex(),
        "allow_insecure_key": insecure,
    }
    (root / "aggregator.toml").write_text(
        _toml(
            {
                "role": "aggregator",
                **common,
                "signing_key": "aggregator.key",
                "ledger": "aggregator/ledger.sqlite",
                "host": "127.0.0.1",
                "port": 0,
            }
        )
    )
    rows = {}
    for a in d.agencies:
        _write_key(root / "agencies" / f"{a.id}.key", a._key)
        rows[a.id] = a.catalog_agency
        _write_agency(root, a.id, a.catalog_agency, common)
    (root / "agencies.toml").write_text(_toml(rows))
    _write_key(root / "key_holder.key", d.key_holder._key)
    _write_key(root / "registry.key", d.registry._key)
    _write_private(root / "registry" / "slots.json", json.dumps(d.slots, sort_keys=True))
    (root / "registry.toml").write_text(
        _toml(
            {
                "role": "registry",
                **common,
                "signing_key": "registry.key",
                "slots": "registry/slots.json",
            }
        )
    )
    _write_key(root / "bank.key", d.bank._key)
    (root / "bank.toml").write_text(_toml({"id": d.bank.id, "purpose": d.bank_purpose}))
    (root / "bank.registration").write_bytes(d.bank_registration)
    holder: dict[str, object] = {
        "role": "key-holder",
        **common,
        "signing_key": "key_holder.key",
        "ledger": "key_holder/desk.sqlite",
        "log": "aggregator/ledger.sqlite",
    }
    if committee is not None:
        combiner_key = captured["combiner_key"]
        assert isinstance(combiner_key, Ed25519PrivateKey)
        _write_committee(
            root, d.params, committee, combiner_key, epsilon, common, randbytes, noise_witness
        )
        holder |= {
            "committee": "committee.json",
            "combiner_key": "combiner.key",
            "committee_store": "key_holder/committee.sqlite",
            "budget_releases": 12,
        }
    elif sk is not None:
        doc = {"n": str(pk.n), "p": str(sk.p), "q": str(sk.q)}
        _write_private(root / "key_holder" / "paillier.json", json.dumps(doc))
        holder["paillier_key"] = "key_holder/paillier.json"
    if committee is not None or sk is not None:
        (root / "key_holder").mkdir(exist_ok=True)
        (root / "key_holder.toml").write_text(_toml(holder))
    (root / "rights_office").mkdir()
    office = {"role": "rights-office", **common, "ledger": "rights_office/desk.sqlite"}
    (root / "rights_office.toml").write_text(_toml(office))
    return root, d


def _write_agency(
    root: Path, ident: str, catalog_agency: str, common: Mapping[str, object]
) -> None:
    """An agency's config and its (empty) record file: the agency's own back office, which
    the simulation fills (:meth:`~psc.parties.agency_desk.RecordStore.write`)."""
    from psc.parties.agency_desk import RecordStore

    (root / "agencies" / ident).mkdir(parents=True, exist_ok=True)
    RecordStore.write(root / "agencies" / ident / "records.sqlite", [])
    (root / "agencies" / f"{ident}.toml").write_text(
        _toml(
            {
                "role": "agency",
                **common,
                "params": "../params.cbor",
                "signing_key": f"{ident}.key",
                "agency_id": ident,
                "catalog_agency": catalog_agency,
                "records": f"{ident}/records.sqlite",
                "ledger": f"{ident}/outbox.sqlite",
            }
        )
    )


def _policy(epsilon: Fraction, k: int) -> RevealPolicy:
    return RevealPolicy(Fraction(epsilon), min(Fraction(1, 4), Fraction(epsilon)), k)


class _NotServedHere(Revealer):
    """Setup's key holder when the committee reveals: ``psc init`` only writes files."""

    def grades(self, *args: object, **kwargs: object) -> dict[int, int]:
        raise ServiceConfigError("this key holder is not served; open it from its files")


def _write_committee(
    root: Path,
    params: ProtocolParameters,
    committee: tuple[ThresholdPublicKey, list[KeyShare]],
    combiner_key: Ed25519PrivateKey,
    epsilon: Fraction,
    common: Mapping[str, object],
    randbytes: Callable[[int], bytes],
    noise_witness: Path | None = None,
) -> None:
    tpk, shares = committee
    keys = [new_signing_key(randbytes) for _ in shares]
    doc = {
        "public": tpk.to_json(),
        "epsilon": str(Fraction(epsilon)),
        "member_keys": [public_bytes(k).hex() for k in keys],
        "combiner_key": public_bytes(combiner_key).hex(),
    }
    (root / "committee.json").write_text(json.dumps(doc, indent=1) + "\n")
    _write_key(root / "combiner.key", combiner_key)
    for share, key in zip(shares, keys, strict=True):
        i = share.index
        _write_key(root / "members" / f"member-{i}.key", key)
        fd = os.open(root / "members" / f"member-{i}.share.json", os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(share.to_json(), f)
        (root / f"member-{i}.toml").write_text(
            _toml(
                {
                    "role": "member",
                    **common,
                    "signing_key": f"members/member-{i}.key",
                    "ledger": f"members/member-{i}.sqlite",
                    "committee": "committee.json",
                    "key_share": f"members/member-{i}.share.json",
                    "log": "aggregator/ledger.sqlite",
                    "host": "127.0.0.1",
                    "port": 0,
                    **(
                        {"simulation_noise_witness": str(noise_witness)}
                        if noise_witness is not None
                        else {}
                    ),
                }
            )
        )
    del params  # the members read the parameters from params.cbor


def open_aggregator(cfg: ServiceConfig) -> RightsAggregator:
    """The aggregator of ``cfg``, on its ledger file (everything it accepted is there);
    it also takes the rights office's adjustments (``protocols/rights.md`` §3.4)."""
    params = load_params(cfg)
    key = read_key(cfg.path(cfg.signing_key))
    ledger = SQLiteLedger(cfg.path(cfg.ledger), signer=key)
    return RightsAggregator(params, ledger, key)


def load_committee(root: Path, params: ProtocolParameters) -> CommitteeParameters:
    """The committee's public parameters from ``committee.json``."""
    try:
        doc = json.loads((root / "committee.json").read_text("utf-8"))
        tpk = ThresholdPublicKey.from_json(doc["public"])
        return CommitteeParameters(
            params.catalog,
            tpk,
            params.layout,
            params.multiplicity,
            _policy(Fraction(doc["epsilon"]), tpk.k),
            tuple(bytes.fromhex(k) for k in doc["member_keys"]),
            bytes.fromhex(doc["combiner_key"]),
            allow_insecure_key=params.allow_insecure_key,
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ServiceConfigError(
            f"{root / 'committee.json'} is unreadable ({e}); run psc init"
        ) from e


def open_member(cfg: ServiceConfig) -> CommitteeMember:
    """A committee member from its files: key share, signing key, durable release record,
    and a read-side view of the aggregator's log."""
    params = load_params(cfg)
    cparams = load_committee(cfg.path(cfg.committee).parent, params)
    share = KeyShare.from_json(cparams.public, json.loads(cfg.path(cfg.key_share).read_text()))
    witness = None
    if cfg.simulation_noise_witness:  # psc demo's god view only (see ServiceConfig)
        from psc.sim.deployment import SimulationNoiseWitness

        witness = SimulationNoiseWitness(cfg.path(cfg.simulation_noise_witness))
    return CommitteeMember(
        cparams,
        share,
        read_key(cfg.path(cfg.signing_key)),
        log_view=party_log_view(cfg, params),
        store=MemberStore(cfg.path(cfg.ledger)),
        pool=ShortExponentPool(cparams.public.public),
        _simulation_noise_witness=witness,
    )


def party_log_view(cfg: ServiceConfig, params: ProtocolParameters) -> LogView:
    """The public log a member or the key holder checks reveals against: with ``log`` an
    ``http://`` URL (the aggregator's), a verified replica synced from its log routes and
    kept next to the party's state (``<ledger stem>.log.sqlite``,
    :mod:`psc.service.replica`); otherwise the aggregator's ledger file, read-side (one
    machine only)."""
    if is_log_url(cfg.log):
        from psc.service.client import HttpPeer
        from psc.service.replica import LogReplica

        replica = cfg.path(cfg.ledger).with_suffix(".log.sqlite")
        return LogReplica(params, HttpPeer(cfg.log), replica)
    return LedgerLogView(params, cfg.path(cfg.log))


def open_agencies(directory: str | Path, params: ProtocolParameters) -> list[Agency]:
    """The deployment's agencies as clients (tests and the demo submit with these)."""
    root = Path(directory)
    rows = tomllib.loads((root / "agencies.toml").read_text("utf-8"))
    return [
        Agency(ident, str(cat_agency), params, read_key(root / "agencies" / f"{ident}.key"))
        for ident, cat_agency in rows.items()
    ]
