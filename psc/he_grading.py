"""Homomorphic grading (CKKS): the names other modules import, re-exported from :mod:`psc.he`.

The implementation lives in the :mod:`psc.he` package, one module per concept: sign
composites and profiles, the circuit's public parameters, the evaluator, flooding, the
histogram, messages, the grading authority and the reference driver.  This module keeps
the historical import path working; new code imports from :mod:`psc.he` directly.
"""

from __future__ import annotations

from psc.he.authority import GradingAuthority, GradingLog, QueryLedger
from psc.he.circuit import GradingCircuit
from psc.he.composites import (
    BAND_8400,
    CAP_256,
    CITY_PROFILE,
    PROFILES,
    SMALL_12,
    SMALL_CAP_4,
    SMALL_PROFILE,
    GradingProfile,
    SignComposite,
)
from psc.he.evaluator import HomomorphicGrader
from psc.he.flooding import (
    DEFAULT_MAX_QUERIES,
    FLOOD_SIGMA,
    FloodingBound,
    flooding_distance,
    sample_flooding,
)
from psc.he.histogram import encrypted_histogram, histogram_rotation_steps
from psc.he.messages import HeSubmission, seal_submission
from psc.he.reference import (
    SMALL_TEST_CATALOG,
    HeRevealResult,
    grade_table_with_he,
    grade_with_he,
    he_submission,
    live_inputs,
    period_vectors,
)

__all__ = [
    "BAND_8400",
    "CAP_256",
    "CITY_PROFILE",
    "DEFAULT_MAX_QUERIES",
    "FLOOD_SIGMA",
    "PROFILES",
    "SMALL_12",
    "SMALL_CAP_4",
    "SMALL_PROFILE",
    "SMALL_TEST_CATALOG",
    "FloodingBound",
    "GradingAuthority",
    "GradingCircuit",
    "GradingLog",
    "GradingProfile",
    "HeRevealResult",
    "HeSubmission",
    "HomomorphicGrader",
    "QueryLedger",
    "SignComposite",
    "encrypted_histogram",
    "flooding_distance",
    "grade_table_with_he",
    "grade_with_he",
    "he_submission",
    "histogram_rotation_steps",
    "live_inputs",
    "period_vectors",
    "sample_flooding",
    "seal_submission",
]
