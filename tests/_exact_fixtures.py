"""Shared small-parameter fixtures for the exact-reveal tests (INSECURE parameters)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from psc.catalog import Catalog, load_catalog
from psc.hazmat.exact.ring import LatticeParams, Ring
from psc.parties.exact.setup import CommitteeKeys, run_setup

#: N = 4096 with 7 ciphertext primes: far beyond the 128-bit bound (tests only), deep
#: enough for the toy catalog's circuit plus smudging.
TEST_PARAMS = LatticeParams(4096, (60,) * 8, secure=False)
TOY = Path(__file__).parent / "data" / "exact-toy.toml"


def toy_catalog() -> Catalog:
    return load_catalog(TOY)


def seeded(seed: int) -> Callable[[int], bytes]:
    rng = random.Random(seed)
    return rng.randbytes


def committee(
    k: int = 3, n: int = 5, session: bytes = b"test-session"
) -> tuple[Ring, CommitteeKeys, object]:
    ring = Ring(TEST_PARAMS)
    keys, secret = run_setup(ring, k, n, session, seeded(1), keep_secret=True)
    return ring, keys, secret
