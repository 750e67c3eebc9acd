"""The CKKS grading path across processes: the grading authority as its own process.

What ``psc demo --reveal he --in-process`` does in one process (``god_view._he_result``),
with the authority served: :func:`grade_he_across_processes` adds the authority to a
deployment ``psc init`` (or :mod:`psc.sim.loopback`) wrote, starts it with ``psc serve
grading-authority`` among the caller's :class:`~psc.service.processes.Parties`, and talks
to it only through :class:`~psc.service.he_client.HttpGradingAuthority` (every receipt and
response checked).  Phases, one comment each below:

1. setup: the authority's CKKS keys and files (:mod:`psc.service.he_deploy`), its process;
2. submit: each agency instance encrypts one dense vector per (period, class, counter) under
   the fetched public context and signs it with its key file; the authority logs it;
3. reveal: the registry asks for every slot (one signed request per block of slots), the
   bank for one; the authority grades, floods, decrypts and answers with signed responses.

The simulation acts for the agencies and requesters with their key files (the agency
processes of :mod:`psc.sim.loopback` do not encrypt under CKKS); the authority is the only
party served here.  Only the CLI, benchmarks and tests import this module.
"""

from __future__ import annotations

import os
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from psc.events import Event, EventTable
from psc.protocol.messages import GradeRequest
from psc.protocol.signing import seal
from psc.service.client import HttpPeer
from psc.service.config import load_config, load_params, read_key
from psc.service.he_client import HttpGradingAuthority
from psc.service.he_deploy import write_grading_authority
from psc.service.processes import Parties
from psc.sim.he_driver import he_submission, period_vectors


@dataclass(frozen=True)
class HeAcrossProcesses:
    """What :func:`grade_he_across_processes` observed, as the requesters received it."""

    grades: dict[int, int]  # every slot -> grade index, from the registry's responses
    relying_party: tuple[int, int]  # the bank's slot and grade, from its response
    submissions: int  # signed CKKS submissions logged
    bytes_sent: int  # their size in bytes
    requests: int  # signed grade requests answered
    answers: tuple[dict[int, int], ...] = ()  # per request (the bank's last): slot -> grade
    asked: tuple[tuple[int, ...], ...] = ()  # per request: its slots
    score_submissions: int = 0  # of ``submissions``: score vectors (the rest: cap counters)
    context_bytes: int = 0  # the public context the agencies fetched
    seconds: tuple[tuple[str, float], ...] = ()  # keygen (files and process), submit, reveal
    url: str = ""  # the authority's process (left running among the caller's parties)


def grade_he_across_processes(
    root: Path,
    parties: Parties,
    events: Mapping[str, Sequence[Event]],
    *,
    first_period: int,
    at: int,
    relying_party_slot: int,
    randbytes: Callable[[int], bytes] = os.urandom,
) -> HeAcrossProcesses:
    """Grade every subject of the deployment in ``root`` at the close of ``at`` under
    CKKS, the grading authority its own process (module doc).

    ``events``: each agency instance's records by its id in ``agencies.toml``, subjects as
    slots.  ``first_period``: the deployment's first period (every agency submits from it
    on, zero vectors included).  The authority process stays among ``parties`` (the caller
    stops it).  Raises what the authority refuses with, or
    :class:`~psc.exceptions.InvalidMessage` for an answer that does not check.
    """
    # -- phase 1, setup: the authority's keys and files, then its process
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    config = root / "grading_authority.toml"
    if not config.exists():
        write_grading_authority(root, first_period=first_period)
    cfg = load_config(config)
    params = load_params(cfg)
    catalog, n = params.catalog, params.n_subjects
    party = parties.start("grading-authority", config)
    key = bytes.fromhex((root / "grading_authority.pub").read_text().strip())
    auth = HttpGradingAuthority(HttpPeer(party.url), key, catalog)
    try:
        context_bytes = auth.public.byte_size
        seconds["keygen"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        # -- phase 2, submit: each agency instance's dense vectors, encrypted and signed
        rows = tomllib.loads((root / "agencies.toml").read_text("utf-8"))
        sent = count = n_score = 0
        for ident, own in sorted(rows.items()):
            table = EventTable.from_events(catalog, events.get(ident, ()), n)
            signing = read_key(root / "agencies" / f"{ident}.key")
            vectors = period_vectors(table, range(first_period, at + 1))
            for (a, p, cls, counter), v in sorted(vectors.items()):
                if a != own:
                    continue
                data = he_submission(
                    auth,
                    ident,
                    signing,
                    p,
                    cls,
                    counter,
                    v,
                    str(own),
                    randbytes=randbytes,
                )
                auth.log_submission(data)
                sent, count = sent + len(data), count + 1
                n_score += counter == "score"
        seconds["submit"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        # -- phase 3, reveal: the registry for every slot, block by block; the bank for one
        purpose = catalog.scheme.purposes[0]
        bank = str(tomllib.loads((root / "bank.toml").read_text("utf-8"))["id"])
        S = auth.circuit.slots
        asks = [("registry", tuple(range(q, min(n, q + S)))) for q in range(0, n, S)]
        asks.append((bank, (relying_party_slot,)))
        keys = {"registry": read_key(root / "registry.key"), bank: read_key(root / "bank.key")}
        answers = [
            auth.reveal(
                seal(GradeRequest(rid, purpose, at, slots, randbytes(16), b"", 0), keys[rid])
            )
            for rid, slots in asks
        ]
        seconds["reveal"] = round(time.perf_counter() - t0, 3)
    finally:
        auth.close()
    grades: dict[int, int] = {}
    for answer in answers[:-1]:
        grades.update(answer)
    return HeAcrossProcesses(
        grades,
        (relying_party_slot, answers[-1][relying_party_slot]),
        count,
        sent,
        len(answers),
        tuple(answers),
        tuple(slots for _, slots in asks),
        n_score,
        context_bytes,
        tuple(seconds.items()),
        party.url,
    )


def grades_array(result: HeAcrossProcesses, n_subjects: int) -> np.ndarray:
    """The registry's grades as an array indexed by slot (for the oracle comparison)."""
    out = np.full(n_subjects, -1, dtype=np.int64)
    for slot, g in result.grades.items():
        out[slot] = g
    return out


__all__ = ["HeAcrossProcesses", "grade_he_across_processes", "grades_array"]
