"""The service layer: each party behind its own HTTP API, and clients with the same interfaces.

Normative: ``protocols/service.md``.  :mod:`~psc.service.http` (sealed CBOR bodies, limits,
errors on the wire), :mod:`~psc.service.apps` (one FastAPI app per served party),
:mod:`~psc.service.client` (HTTP clients implementing the in-process link interfaces),
:mod:`~psc.service.deploy` (``psc init``: a loopback deployment's configs and keys),
:mod:`~psc.service.serve` (``psc serve``), :mod:`~psc.service.processes` (parties as
processes on 127.0.0.1, stopped on every path).
"""
