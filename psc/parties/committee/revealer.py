"""The :class:`~psc.parties.key_holder.Revealer` seam: a key holder plugs the committee in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from psc.hazmat.backends.paillier import PackedCiphertext
from psc.parties.committee.combiner import KeyCommittee
from psc.parties.committee.outcomes import CommitteeReveal
from psc.parties.key_holder import Revealer


class CommitteeRevealer(Revealer):
    """Plugs a :class:`KeyCommittee` into the key holder (:class:`~psc.parties.key_holder.KeyHolder`).

    The key holder calls :meth:`grades_for` with the request's hash and period (needed
    for the budget); :attr:`last` keeps the last :class:`CommitteeReveal` so the caller can
    report the privacy loss and excluded members.
    """

    def __init__(self, committee: KeyCommittee) -> None:
        self.committee = committee
        self.last: CommitteeReveal | None = None

    def grades(
        self,
        slots: Sequence[int],
        score: Mapping[int, PackedCiphertext],
        caps: Mapping[str, Mapping[int, PackedCiphertext]],
    ) -> dict[int, int]:
        """Refused: a DP release must be accounted to a request and a period.

        Raises ``ValueError``; the key holder calls :meth:`grades_for`.
        """
        raise ValueError(
            "the committee's DP reveal charges each release to a request and period: "
            "call grades_for(request_hash, period, slots, score, caps)"
        )

    def grades_for(
        self,
        request_hash: bytes,
        period: int,
        slots: Sequence[int],
        score: Mapping[int, PackedCiphertext],
        caps: Mapping[str, Mapping[int, PackedCiphertext]],
        *,
        authorization: bytes,
    ) -> dict[int, int]:
        """Key holder: grade indices of ``slots`` via :meth:`KeyCommittee.reveal_grades`,
        with the aggregator-signed request the members check against the log."""
        self.last = self.committee.reveal_grades(
            request_hash, period, slots, score, caps, authorization=authorization
        )
        return dict(self.last.grades)
