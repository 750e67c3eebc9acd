"""What a reference run measured and checked: :class:`RunResult`, and :class:`HeReveal` for CKKS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from psc.catalog import period_label
from psc.hazmat.paillier import MIN_KEY_BITS

if TYPE_CHECKING:
    from psc.parties.agency import Agency
    from psc.protocol.parameters import ProtocolParameters
    from psc.sim.city import City
    from psc.sim.god_view import AccessTally, OracleComparison
    from psc.sim.meter import Meter


@dataclass
class RunResult:
    """What one driver run measured and checked."""

    subjects: int
    agencies: int
    periods: int
    evaluation_period: str  # YYYY-MM the grades are for
    key_bits: int
    slot_bits: int
    slots_per_ciphertext: int
    events: int
    grades: dict[str, int]  # revealed grade histogram, lowest band first (he: the CKKS path's)
    oracle_grades: dict[str, int]  # the noiseless oracle's, for comparison
    # exact: every revealed grade equals its expected grade (see grades_compared_with), the
    # relying party's too, and every access answer recomputes to the revealed grade
    grades_match_oracle: bool
    mismatches: int  # revealed grades differing from their expected grade
    phase_seconds: dict[str, float]
    bytes_submitted: int
    bytes_by_message: dict[str, int]
    ciphertext_blocks: int
    log_size: int
    envelopes: int
    relying_party_grade: str
    access_checked: int  # subjects whose access answers were verified
    access_consistent: int  # of those, whose recomputed grade (access_compared_with) equals
    #                         the revealed one
    log_verified: bool
    log_public_key: str  # the aggregator's Ed25519 key, hex: what `psc log verify` needs
    notes: list[str] = field(default_factory=list)
    # -- the reveal (issue 4): "trusted" (one key holder) or "committee" (k-of-n, DP)
    reveal: str = "trusted"
    committee_k: int | None = None  # decryption threshold
    committee_n: int | None = None  # members
    committee_honest: int | None = None  # members assumed honest (h): noise calibration
    mechanism: str | None = None  # e.g. "distributed-discrete-laplace"
    epsilon_per_release: str | None = None  # per subject and period, exact
    epsilon_breakdown: str = ""  # e.g. "score 1 + cap counters 1": the parts of that loss
    epsilon_spent: float | None = None  # largest per-subject epsilon spent in this run
    delta_spent: float | None = None  # its delta (tail truncation of the noise shares)
    budget_epsilon: float | None = None  # each subject's budget
    # what each revealed grade is compared with for grades_match_oracle / mismatches
    grades_compared_with: str = "noiseless oracle"
    access_compared_with: str = "the subject's own recomputed grade (noiseless oracle)"
    access_noiseless_consistent: int = 0  # access answers whose noiseless grade = revealed
    misgrade_rate_vs_noiseless_oracle: float = 0.0  # fraction of revealed grades != noiseless
    expected_misgrade_rate: float = 0.0  # what the noise distribution predicts for it
    noise_witnessed: int | None = None  # committee: subjects whose drawn noise was witnessed
    excluded_members: list[int] = field(default_factory=list)
    he: HeReveal | None = None  # reveal="he": the CKKS homomorphic grading run
    exact_summary: str = ""  # reveal="exact": parameters and times of the exact reveal
    #: every party's process, name -> URL on 127.0.0.1 (stopped by the end); empty when
    #: every party ran in one process (psc demo --in-process)
    processes: dict[str, str] = field(default_factory=dict)
    ok: bool = True  # every check passed (exact grades; committee: also the misgrade rate)


def run_result(
    city: City,
    params: ProtocolParameters,
    agencies: Sequence[Agency],
    meter: Meter,
    comparison: OracleComparison,
    access: AccessTally,
    log_size: int,
    log_verified: bool,
) -> RunResult:
    """What a run of ``city`` under ``params`` by ``agencies`` measured and checked, before
    any reveal-specific part: ``meter``'s phases and bytes (its submissions are the
    envelopes), the revealed grades' ``comparison`` with the oracle (the relying party's
    included), the ``access`` tally, and the audited log's size and verdict.

    ``grades_match_oracle`` holds when every revealed grade, the relying party's and every
    access check agree with what they are compared with; ``ok`` when that holds and the
    log verified.
    """
    labels = city.catalog.labels
    hist = np.bincount(comparison.revealed, minlength=len(labels))
    pk = params.public_key
    notes = []
    if pk.bits < MIN_KEY_BITS:
        notes.append(f"{pk.bits}-bit Paillier key: INSECURE, for tests and quick demos only")
    result = RunResult(
        subjects=city.n_subjects,
        agencies=len(agencies),
        periods=len(city.periods),
        evaluation_period=period_label(city.periods[-1]),
        key_bits=pk.bits,
        slot_bits=params.layout.slot_bits,
        slots_per_ciphertext=params.layout.slots,
        events=city.n_events,
        grades={lab: int(c) for lab, c in zip(labels, hist, strict=True)},
        oracle_grades=comparison.oracle.histogram(city.catalog),
        grades_match_oracle=comparison.mismatches == 0
        and comparison.relying_party_ok
        and access.consistent == access.checked,
        mismatches=comparison.mismatches,
        phase_seconds=meter.phase_seconds(),
        bytes_submitted=meter.wire["submission"],
        bytes_by_message=dict(meter.wire),
        ciphertext_blocks=sum(a.ciphertexts_per_submission() for a in agencies) * len(city.periods),
        log_size=log_size,
        envelopes=meter.messages["submission"],
        relying_party_grade=comparison.relying_party_grade,
        access_checked=access.checked,
        access_consistent=access.consistent,
        log_verified=log_verified,
        log_public_key=params.aggregator_key.hex(),
        notes=notes,
        access_noiseless_consistent=access.noiseless_consistent,
        misgrade_rate_vs_noiseless_oracle=comparison.misgrade_rate,
    )
    result.ok = result.grades_match_oracle and result.log_verified
    return result


@dataclass
class HeReveal:
    """What the CKKS homomorphic grading of a ``reveal="he"`` run measured and checked.

    Parameters are recorded next to every time (STYLE.md 8).  ``ms_per_subject`` is the
    evaluator's circuit (all bands and caps, mask, flood) plus the authority's decryptions,
    over every graded subject; key generation and submissions are reported apart.
    """

    profile: str  # e.g. "n32768-l22"
    ring_dimension: int  # N
    coeff_bits: list[int]  # prime bit sizes, special prime last
    modulus_bits: int  # total, against the HE standard's bound for N (128-bit, ternary)
    modulus_bound_bits: int
    scale_bits: int
    levels: int
    slots: int  # subjects per ciphertext part (N/2)
    band_composite: str
    cap_composite: str
    flood_sigma: float
    context_bytes: int  # the published context with relinearization keys
    parts: int  # ciphertext parts per vector (subjects / slots, rounded up)
    score_submissions: int  # encrypted delta vectors, one per (agency, period, class) live
    cap_submissions: int  # encrypted cap-counter vectors, one per (agency, cap label)
    submission_bytes: int
    bytes_per_subject: float  # submission bytes per subject
    queries: int  # grade queries the authority decrypted
    seconds: dict[str, float]  # keygen, submit, ingest, grade (circuit), decrypt
    ms_per_subject: float  # (grade + decrypt) / subjects
    mismatches: int  # CKKS grades differing from the oracle's
    paillier_mismatches: int  # the Paillier run's (trusted reveal) grades vs the oracle
    grades_match_paillier: bool  # every subject: CKKS grade == Paillier grade
    relying_party_grade: str  # one subject's grade by its own one-slot query
    seen: dict[str, list[str]]  # what each party saw
