"""The psc protocol: public parameters, messages, encoding, signatures, log views (``protocols/``).

The front door is :mod:`psc.parties` (Registry, Agency, Aggregator, KeyHolder,
RelyingParty, Subject) and the reference driver :mod:`psc.sim.driver`.  Messages
(:mod:`~psc.protocol.messages`) are encoded by :mod:`~psc.protocol.codec` (canonical
CBOR) and signed by :mod:`~psc.protocol.signing` (domain-separated Ed25519).
"""

from __future__ import annotations

from psc.protocol.messages import PROTOCOL_VERSION

__all__ = ["PROTOCOL_VERSION"]
