"""The CKKS grading authority on disk: written once into a deployment, opened from its files.

Normative: ``protocols/service.md`` §7.  :func:`write_grading_authority` adds the authority
to a deployment ``psc init`` wrote (it reads the deployment's agencies and requesters and
the registry-signed parameters' subject count) and generates its CKKS keys:

``DIR/grading_authority.toml``          its config (role ``grading-authority``)
``DIR/grading_authority.key``           its Ed25519 signing key (receipts, responses; 0600)
``DIR/grading_authority.pub``           the matching public key, hex (requesters check
                                        responses with it)
``DIR/grading_authority/authority.json`` public description: id, circuit profile, query
                                        budget, deployment (subjects, first period), the
                                        registered agencies and requesters (verify keys)
``DIR/grading_authority/public.ctx``    the published CKKS context (``he-grading.md`` 3.1)
``DIR/grading_authority/secret.ctx``    the TenSEAL context with the secret key (0600:
                                        whoever reads it can decrypt every submission)
``DIR/grading_authority/state.sqlite``  created on first start: the grading log, the query
                                        budget's charges and the stored responses

:func:`open_grading_desk` opens it again: every file checked (the secret key must decrypt
what the public context encrypts; the profile must be the catalog's), then the grading log
replayed from the state file, each submission verified again
(:meth:`~psc.parties.grading_authority.GradingAuthority.restore`), so a restart, even
after ``kill -9``, keeps every submission logged and every budget charge made.  Refusals:
:class:`~psc.exceptions.ServiceConfigError` naming the file and what to run.  The
registrations are the deployment operator's file (as ``agencies.toml`` is), not signed by
the registry in this version.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import tenseal as ts

from psc.catalog import Catalog
from psc.exceptions import InvalidMessage, ParameterError, PscError, ServiceConfigError
from psc.hazmat.he.circuit import GradingCircuit
from psc.hazmat.he.contexts import SecretContext, load_public
from psc.hazmat.he.flooding import DEFAULT_MAX_QUERIES
from psc.parties.grading_authority import GradingAuthority, QueryLedger
from psc.parties.grading_desk import GradingDesk
from psc.protocol.signing import new_signing_key, public_bytes
from psc.service.config import ServiceConfig, _toml, _write_key, load_config, load_params, read_key

#: The authority's id on the wire (its receipts' and responses' ``authority``).
AUTHORITY_ID = "grading-authority"


def _write_secret_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write_grading_authority(
    directory: str | Path,
    *,
    max_queries: int = DEFAULT_MAX_QUERIES,
    first_period: int = 0,
) -> Path:
    """Add a CKKS grading authority to the deployment in ``directory`` (written by ``psc
    init``): new CKKS keys for its catalog's published circuit, a signing key, the
    deployment's agencies and the registry and bank as requesters.  Returns its config's
    path.  Raises :class:`ServiceConfigError` if the deployment is incomplete or already
    has an authority, :class:`ParameterError` if no CKKS profile fits the catalog."""
    root = Path(directory)
    agg = load_config(root / "aggregator.toml")  # the deployment's catalog and parameters
    if (root / "grading_authority.toml").exists():
        raise ServiceConfigError(f"{root} already has a grading authority")
    params = load_params(agg)
    catalog = params.catalog
    circuit = GradingCircuit.for_catalog(catalog)
    rows = tomllib.loads((root / "agencies.toml").read_text("utf-8"))
    agencies = {
        ident: [public_bytes(read_key(root / "agencies" / f"{ident}.key")).hex(), str(cat)]
        for ident, cat in rows.items()
    }
    bank = tomllib.loads((root / "bank.toml").read_text("utf-8"))
    requesters = {
        "registry": public_bytes(read_key(root / "registry.key")).hex(),
        str(bank["id"]): public_bytes(read_key(root / "bank.key")).hex(),
    }
    auth = GradingAuthority.generate(circuit, catalog=catalog, max_queries=max_queries)
    here = root / "grading_authority"
    here.mkdir()
    (here / "public.ctx").write_bytes(auth.public.data)
    _write_secret_bytes(
        here / "secret.ctx",
        auth.secret.context.serialize(
            save_public_key=False,
            save_secret_key=True,
            save_galois_keys=False,
            save_relin_keys=False,
        ),
    )
    key = new_signing_key()
    _write_key(root / "grading_authority.key", key)
    (root / "grading_authority.pub").write_text(public_bytes(key).hex() + "\n")
    doc = {
        "id": AUTHORITY_ID,
        "profile": circuit.profile.name,
        "max_queries": max_queries,
        "n_subjects": params.n_subjects,
        "first_period": first_period,
        "public_context": "public.ctx",
        "secret_context": "secret.ctx",
        "agencies": agencies,
        "requesters": requesters,
    }
    (here / "authority.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    path = root / "grading_authority.toml"
    path.write_text(
        _toml(
            {
                "role": "grading-authority",
                "catalog": agg.catalog,
                "params": "params.cbor",
                "registry_key": agg.registry_key,
                "allow_insecure_key": agg.allow_insecure_key,
                "signing_key": "grading_authority.key",
                "ledger": "grading_authority/state.sqlite",
                "grading": "grading_authority/authority.json",
                "host": "127.0.0.1",
                "port": 0,
            }
        )
    )
    return path


def open_grading_desk(cfg: ServiceConfig) -> GradingDesk:
    """The grading authority of ``cfg`` from its files, its log replayed from its state
    file, behind its desk (see the module doc).  Raises :class:`ServiceConfigError`."""
    if cfg.role != "grading-authority":
        raise ServiceConfigError(f"{cfg.role!r} is not the grading authority")
    params = load_params(cfg)
    doc_path = cfg.path(cfg.grading)
    try:
        doc: dict[str, Any] = json.loads(doc_path.read_text("utf-8"))
        here = doc_path.parent
        public_data = (here / str(doc["public_context"])).read_bytes()
        secret_data = (here / str(doc["secret_context"])).read_bytes()
        ident, profile = str(doc["id"]), str(doc["profile"])
        max_queries, n_subjects = int(doc["max_queries"]), int(doc["n_subjects"])
        first_period = int(doc["first_period"])
        agencies = {str(a): (bytes.fromhex(k), str(c)) for a, (k, c) in doc["agencies"].items()}
        requesters = {str(r): bytes.fromhex(k) for r, k in doc["requesters"].items()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ServiceConfigError(
            f"{doc_path} or a context file beside it is unreadable ({e}); write the "
            "authority again (psc.service.he_deploy.write_grading_authority)"
        ) from e
    if n_subjects != params.n_subjects:
        raise ServiceConfigError(f"{doc_path}: n_subjects differs from the parameters'")
    secret = _open_secret(public_data, secret_data, doc_path)
    circuit = GradingCircuit.for_catalog(params.catalog)
    if circuit.profile.name != profile or circuit.params != secret.public.params:
        raise ServiceConfigError(
            f"{doc_path}: profile {profile!r} is not the catalog's circuit "
            f"({circuit.profile.name!r})"
        )
    auth = GradingAuthority(
        circuit, secret, params.catalog, max_queries, QueryLedger(str(cfg.path(cfg.ledger)))
    )
    _register(auth, agencies, requesters, params.catalog)
    auth.expect_subjects(n_subjects, first_period=first_period)
    try:
        auth.restore()
    except PscError as e:
        raise ServiceConfigError(
            f"{cfg.path(cfg.ledger)} holds an entry this authority does not accept ({e}); "
            "it is not this authority's state file"
        ) from e
    return GradingDesk(auth, ident, read_key(cfg.path(cfg.signing_key)), str(cfg.path(cfg.ledger)))


def _open_secret(public_data: bytes, secret_data: bytes, where: Path) -> SecretContext:
    """The secret context, checked to decrypt what the public context encrypts."""
    try:
        public = load_public(public_data)
        ctx = ts.context_from(secret_data)
    except (InvalidMessage, ParameterError) as e:
        raise ServiceConfigError(f"{where}: the public context is not valid ({e})") from e
    except Exception as e:  # TenSEAL raises assorted C++ exceptions on bad bytes
        raise ServiceConfigError(f"{where}: the secret context does not load") from e
    if not ctx.has_secret_key():
        raise ServiceConfigError(f"{where}: the secret context holds no secret key")
    probe = [1.0, -2.0, 3.0]
    got = ts.ckks_vector(public.context, probe).decrypt(ctx.secret_key())
    if not np.allclose(got, probe, atol=1e-3):
        raise ServiceConfigError(f"{where}: the secret key does not match the public context")
    return SecretContext(public, ctx)


def _register(
    auth: GradingAuthority,
    agencies: dict[str, tuple[bytes, str]],
    requesters: dict[str, bytes],
    catalog: Catalog,
) -> None:
    for agency, (key, own) in sorted(agencies.items()):
        if own not in catalog.agencies:
            raise ServiceConfigError(f"agency {agency!r}: {own!r} is not in the catalog")
        auth.register_agency(agency, key, own)
    for requester, key in sorted(requesters.items()):
        auth.register_requester(requester, key)


__all__ = ["AUTHORITY_ID", "open_grading_desk", "write_grading_authority"]
