"""A party's configuration file and key files: what ``psc serve ROLE --config FILE`` reads.

Normative: ``protocols/service.md`` §7.  :class:`ServiceConfig` is one served party's TOML
file (paths relative to it); :func:`load_config` refuses unknown keys (naming the nearest
valid one), wrong types and missing files with :class:`~psc.exceptions.ServiceConfigError`,
saying what to do; :func:`load_params` checks the registry-signed parameters against the
catalog and the registry key.  Key files hold 32 raw Ed25519 bytes, mode 0600: whoever
reads one *is* that party.  :mod:`psc.service.deploy` writes these files.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.catalog import Catalog, load_catalog
from psc.exceptions import ServiceConfigError
from psc.protocol.parameters import ProtocolParameters

ROLES = (
    "aggregator",
    "member",
    "registry",
    "agency",
    "key-holder",
    "grading-authority",
    "rights-office",
)


@dataclass(frozen=True)
class ServiceConfig:
    """One served party's configuration (``DIR/<role>.toml``); paths relative to the file."""

    role: str
    catalog: str
    params: str
    registry_key: str
    signing_key: str = ""  # every role but the rights office, which signs nothing
    ledger: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    allow_insecure_key: bool = False
    max_body: int = 64 * 1024 * 1024
    #: members only: the committee's public file, the key share, and the public log every
    #: member recomputes what it decrypts from: the aggregator's URL (a verified replica
    #: is synced from it) or, on one machine, its ledger file (read-side)
    committee: str = ""
    key_share: str = ""
    log: str = ""
    #: the registry: its private enrolment (identity -> slot), JSON
    slots: str = ""
    #: an agency: its id, its catalog agency and its records (SQLite, protocols/service.md)
    agency_id: str = ""
    catalog_agency: str = ""
    records: str = ""
    #: the key holder: the trusted Paillier private key (JSON), or with a committee the
    #: combiner's signing key, store and each subject's budget in releases
    paillier_key: str = ""
    combiner_key: str = ""
    committee_store: str = ""
    budget_releases: int = 12
    #: the CKKS grading authority: its description (JSON, psc/service/he_deploy.py)
    grading: str = ""
    #: SIMULATION ONLY (psc demo's god view, never a deployment): a directory where a member
    #: records the grade noise it draws, so the demo can check every DP grade exactly
    simulation_noise_witness: str = ""
    #: the rights office: a deployment TOML for its calendar and deadlines (optional)
    rights_calendar: str = ""
    base: str = ""  # the directory the paths are relative to (set by load_config)

    def path(self, name: str) -> Path:
        p = Path(name)
        return p if p.is_absolute() else Path(self.base) / p


def _write_key(path: Path, key: Ed25519PrivateKey) -> None:
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(raw)


def read_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key file (32 raw bytes); :class:`ServiceConfigError` otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ServiceConfigError(f"cannot read key file {path}: {e.strerror}; run psc init") from e
    if len(raw) != 32:
        raise ServiceConfigError(f"{path} is not a 32-byte Ed25519 key file; run psc init again")
    return Ed25519PrivateKey.from_private_bytes(raw)


def _toml(values: Mapping[str, object]) -> str:
    out = []
    for k, v in values.items():
        if isinstance(v, bool):
            out.append(f"{k} = {'true' if v else 'false'}")
        elif isinstance(v, int):
            out.append(f"{k} = {v}")
        else:
            s = str(v).replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'{k} = "{s}"')
    return "\n".join(out) + "\n"


def _write_private(path: Path, text: str) -> None:
    """A secret file (mode 0600) in a directory made as needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def load_config(path: str | Path) -> ServiceConfig:
    """Read and check a party's config: every key known, every file present."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text("utf-8"))
    except OSError as e:
        raise ServiceConfigError(f"cannot read {p}: {e.strerror}; psc init DIR writes it") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ServiceConfigError(f"{p} is not valid TOML: {e}") from e
    known = {f.name for f in fields(ServiceConfig)} - {"base"}
    for key in doc:
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ServiceConfigError(f"{p}: unknown key {key!r}{hint}")
    role = doc.get("role")
    need = (_REQUIRED - ({"signing_key"} if role == "rights-office" else set())) | (
        _ROLE_FILES.get(role if isinstance(role, str) else "", set())
    )
    missing = [f.name for f in fields(ServiceConfig) if f.name not in doc and f.name in need]
    if missing:
        raise ServiceConfigError(f"{p}: missing {', '.join(missing)}; run psc init again")
    if doc["role"] not in ROLES:
        raise ServiceConfigError(f"{p}: role {doc['role']!r} is not one of {', '.join(ROLES)}")
    for key, typ in _TYPES.items():
        if (key in doc and not isinstance(doc[key], typ)) or (
            isinstance(doc.get(key), bool) and (typ is int)
        ):
            raise ServiceConfigError(f"{p}: {key} must be a {typ.__name__}")
    cfg = ServiceConfig(**doc, base=str(p.parent))
    files = [
        "params",
        *(["signing_key"] if cfg.role != "rights-office" else []),
        *sorted(_ROLE_FILES[cfg.role] - {"ledger", "agency_id", "catalog_agency"}),
    ]
    if is_log_url(cfg.log):  # the log comes over HTTP into a replica (no file)
        files.remove("log")
    if cfg.role == "key-holder":
        files += ["committee", "combiner_key"] if cfg.committee else ["paillier_key"]
    for key in files:
        if not cfg.path(getattr(cfg, key)).is_file():
            raise ServiceConfigError(f"{p}: {key} file {cfg.path(getattr(cfg, key))} is missing")
    return cfg


_REQUIRED = {"role", "catalog", "params", "registry_key", "signing_key"}
#: per role: the further keys it must have (files among them must exist)
_ROLE_FILES: dict[str, set[str]] = {
    "aggregator": {"ledger"},
    "member": {"ledger", "committee", "key_share", "log"},
    "registry": {"slots"},
    "agency": {"ledger", "agency_id", "catalog_agency", "records"},
    "key-holder": {"ledger", "log"},
    "grading-authority": {"ledger", "grading"},
    "rights-office": {"ledger"},
}
_TYPES: dict[str, type] = {
    "role": str,
    "catalog": str,
    "params": str,
    "registry_key": str,
    "signing_key": str,
    "ledger": str,
    "host": str,
    "port": int,
    "allow_insecure_key": bool,
    "max_body": int,
    "committee": str,
    "key_share": str,
    "log": str,
    "slots": str,
    "agency_id": str,
    "catalog_agency": str,
    "records": str,
    "paillier_key": str,
    "combiner_key": str,
    "committee_store": str,
    "budget_releases": int,
    "grading": str,
    "simulation_noise_witness": str,
    "rights_calendar": str,
}


def load_params(cfg: ServiceConfig) -> ProtocolParameters:
    """The registry-signed parameters, checked against the catalog and the registry key."""
    cat: Catalog = load_catalog(cfg.catalog)
    try:
        key = bytes.fromhex(cfg.registry_key)
    except ValueError:
        raise ServiceConfigError("registry_key must be hexadecimal") from None
    return ProtocolParameters.from_sealed(
        cfg.path(cfg.params).read_bytes(),
        cat,
        key,
        allow_insecure_key=cfg.allow_insecure_key,
    )


def is_log_url(log: str) -> bool:
    """Whether a config's ``log`` names the aggregator's URL rather than its ledger file."""
    return log.startswith(("http://", "https://"))
