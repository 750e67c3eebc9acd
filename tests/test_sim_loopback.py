"""A scoring period with every party its own process: the same checks as the single-process
driver (grades against the oracle, exact; the log from its file; subject access), and no
party process left behind on any exit path."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from psc.catalog import Catalog
from psc.sim.city import simulate_city
from psc.sim.loopback import processes_result, recent_first_period, run_processes
from psc.testing import insecure_keypair

pytestmark = pytest.mark.timeout(600)


def _serving(directory: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args", "-ww"], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if "serve" in line and str(directory) in line]


def _roles(urls: dict[str, str], agencies: int, members: int) -> None:
    assert {"aggregator", "registry", "key-holder"} <= set(urls)
    assert sum(name.startswith("member-") for name in urls) == members
    assert len(urls) == 3 + agencies + members
    assert len(set(urls.values())) == len(urls), "two parties share a port"


def test_a_trusted_period_across_processes_matches_the_oracle(
    city: Catalog, tmp_path: Path
) -> None:
    town = simulate_city(city, subjects=60, periods=2, seed=3, first_period=recent_first_period(2))
    observed = run_processes(
        town, tmp_path / "dep", keypair=insecure_keypair(0, 512), reveal="trusted", access_sample=4
    )
    result = processes_result(town, observed)
    assert result.grades_match_oracle and result.ok, result
    assert result.mismatches == 0 and result.reveal == "trusted"
    assert result.access_checked == 4 and result.access_consistent == 4 and result.log_verified
    assert result.envelopes == 2 * len(town.agencies)
    assert result.bytes_submitted > 0 and result.bytes_by_message["grade-request-answer"] > 0
    _roles(result.processes, len(town.agencies), 0)
    assert not _serving(tmp_path), "a party process outlived the run"


def test_a_committee_period_across_processes_checks_every_noisy_grade(
    city: Catalog, tmp_path: Path
) -> None:
    """The DP committee reveal with each member, the combiner's desk, the registry and every
    agency in its own process; each grade equals the oracle's grade of raw score plus the
    noise the member processes drew (the god view's files), and the budget was spent once."""
    town = simulate_city(city, subjects=40, periods=2, seed=5, first_period=recent_first_period(2))
    observed = run_processes(
        town,
        tmp_path / "dep",
        key_bits=512,
        reveal="committee",
        committee=(2, 3),
        epsilon=Fraction(1),
        access_sample=5,
    )
    result = processes_result(town, observed)
    assert result.grades_match_oracle and result.ok, result
    assert result.reveal == "committee" and result.noise_witnessed == town.n_subjects
    assert result.committee_k == 2 and result.committee_n == 3 and result.excluded_members == []
    assert result.epsilon_spent == 2.0  # one release: score 1 + cap counters 1
    _roles(result.processes, len(town.agencies), 3)
    assert not _serving(tmp_path), "a party process outlived the run"


def test_the_check_fails_when_a_revealed_grade_is_changed(city: Catalog, tmp_path: Path) -> None:
    """The audit is not a formality: one grade changed after the run is a mismatch."""
    town = simulate_city(city, subjects=30, periods=1, seed=7, first_period=recent_first_period(1))
    observed = run_processes(
        town, tmp_path / "dep", keypair=insecure_keypair(0, 512), reveal="trusted", access_sample=0
    )
    labels = town.catalog.labels
    slot = next(iter(observed.revealed))
    observed.revealed[slot] = labels[(labels.index(observed.revealed[slot]) + 1) % len(labels)]
    result = processes_result(town, observed)
    assert result.mismatches == 1 and not result.grades_match_oracle and not result.ok


def test_ctrl_c_stops_every_party_process(tmp_path: Path) -> None:
    """SIGINT to ``psc demo`` (every party a process) while the parties serve: the demo
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
            *(sys.executable, "-m", "psc", "demo", "--reveal", "trusted"),
            *("--subjects", "3000", "--key-bits", "1024", "--out", str(out)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 180
        while len(_serving(tmp_path)) < 3:
            assert demo.poll() is None, demo.stderr.read() if demo.stderr else ""
            assert time.monotonic() < deadline, "the party processes never started"
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


def test_ckks_grading_across_processes_matches_the_oracle_and_the_paillier_run(
    tmp_path: Path,
) -> None:
    """``reveal="he"`` across processes: the trusted Paillier run, then the same events
    graded under CKKS by the grading authority as its own process; both equal the oracle
    on every subject (the small CKKS profile)."""
    from psc.catalog import load_catalog
    from psc.sim.he_driver import SMALL_TEST_CATALOG

    text = (
        SMALL_TEST_CATALOG.replace("months = 1", "months = 2")
        .replace("delta = -2", "delta = -1")
        .replace("max_per_period = 2", "max_per_period = 1")
        .replace(
            'purposes = ["credit-assessment"]',
            'purposes = ["credit-assessment", "subject-self-access"]',
        )
    )
    (tmp_path / "catalog.toml").write_text(text)
    small = load_catalog(str(tmp_path / "catalog.toml"))
    # one period: the small catalog keeps records two months, and the parties keep real time
    town = simulate_city(
        small, subjects=300, periods=1, seed=4, first_period=recent_first_period(1)
    )
    observed = run_processes(
        town, tmp_path / "dep", keypair=insecure_keypair(0, 512), reveal="he", access_sample=4
    )
    result = processes_result(town, observed)
    h = result.he
    assert h is not None and result.reveal == "he"
    assert result.ok and result.grades_match_oracle, result.notes
    assert h.mismatches == h.paillier_mismatches == 0 and h.grades_match_paillier
    assert set(h.seconds) == {"keygen", "submit", "reveal"} and h.queries == 2
    assert h.score_submissions > 0 and h.cap_submissions > 0 and h.context_bytes > 0
    assert "grading-authority" in result.processes
    assert "its own process" in result.notes[-1]
    assert not _serving(tmp_path), "a party process outlived the run"


def test_an_in_memory_catalog_is_refused_across_processes(city: Catalog, tmp_path: Path) -> None:
    from psc.catalog import parse_catalog
    from psc.sim.he_driver import SMALL_TEST_CATALOG

    town = simulate_city(
        parse_catalog(SMALL_TEST_CATALOG),
        subjects=10,
        periods=1,
        seed=1,
        first_period=recent_first_period(1),
    )
    with pytest.raises(ValueError, match="write it to a TOML file"):
        run_processes(town, tmp_path / "dep", keypair=insecure_keypair(0, 512), reveal="trusted")
