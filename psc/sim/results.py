"""What a reference run measured and checked: :class:`RunResult`, and :class:`HeReveal` for CKKS."""

from __future__ import annotations

from dataclasses import dataclass, field


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
