"""Aggregation rows for the TenSEAL backends: ``bfv``, ``ckks`` and ``tenseal-naive``.

Each function takes the **same** dense agency vectors the aggregate suite measures (one
int64 vector per agency, with the agency's catalog bound) and the numpy sum, and returns
one record with the aggregate suite's fields (``backend``, ``subjects``, ``agencies``,
``ns_per_subject_delta``, ``encrypt_us_per_subject``, ``encrypt_online_us_per_subject``,
``decrypt_us_per_subject``, ``bytes_per_subject``) plus the lattice parameters (``N``,
``modulus_bits``, ``slots``, ``context_bytes``).  Every encrypted sum is decrypted and
compared with the numpy sum; a difference raises :class:`HeCorrectnessError`.

``ns_per_subject_delta`` is the aggregator's hot path: the median time of one in-place
addition of an agency ciphertext vector into a period accumulator
(:meth:`~psc.hazmat.backends.bfv.TensealBackend.accumulate`), divided by ``subjects``.
``ns_per_subject_delta_sum`` is :meth:`sum` over all ``M`` vectors divided by
``subjects * (M - 1)`` (it also allocates the accumulator: TenSEAL has no cheap copy).

* ``bfv``: :class:`psc.hazmat.backends.bfv.BfvBackend`, N = 4096, plaintext modulus sized from the
  worst-case sum of the vectors' bounds.
* ``ckks``: :class:`psc.hazmat.backends.ckks.CkksBackend` with
  :data:`~psc.hazmat.backends.ckks.AGGREGATION_PARAMS` (N = 8192).
* ``tenseal-naive``: one CKKS vector per subject (TenSEAL used naively), measured on the
  first ``naive_subjects`` subjects; per-subject figures compare directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import tenseal as ts

from benchmarks.report import time_call
from psc.hazmat.backends.bfv import BfvBackend, TensealBackend
from psc.hazmat.backends.ckks import AGGREGATION_PARAMS, CkksBackend
from psc.hazmat.he.contexts import SecretContext, generate
from psc.hazmat.he.params import BfvParams

IntArray = npt.NDArray[np.int64]
Progress = Callable[[str], None]


class HeCorrectnessError(AssertionError):
    """A TenSEAL sum did not decrypt to the numpy sum."""


def _quiet(_: str) -> None:
    pass


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def _measure(
    backend: TensealBackend,
    secret: SecretContext,
    vectors: Sequence[IntArray],
    bounds: Sequence[int],
    expected: IntArray,
    repeat: int,
    progress: Progress,
) -> dict[str, Any]:
    n, m = expected.size, len(vectors)
    backend.encrypt(vectors[0][: min(n, 16)], bound=bounds[0])  # warm-up, untimed
    enc_ns: list[float] = []
    cts = []
    for k, (v, b) in enumerate(zip(vectors, bounds, strict=True)):
        progress(f"{backend.name}: agency {k + 1}/{m} encrypts {n} subjects")
        t0 = time.perf_counter_ns()
        cts.append(backend.encrypt(v, bound=b))
        enc_ns.append(time.perf_counter_ns() - t0)
    progress(f"{backend.name}: aggregating {m} vectors")
    t_sum = time_call(lambda: backend.sum(cts), repeat=repeat)
    # the aggregator's hot path: in-place additions into an accumulator it owns (made
    # untimed from the first two vectors, as at the start of a period)
    acc_ns: list[float] = []
    for _ in range(max(4 * repeat, 11)):
        acc = backend.sum(cts[:2])
        for c in cts[2:]:
            t0 = time.perf_counter_ns()
            acc = backend.accumulate(acc, c)
            acc_ns.append(time.perf_counter_ns() - t0)
    total = backend.sum(cts)
    t_dec = time_call(lambda: backend.decrypt(total, secret), repeat=repeat)
    got = backend.decrypt(total, secret)
    if not np.array_equal(got, expected):
        raise HeCorrectnessError(f"{backend.name}: decrypted sum differs from numpy's")
    wire = backend.serialize(cts[0])
    p = backend.public.params
    return {
        "backend": backend.name,
        "subjects": n,
        "measured_subjects": n,
        "agencies": m,
        # with two agencies there is no in-place accumulate after the first sum: use the sum
        "ns_per_subject_delta": (
            _median(acc_ns) / n if acc_ns else t_sum.median_ns / (n * (m - 1))
        ),
        "ns_per_subject_delta_sum": t_sum.median_ns / (n * (m - 1)),
        "aggregate_ms": t_sum.median_ns / 1e6,
        "encrypt_us_per_subject": _median(enc_ns) / n / 1e3,
        "encrypt_online_us_per_subject": None,  # TenSEAL has no precomputed-randomness path
        "decrypt_us_per_subject": t_dec.median_ns / n / 1e3,
        "bytes_per_subject": len(wire) / n,
        "N": p.n,
        "modulus_bits": p.modulus_bits,
        "slots": p.slots,
        "ciphertexts_per_agency": len(cts[0].parts),
        "context_bytes": backend.public.byte_size,
        "checked": True,
        "digits_per_slot": getattr(p, "digits", 1),
        "timing": {
            "sum": t_sum.as_json(),
            "accumulate_ns_per_addition": acc_ns,
            "decrypt": t_dec.as_json(),
        },
    }


def bfv_record(
    vectors: Sequence[IntArray],
    bounds: Sequence[int],
    expected: IntArray,
    *,
    repeat: int = 5,
    n: int = 4096,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """The ``bfv`` row: plaintext modulus from the sum of the agencies' bounds."""
    params = BfvParams.for_bound(sum(bounds), n=n)
    secret = generate(params)
    return _measure(BfvBackend(secret.public), secret, vectors, bounds, expected, repeat, progress)


def ckks_record(
    vectors: Sequence[IntArray],
    bounds: Sequence[int],
    expected: IntArray,
    *,
    repeat: int = 5,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """The ``ckks`` row: N = 8192 aggregation profile, values rounded at decryption."""
    secret = generate(AGGREGATION_PARAMS)
    return _measure(CkksBackend(secret.public), secret, vectors, bounds, expected, repeat, progress)


def tenseal_naive_record(
    vectors: Sequence[IntArray],
    expected: IntArray,
    *,
    naive_subjects: int = 100,
    repeat: int = 3,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """The ``tenseal-naive`` row: one CKKS ciphertext (N = 8192) per subject and agency."""
    secret = generate(AGGREGATION_PARAMS)
    ctx = secret.public.context
    n, m = min(naive_subjects, expected.size), len(vectors)
    enc_ns: list[float] = []
    columns: list[list[Any]] = []
    for k, v in enumerate(vectors):
        progress(f"tenseal-naive: agency {k + 1}/{m} encrypts {n} values one by one")
        t0 = time.perf_counter_ns()
        columns.append([ts.ckks_vector(ctx, [float(x)]) for x in v[:n]])
        enc_ns.append(time.perf_counter_ns() - t0)
    per_subject = list(zip(*columns, strict=True))

    def aggregate() -> list[Any]:
        out = []
        for col in per_subject:
            acc = col[0] + col[1]
            for c in col[2:]:
                acc.add_(c)
            out.append(acc)
        return out

    t_agg = time_call(aggregate, repeat=repeat)
    total = aggregate()
    sk = secret.context.secret_key()
    t_dec = time_call(lambda: [c.decrypt(sk) for c in total], repeat=repeat)
    got = np.array([round(c.decrypt(sk)[0]) for c in total], dtype=np.int64)
    if not np.array_equal(got, expected[:n]):
        raise HeCorrectnessError("tenseal-naive: decrypted sums differ from numpy's")
    p = AGGREGATION_PARAMS
    return {
        "backend": "tenseal-naive",
        "subjects": n,
        "measured_subjects": n,
        "agencies": m,
        "ns_per_subject_delta": t_agg.median_ns / (n * (m - 1)),
        "aggregate_ms": t_agg.median_ns / 1e6,
        "encrypt_us_per_subject": _median(enc_ns) / n / 1e3,
        "encrypt_online_us_per_subject": None,
        "decrypt_us_per_subject": t_dec.median_ns / n / 1e3,
        "bytes_per_subject": float(len(columns[0][0].serialize())),
        "N": p.n,
        "modulus_bits": p.modulus_bits,
        "slots": p.slots,
        "ciphertexts_per_agency": n,
        "context_bytes": secret.public.byte_size,
        "checked": True,
        "timing": {"aggregate": t_agg.as_json(), "decrypt": t_dec.as_json()},
    }


def he_records(
    vectors: Sequence[IntArray],
    bounds: Sequence[int],
    expected: IntArray,
    *,
    repeat: int = 5,
    naive_subjects: int = 100,
    progress: Progress = _quiet,
) -> list[dict[str, Any]]:
    """All three rows, for the lead to append to an aggregate group (then ``ratio_to_numpy``)."""
    return [
        bfv_record(vectors, bounds, expected, repeat=repeat, progress=progress),
        ckks_record(vectors, bounds, expected, repeat=repeat, progress=progress),
        tenseal_naive_record(
            vectors,
            expected,
            naive_subjects=naive_subjects,
            repeat=min(repeat, 3),
            progress=progress,
        ),
    ]
