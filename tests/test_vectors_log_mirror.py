"""Replay ``protocols/vectors/log_mirror.json`` (spec ``protocols/service.md`` section 8)
against :mod:`psc.service.replica`: every good case accepted, every ``bad_*`` case refused
with ``InvalidMessage`` at its stage, and the file is what the generator writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocols import gen_log_mirror
from psc.exceptions import InvalidMessage
from psc.hazmat import merkle
from psc.service.replica import open_tree_head

PATH = Path(__file__).resolve().parent.parent / "protocols" / "vectors" / "log_mirror.json"
V: dict[str, Any] = json.loads(PATH.read_text())
PUB = bytes.fromhex(V["log_key"]["public_key"])
HELD = open_tree_head(bytes.fromhex(V["held"]["tree_head"]), PUB)
HELD_HASHES = [merkle.leaf_hash(bytes.fromhex(e)) for e in V["entries"][: V["held"]["size"]]]


def test_the_file_is_what_the_generator_writes() -> None:
    assert V["version"] == 1
    assert PATH.read_text() == gen_log_mirror.render(), (
        "run: python -m protocols.generate log_mirror"
    )


def test_the_held_head_covers_the_held_entries() -> None:
    assert HELD.size == len(HELD_HASHES) and merkle.MerkleTree(HELD_HASHES).root() == HELD.root


@pytest.mark.parametrize("case", V["cases"], ids=lambda c: c["name"])
def test_good_cases_are_accepted(case: dict[str, Any]) -> None:
    assert case["expect"] == "accept"
    gen_log_mirror.replay(case, PUB, HELD, HELD_HASHES)


@pytest.mark.parametrize("case", V["bad_cases"], ids=lambda c: c["name"])
def test_bad_cases_are_refused(case: dict[str, Any]) -> None:
    assert case["expect"] == "reject" and case["error"] == "InvalidMessage"
    with pytest.raises(InvalidMessage):
        gen_log_mirror.replay(case, PUB, HELD, HELD_HASHES)


def test_every_stage_has_good_and_bad_cases() -> None:
    stages = {c["stage"] for c in V["cases"]}
    assert stages == {c["stage"] for c in V["bad_cases"]} == {"head", "extension", "page", "leaves"}
