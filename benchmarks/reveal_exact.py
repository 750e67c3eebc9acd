"""The ``threshold-exact`` records of the reveal benchmark: exact grades under a dealer-free
k-of-n BFV key (:mod:`psc.parties.exact`), measured beside ``threshold-dp`` and the trusted
baseline in one run of ``python -m benchmarks reveal``.

Each member runs in its own OS process (forked after setup, so it keeps its key share and
its cache of evaluated grade ciphertexts); the combiner asks exactly ``k`` of them in
parallel.  Records (one per mode):

* ``batch``: every slot of one ciphertext (``subjects`` = the ring dimension ``N``, a
  simulated city of that size) graded in one reveal: each member evaluates the grade
  circuit itself, then decrypts; ``ms_per_subject`` = wall time / subjects;
* ``single``: one relying-party query (one slot, masked) after the period's grade
  ciphertext is evaluated (members cache it per period and log head): the median latency;
  ``cold_ms`` is the first query of a period, which includes the evaluation.

Fields beyond the shared ones: ``ring_degree``, ``log_q``, ``plain_modulus`` (``key_bits``
is ``log q``), ``rounds`` (task/share, then the ciphertext fetch), ``bytes_per_subject``
(every byte the combiner sends and receives), ``member_cpu_s`` (CPU seconds of each asked
member), ``products`` (ciphertext products one member computes), ``setup_s`` (dealer-free
key generation and its known-answer check, once per committee), ``noise_bits`` and
``noise_allowance`` (god view: the grade ciphertext's measured noise against the largest
noise the smudging covers at 2^-40).
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import time
from typing import Any

import numpy as np

from benchmarks.report import Progress
from psc.catalog import Catalog
from psc.hazmat.exact import threshold
from psc.hazmat.exact.ring import LatticeParams
from psc.parties.exact.inputs import SCORE, ciphertext_bytes
from psc.parties.exact.member import ExactMember, open_request
from psc.sim.exact_deployment import ExactDeployment

_RH = bytes(32)


def _serve(conn: Any, member: ExactMember) -> None:
    while True:
        job = conn.recv()
        if job is None:
            return
        c0 = time.process_time()
        sealed = member.decryption_share(job)
        cpu = time.process_time() - c0
        digest = next(reversed(member._decrypted))
        conn.send((sealed, ciphertext_bytes(member._decrypted[digest]), cpu))


class _ForkedMember:
    """A member in its own process: the two calls the combiner makes."""

    def __init__(self, member: ExactMember) -> None:
        ctx = mp.get_context("fork")
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, member), daemon=True)
        self.proc.start()
        self._ct = b""
        self.cpu: list[float] = []

    def send(self, task: bytes) -> None:
        self._sent = task
        self._conn.send(task)

    def decryption_share(self, task: bytes) -> bytes:
        if task != self._sent:
            raise RuntimeError("the combiner's task differs from the broadcast one")
        sealed, ct, cpu = self._conn.recv()
        self._ct = ct
        self.cpu.append(cpu)
        return bytes(sealed)

    def ciphertext(self, _digest: bytes) -> bytes:
        return self._ct

    def stop(self) -> None:
        self._conn.send(None)
        self.proc.join(timeout=30)
        if self.proc.is_alive():
            self.proc.kill()


def exact_run(
    catalog: Catalog,
    lattice: LatticeParams,
    k: int,
    n: int,
    population: Any,
    singles: int,
    progress: Progress,
) -> list[dict[str, Any]]:
    t0 = time.perf_counter()
    dep = ExactDeployment.create(catalog, lattice, k, n, god_view=True)
    setup_s = time.perf_counter() - t0
    progress(f"threshold-exact: setup {setup_s:.1f} s ({lattice.describe()}, {k}-of-{n})")
    sums, caps, oracle, period = population(catalog, dep.ring.n, 3)
    longest = max(catalog.retention, key=lambda r: catalog.retention[r].months)
    agency = catalog.rules[0].agency
    dep.submit(agency, period, longest, SCORE, 0, sums)
    for label, counts in caps.items():
        dep.submit(agency, period, longest, label, 0, counts)
    # the god view, outside the protocol: the circuit's noise against the allowance
    probe = dep.members[1].grade_ciphertext(open_request(dep.params, dep.request(_RH, period, 0)))
    assert dep.god_secret is not None
    noise = threshold.noise_bits(dep.ring, probe, dep.god_secret)
    products = dep.members[1].products
    dep.members[1]._grades.clear()
    ask = tuple(range(1, k + 1))
    forked = {i: _ForkedMember(dep.members[i]) for i in ask}
    comb = dep.combiner
    comb.members = dict(forked)

    def reveal(sealed: bytes) -> Any:
        # hand the task to every member first so they work in parallel, then collect in order
        task = comb.task(sealed)
        for i in ask:
            forked[i].send(task)
        return comb.reveal_task(sealed, task, ask)

    try:
        comb.bytes_exchanged = 0
        t0 = time.perf_counter()
        out = reveal(dep.request(_RH, period, 0))
        batch_s = time.perf_counter() - t0
        got = np.array([catalog.grade_index(g.grade) for g in out.grades])
        mis = float(np.mean(got != oracle))
        batch_bytes = comb.bytes_exchanged
        cpu_batch = [forked[i].cpu[-1] for i in ask]
        progress(f"threshold-exact: batch {batch_s:.1f} s for {dep.ring.n:,} subjects")
        lat = []
        single_mis = 0
        rng = np.random.default_rng(4)
        comb.bytes_exchanged = 0
        for _ in range(singles):
            slot = int(rng.integers(0, dep.ring.n))
            t0 = time.perf_counter()
            one = reveal(dep.request(_RH, period, 0, (slot,)))
            lat.append(time.perf_counter() - t0)
            single_mis += int(catalog.grade_index(one.grades[0].grade) != oracle[slot])
        single_bytes = comb.bytes_exchanged / max(singles, 1)
        cpu_single = [statistics.median(forked[i].cpu[1:]) for i in ask] if singles else []
    finally:
        for m in forked.values():
            m.stop()
    common = {
        "protocol": "threshold-exact",
        "k": k,
        "n": n,
        "key_bits": dep.ring.q.bit_length(),
        "ring_degree": dep.ring.n,
        "log_q": dep.ring.q.bit_length(),
        "plain_modulus": dep.ring.t,
        "epsilon": None,
        "rounds": 2,
        "members_asked": len(ask),
        "products": products,
        "setup_s": round(setup_s, 1),
        "noise_bits": noise,
        "noise_allowance": dep.noise_allowance,
        "offline_ms_per_subject": 0.0,
    }
    return [
        {
            **common,
            "mode": "batch",
            "subjects": dep.ring.n,
            "ms_per_subject": batch_s * 1000 / dep.ring.n,
            "misgrade_rate": mis,
            "bytes_per_subject": batch_bytes / dep.ring.n,
            "member_cpu_s": [round(c, 2) for c in cpu_batch],
        },
        {
            **common,
            "mode": "single",
            "subjects": 1,
            "ms_per_subject": statistics.median(lat) * 1000 if lat else None,
            "cold_ms": batch_s * 1000,
            "misgrade_rate": single_mis / max(singles, 1),
            "bytes_per_subject": single_bytes,
            "member_cpu_s": [round(c, 3) for c in cpu_single],
        },
    ]
