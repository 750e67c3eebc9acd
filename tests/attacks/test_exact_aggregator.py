"""Adversary: the aggregator in the exact reveal (alone or with the combiner).

Claims: members decrypt only the grade circuit's output on the live inputs they sum
themselves from the log at the request's tree head: a head that is not the log's, a
request not signed by the aggregator, or a log entry not signed by its agency is refused
before anything is decrypted.  A contribution with a well-formed but out-of-range
plaintext is *not* detected at submission (no lattice range proofs); its slot then
decodes to an unspecified value and the combiner refuses to release it when that value is
not a grade (the remaining risk is stated in the threat model).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from psc.exceptions import InsufficientShares, InvalidMessage
from psc.parties.exact.member import open_request
from psc.protocol import codec
from psc.protocol.exact_messages import BfvContribution
from psc.protocol.messages import SignedMessage
from psc.protocol.signing import seal
from tests.attacks._exact_fixtures import RH, deployment, submit_uniform, task_for


@pytest.fixture(scope="module")
def dep():  # type: ignore[no-untyped-def]
    d = deployment(2, 3)
    submit_uniform(d, 0, 1)
    return d


def test_a_head_that_is_not_the_logs_is_refused(dep) -> None:  # type: ignore[no-untyped-def]
    req = open_request(dep.params, dep.request(RH, period=0, block=0, slots=(1,)))
    for bad in (
        dataclasses.replace(req, tree_root=bytes(32)),
        dataclasses.replace(req, tree_size=req.tree_size + 5),
    ):
        forged = seal(bad, dep.aggregator_key)
        with pytest.raises(InvalidMessage):
            dep.members[1].decryption_share(task_for(dep, forged))


def test_a_request_signed_by_someone_else_is_refused(dep) -> None:  # type: ignore[no-untyped-def]
    req = open_request(dep.params, dep.request(RH, period=0, block=0, slots=(1,)))
    with pytest.raises(InvalidMessage):
        dep.members[1].decryption_share(task_for(dep, seal(req, dep.combiner._key)))


def test_an_unsigned_log_entry_is_refused_and_changes_nothing(dep) -> None:  # type: ignore[no-untyped-def]
    size = dep.log.head()
    good = dep.log._entries[0]
    wrapper = codec.decode(good, SignedMessage)
    msg = codec.decode(wrapper.body, BfvContribution)
    forged = dataclasses.replace(msg, period=msg.period + 1)
    tampered = codec.encode(SignedMessage(body=codec.encode(forged), signature=wrapper.signature))
    with pytest.raises(InvalidMessage):
        dep.log.append(tampered)
    assert dep.log.head() == size


def test_an_out_of_range_contribution_is_not_released_as_a_grade(dep) -> None:  # type: ignore[no-untyped-def]
    # live sum 5000 is far outside the toy domain [-8, 2]: the polynomial's value there is
    # unspecified; if it is not a grade index the combiner refuses the whole release
    dep.submit("tax-bureau", 5, "short", "score", 0, np.full(dep.ring.n, 5000))
    from psc.hazmat.exact.polynomial import grade_in_clear

    g = int(grade_in_clear(dep.polys, np.array([5000]), {})[0])
    if g >= len(dep.catalog.labels):
        with pytest.raises(InsufficientShares, match="not a grade vector"):
            dep.reveal(dep.request(RH, period=5, block=0))
    else:  # the documented residual risk: a wrong but valid-looking grade
        out = dep.reveal(dep.request(RH, period=5, block=0, slots=(0,)))
        assert out.grades[0].grade == dep.catalog.labels[g]
