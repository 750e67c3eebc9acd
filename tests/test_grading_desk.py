"""The grading authority's desk in process, on files: retries, the crash window, restore."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from psc.exceptions import ReplayedNonce
from psc.parties.grading_authority import GradingAuthority, QueryLedger
from psc.parties.grading_desk import GradingDesk
from psc.protocol.signing import _signing_key_from_seed
from psc.service.he_client import check_grade_response, check_receipt
from psc.testing import HeDeployment, he_small_deployment

KEY = _signing_key_from_seed(bytes([9]) * 32)


def _on_file(dep: HeDeployment, path: Path) -> GradingAuthority:
    """The deployment's authority (same keys) on a fresh state file, registered alike."""
    old = dep.authority
    auth = GradingAuthority(
        old.circuit, old.secret, old.catalog, old.max_queries, QueryLedger(str(path))
    )
    auth._agencies = dict(old._agencies)
    auth._requesters = dict(old._requesters)
    auth.expect_subjects(dep.n_subjects, first_period=0)
    return auth


def test_retries_get_the_same_bytes_and_a_crash_after_the_charge_decrypts_nothing_twice(
    tmp_path: Path,
) -> None:
    from psc.protocol.signing import public_bytes

    dep = he_small_deployment(3, max_queries=4)
    state = tmp_path / "state.sqlite"
    auth = _on_file(dep, state)
    desk = GradingDesk(auth, "grading-authority", KEY, str(state))
    sub = dep.submission("transport-bureau", 0, "score", np.array([0, 0, -3]))
    receipt = desk.log_submission(sub)
    assert desk.log_submission(sub) == receipt and len(auth.log.entries) == 1
    assert check_receipt(receipt, sub, public_bytes(KEY)) == 0
    for agency, counter in (("transport-bureau", "cap:C"), ("civil-affairs-bureau", "score")):
        desk.log_submission(dep.submission(agency, 0, counter, np.zeros(3, dtype=np.int64)))
    request = dep.request([0, 2], 0)
    response = desk.grades(request)
    assert desk.grades(request) == response and auth.decryptions == 1
    assert check_grade_response(response, request, public_bytes(KEY), 4) == {0: 2, 2: 0}
    # the crash window: the authority charged and logged a request, the process died
    # before its response was stored; after a restart the same request is refused and
    # nothing is decrypted a second time
    crashed = dep.request([1], 0)
    auth.reveal(crashed)
    assert auth.decryptions == 2
    desk.close()
    restarted = _on_file(dep, state)
    assert restarted.restore() == len(auth.log.entries) == 5
    assert restarted.log.head == auth.log.head
    desk2 = GradingDesk(restarted, "grading-authority", KEY, str(state))
    assert desk2.grades(request) == response  # stored before it left
    assert desk2.log_submission(sub) == receipt  # a function of the replayed log
    with pytest.raises(ReplayedNonce, match="a replay"):
        desk2.grades(crashed)
    assert restarted.decryptions == 0 and restarted.ledger.used(1) == 1
    desk2.close()


def test_a_state_file_of_another_authority_is_refused_at_restore(tmp_path: Path) -> None:
    from psc.exceptions import KeyMismatch

    one, two = he_small_deployment(2), he_small_deployment(2)
    state = tmp_path / "state.sqlite"
    auth = _on_file(one, state)
    auth.log_submission(one.submission("transport-bureau", 0, "score", np.zeros(2)))
    other = _on_file(two, state)  # another context: the logged ciphertext is not for it
    with pytest.raises(KeyMismatch, match="another context"):
        other.restore()
