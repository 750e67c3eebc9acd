"""The registry's rights-office act: a signed adjustment order (``protocols/rights.md``)."""

from __future__ import annotations

from collections.abc import Sequence

from psc.parties.consent_gate import CredentialRegistry
from psc.parties.rights.messages import AdjustmentOrder
from psc.protocol.messages import (
    NONCE_BYTES,
)
from psc.protocol.signing import seal


class RightsRegistry(CredentialRegistry):
    """The registry with its rights office's one protocol act: ordering an adjustment.

    The order is signed, so an agency compensates only what the rights office decided.
    """

    def adjustment_order(
        self,
        identity: str,
        agency: str,
        kind: str,
        *,
        case: str,
        original: bytes = b"",
        leaves: Sequence[int] = (),
        rule: str = "",
    ) -> bytes:
        """Registry (rights office): a sealed :class:`AdjustmentOrder` for an agency.

        Leaks to the agency: that this slot's request was granted (it knows the slot's
        events anyway).  Raises :class:`UnknownParty` for an identity not enrolled,
        :class:`InvalidMessage` for an order that is malformed.
        """
        msg = AdjustmentOrder(
            agency=agency,
            kind=kind,
            subject=self.slot_of(identity),
            original=original,
            leaves=tuple(sorted(set(leaves))),
            rule=rule,
            case=case,
            nonce=self._randbytes(NONCE_BYTES),
            issued_at=int(self._clock().timestamp()),
        )
        return seal(msg, self._key)
