"""A scoring period with the aggregator as its own process: the same grades as the oracle,
a log that verifies from its file, and no party process left behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from psc.catalog import Catalog
from psc.sim.city import simulate_city
from psc.sim.loopback import recent_first_period, run_loopback
from psc.testing import insecure_keypair

pytestmark = pytest.mark.timeout(600)


def _serving(directory: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args", "-ww"], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if "serve" in line and str(directory) in line]


def test_a_period_across_processes_matches_the_oracle(city: Catalog, tmp_path: Path) -> None:
    town = simulate_city(city, subjects=60, periods=2, seed=3, first_period=recent_first_period(2))
    result = run_loopback(town, tmp_path / "dep", keypair=insecure_keypair(0, 512), access_sample=4)
    assert result.grades_match_oracle and result.ok, result
    assert result.access_checked == 4 and result.log_verified
    assert result.bytes_over_http > 0
    assert not _serving(tmp_path), "a party process outlived the run"


def test_ctrl_c_stops_every_party_process(tmp_path: Path) -> None:
    """SIGINT to ``psc demo --processes`` while the aggregator process serves: the demo
    exits 130 and leaves no party process behind."""
    import os
    import signal
    import sys
    import time

    import psc

    env = dict(os.environ, PYTHONPATH=str(Path(psc.__file__).resolve().parent.parent))
    out = tmp_path / "out"
    demo = subprocess.Popen(
        [
            *(sys.executable, "-m", "psc", "demo", "--processes", "--reveal", "trusted"),
            *("--subjects", "3000", "--key-bits", "1024", "--out", str(out)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 180
        while not _serving(tmp_path):
            assert demo.poll() is None, demo.stderr.read() if demo.stderr else ""
            assert time.monotonic() < deadline, "the aggregator process never started"
            time.sleep(0.2)
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 130
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(timeout=30)
        if demo.stderr:
            demo.stderr.close()
    time.sleep(0.5)
    assert not _serving(tmp_path), "a party process outlived Ctrl-C"


def test_a_party_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    """kill -9 of the process that started a party (it cannot clean up): the party notices
    and stops by itself."""
    import sys
    import time

    from psc.service.deploy import init_deployment

    root = init_deployment(tmp_path / "dep", subjects=8, keypair=insecure_keypair(0, 512))
    code = (
        "import sys, time\n"
        "from psc.service.processes import start_party\n"
        f"p = start_party('aggregator', {str(root / 'aggregator.toml')!r})\n"
        "print(p.proc.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    import os

    import psc

    env = dict(os.environ, PYTHONPATH=str(Path(psc.__file__).resolve().parent.parent))
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line.strip(), "the parent did not start the party"
        assert _serving(tmp_path)
        parent.kill()
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _serving(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _serving(tmp_path), "the party outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=30)
        if parent.stdout:
            parent.stdout.close()
