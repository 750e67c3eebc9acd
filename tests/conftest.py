"""Shared fixtures and the hypothesis profile for the whole test suite.

Profiles (select with ``HYPOTHESIS_PROFILE=NAME``):

* ``psc`` (default, what ``make test`` and CI run): derandomized, so every run draws the
  same examples and a landing is never blocked by an example no earlier run drew; no
  per-example deadline (crypto examples vary a lot in time on a shared machine); each test
  sets its own modest ``max_examples``.
* ``explore``: the same with fresh random examples on every run, to look for new
  counterexamples (``HYPOTHESIS_PROFILE=explore make test-fast``); a failure it finds
  becomes an ``@example`` or a test of its own.
* ``ci``: kept as a name for the default.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from psc.catalog import Catalog, load_catalog
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.testing import insecure_keypair

settings.register_profile("psc", deadline=None, print_blob=True, derandomize=True)
settings.register_profile("ci", deadline=None, print_blob=True, derandomize=True)
settings.register_profile("explore", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "psc"))


@pytest.fixture(scope="session")
def city() -> Catalog:
    """The shipped city catalog."""
    return load_catalog("city")


@pytest.fixture(scope="session")
def company() -> Catalog:
    """The shipped company catalog."""
    return load_catalog("company")


@pytest.fixture(scope="session")
def test_keypair() -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    """An INSECURE 512-bit keypair (psc.testing.insecure_keypair(0)); tests only."""
    return insecure_keypair(0, 512)


@pytest.fixture(scope="session")
def other_keypair() -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    """A second, different INSECURE 512-bit keypair, for wrong-key tests."""
    return insecure_keypair(1, 512)
