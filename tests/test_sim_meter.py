"""The run's meter: seconds per phase, messages and bytes by kind."""

from __future__ import annotations

import time

import pytest

from psc.sim.meter import Meter


def test_phases_add_up_in_first_run_order_even_when_they_raise() -> None:
    m = Meter()
    with m.phase("submit"):
        time.sleep(0.01)
    with m.phase("ingest"):
        pass
    with pytest.raises(RuntimeError), m.phase("submit"):
        time.sleep(0.01)
        raise RuntimeError("a failed submission still took its time")
    assert list(m.seconds) == ["submit", "ingest"]
    assert m.seconds["submit"] >= 0.02 and m.seconds["ingest"] < m.seconds["submit"]
    assert m.phase_seconds() == {k: round(v, 3) for k, v in m.seconds.items()}


def test_send_counts_messages_and_bytes_and_passes_the_message_on() -> None:
    m = Meter()
    msg = b"\x01" * 10
    assert m.send("submission", msg) is msg
    m.send("submission", b"\x02" * 5)
    m.send("receipt", b"")
    assert dict(m.wire) == {"submission": 15, "receipt": 0}
    assert dict(m.messages) == {"submission": 2, "receipt": 1}
