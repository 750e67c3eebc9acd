"""Replay ``protocols/vectors/reveal_dp.json``: the committee's DP grade reveal, good and bad.

Each case replays the recorded member replies through a fresh :class:`KeyCommittee` (its
own messages are byte-identical: fixed keys, clock and randomness, deterministic
Ed25519), so the outcome -- grades, combined and excluded members, the signed answer, or
the error -- must be exactly the recorded one.  A change to an encoding, a signature
label, the proof transcript or the combiner's checks shows up here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protocols.gen_reveal_dp import CAPS, CASES, SUMS, live_blocks, make_committee, run_case
from psc.exceptions import InvalidMessage
from psc.parties.committee.member import _open_noise_share

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "protocols" / "vectors" / "reveal_dp.json").read_text()
)


def test_vector_file_has_good_and_bad_cases() -> None:
    assert VECTORS["version"] == 1
    names = set(VECTORS["cases"])
    assert {"good", "bad_duplicate_member"} | set(CASES) == names
    assert sum(n.startswith("bad_") for n in names) >= 5


@pytest.mark.parametrize("name", CASES)
def test_replay_case(name: str) -> None:
    case = VECTORS["cases"][name]
    record = {int(i): r for i, r in case["replies"].items()}
    _, links, outcome = run_case(name, record=record)
    assert outcome == case["outcome"]
    if "error" in outcome:  # refused before any member was asked for anything
        assert all(link.calls == 0 for link in links)


def test_replay_names_the_culprits() -> None:
    cases = VECTORS["cases"]
    assert cases["bad_noise_share_signature"]["outcome"]["excluded"] == [2]
    assert cases["bad_noise_share_other_request"]["outcome"]["excluded"] == [4]
    assert cases["bad_decryption_share_proof"]["outcome"]["excluded"] == [1]
    for name in ("bad_noise_share_signature", "bad_decryption_share_proof"):
        assert len(cases[name]["outcome"]["members"]) == VECTORS["parameters"]["k"]


def test_recorded_bad_noise_share_signature_fails_alone() -> None:
    c = make_committee(seed="vectors")
    bad = bytes.fromhex(VECTORS["cases"]["bad_noise_share_signature"]["replies"]["2"]["noise"])
    with pytest.raises(InvalidMessage):
        _open_noise_share(c.params, bad)
    good = bytes.fromhex(VECTORS["cases"]["good"]["replies"]["2"]["noise"])
    assert _open_noise_share(c.params, good).member == 2


def test_duplicate_member_is_refused_by_a_member() -> None:
    case = VECTORS["cases"]["bad_duplicate_member"]
    c = make_committee(seed=case["seed"])
    caps = {k: np.array(v, dtype=np.int64) for k, v in CAPS.items()}
    live_blocks(c, np.array(SUMS, dtype=np.int64), caps)  # the log the task was made from
    member = c.members[case["member"] - 1]
    task = bytes.fromhex(case["task"])
    # the member must have made its noise share for the task (same seeded draws)
    assert member.noise_share(task).hex() == case["noise_shares"].split(",")[0]
    with pytest.raises(InvalidMessage, match="distinct members"):
        member.decryption_share(bytes.fromhex(case["request"]))
