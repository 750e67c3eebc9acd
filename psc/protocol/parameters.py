"""The public parameters every party of a scoring period knows after setup.

Normative: ``protocols/setup.md``.  :class:`ProtocolParameters` (catalog, Paillier public
key, slot layout, subject count, the infrastructure parties' public keys), the layout and
per-agency bounds derived from the catalog, and the protocol's constants (party ids,
purposes, request freshness windows).  Nothing here is secret.
"""

from __future__ import annotations

from dataclasses import dataclass

from gmpy2 import mpz

from psc.catalog import Catalog
from psc.exceptions import (
    CatalogMismatch,
    InvalidMessage,
    ParameterError,
)
from psc.hazmat.backends.paillier import PackedCiphertext, PackedPaillier, RandomnessPool
from psc.hazmat.packing import SlotLayout, worst_case_sum
from psc.hazmat.paillier import PaillierPublicKey
from psc.protocol.messages import (
    PublicParameters,
)
from psc.protocol.signing import open_signed

__all__ = [
    "CLOCK_SKEW",
    "MIN_COMMITMENT_LEAVES",
    "REGISTRY_ID",
    "REQUEST_MAX_AGE",
    "SCORE_LABEL",
    "SELF_ACCESS_PURPOSE",
    "ProtocolParameters",
    "cap_bounds",
    "delta_bounds",
    "protocol_layout",
]

#: The registry's party id (it signs registrations and requests made for subjects).
REGISTRY_ID = "registry"
#: The purpose of a subject asking for its own grade; must be in the catalog's purposes.
SELF_ACCESS_PURPOSE = "subject-self-access"
#: The label of the score sum in a reveal request (cap counters use their cap label).
SCORE_LABEL = "score"
#: How old (seconds) a grade or access request may be when it is answered.
REQUEST_MAX_AGE = 600
#: How far (seconds) a request's time may run ahead of the answering party's clock.
CLOCK_SKEW = 60
#: Smallest number of leaves an event commitment is padded to (see ``protocols/submit.md``).
MIN_COMMITMENT_LEAVES = 16


def _fresh(issued_at: int, now: int) -> None:
    if not now - REQUEST_MAX_AGE <= issued_at <= now + CLOCK_SKEW:
        raise InvalidMessage("request is not fresh")


def protocol_layout(catalog: Catalog, key_bits: int, *, multiplicity: int = 1) -> SlotLayout:
    """The slot layout for a deployment: every lawful live sum of deltas *and* cap counters fits.

    Deltas: :meth:`SlotLayout.for_catalog` (each rule summed over its retention, times
    ``multiplicity``).  Cap counters: ``multiplicity * sum over capping rules of
    months * max_per_period``; the wider of the two sets the slot width.
    """
    caps = multiplicity * sum(
        catalog.retention[r.retention].months * r.max_per_period
        for r in catalog.rules
        if r.grade_cap is not None
    )
    need = max(worst_case_sum(catalog, multiplicity=multiplicity), caps)
    return SlotLayout.for_catalog(
        catalog, key_bits, multiplicity=multiplicity, slot_bits=need.bit_length() + 1
    )


def delta_bounds(catalog: Catalog, catalog_agency: str) -> dict[str, int]:
    """Retention class -> public bound of one agency's dense delta vector in one period.

    Only classes in which the agency has a rule with a non-zero delta appear: exactly the
    ``deltas`` its submissions carry.
    """
    out: dict[str, int] = {}
    for r in catalog.rules:
        if r.agency == catalog_agency and r.delta != 0:
            out[r.retention] = catalog.agency_period_bound(catalog_agency, r.retention)
    return dict(sorted(out.items()))


def cap_bounds(catalog: Catalog, catalog_agency: str) -> dict[tuple[str, str], int]:
    """(retention class, cap label) -> public bound of one agency's cap counter per period."""
    out: dict[tuple[str, str], int] = {}
    for r in catalog.rules:
        if r.agency == catalog_agency and r.grade_cap is not None:
            key = (r.retention, r.grade_cap)
            out[key] = out.get(key, 0) + r.max_per_period
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class ProtocolParameters:
    """What every party knows after setup: the catalog, the Paillier public key, the layout,
    the subject count and the three infrastructure keys.

    ``allow_insecure_key`` is a local decision (tests and small demos): it lets keys below
    2048 bits through :class:`~psc.hazmat.backends.paillier.PackedPaillier`.
    """

    catalog: Catalog
    public_key: PaillierPublicKey
    layout: SlotLayout
    n_subjects: int
    multiplicity: int
    registry_key: bytes
    aggregator_key: bytes
    key_holder_key: bytes
    issued_at: int = 0
    allow_insecure_key: bool = False

    @property
    def catalog_version(self) -> bytes:
        return bytes.fromhex(self.catalog.version_hash)

    def backend(self, pool: RandomnessPool | None = None) -> PackedPaillier:
        """A packed Paillier backend under the public key (encryption only)."""
        return PackedPaillier(
            self.public_key, self.layout, pool=pool, allow_insecure_key=self.allow_insecure_key
        )

    def to_message(self) -> PublicParameters:
        n = int(self.public_key.n)
        return PublicParameters(
            scheme=self.catalog.scheme.name,
            catalog_version=self.catalog_version,
            paillier_n=n.to_bytes((n.bit_length() + 7) // 8, "big"),
            slot_bits=self.layout.slot_bits,
            slots=self.layout.slots,
            n_subjects=self.n_subjects,
            multiplicity=self.multiplicity,
            registry_key=self.registry_key,
            aggregator_key=self.aggregator_key,
            key_holder_key=self.key_holder_key,
            issued_at=self.issued_at,
        )

    @classmethod
    def from_sealed(
        cls,
        sealed: bytes,
        catalog: Catalog,
        registry_key: bytes,
        *,
        allow_insecure_key: bool = False,
    ) -> ProtocolParameters:
        """Any party, at setup: open the registry's published parameters.

        Pre-condition: ``registry_key`` was obtained out of band (the root of trust).
        Raises :class:`InvalidMessage` (bad signature, malformed), :class:`CatalogMismatch`
        if the parameters are for another catalog, :class:`ParameterError` if the layout
        cannot hold every lawful sum.
        """
        msg = open_signed(sealed, PublicParameters, lambda m: registry_key)
        if msg.registry_key != registry_key:
            raise InvalidMessage("parameters name another registry key")
        if msg.catalog_version != bytes.fromhex(catalog.version_hash):
            raise CatalogMismatch(
                "the published parameters are for another catalog version; load the catalog "
                f"whose version hash is {msg.catalog_version.hex()}"
            )
        pk = PaillierPublicKey(mpz(int.from_bytes(msg.paillier_n, "big")))
        layout = SlotLayout(msg.slot_bits, msg.slots)
        want = protocol_layout(catalog, pk.bits, multiplicity=msg.multiplicity)
        # wider slots than the catalog needs are safe (the committee's DP reveal adds
        # noise and masks in that headroom); the slot count must follow from the width
        wider = msg.slot_bits > want.slot_bits and layout == SlotLayout.for_key(
            pk.bits, msg.slot_bits
        )
        if layout != want and not wider:
            raise ParameterError(
                f"published layout {layout} differs from the one the catalog requires ({want})"
            )
        return cls(
            catalog,
            pk,
            layout,
            msg.n_subjects,
            msg.multiplicity,
            msg.registry_key,
            msg.aggregator_key,
            msg.key_holder_key,
            msg.issued_at,
            allow_insecure_key,
        )


def trivial_zero(params: ProtocolParameters) -> PackedCiphertext:
    """``E(0; r=1) = 1`` per block: the live sum of a label with no live contribution
    (nothing is hidden, and nothing needs to be)."""
    pk = params.public_key
    blocks = tuple(mpz(1) for _ in range(params.layout.blocks(params.n_subjects)))
    return PackedCiphertext(pk.fingerprint, params.layout, params.n_subjects, 0, blocks)
