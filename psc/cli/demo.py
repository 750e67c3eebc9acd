"""``psc demo``: one synthetic city scored end to end by separate, message-passing roles."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any, TextIO

from psc.catalog import load_catalog
from psc.cli.argtypes import positive_fraction
from psc.cli.lint_gate import lint_gate
from psc.cli.output import STDOUT, OutputError, check_writable, write_text
from psc.exceptions import CatalogError
from psc.hazmat.paillier import DEFAULT_KEY_BITS, MIN_KEY_BITS
from psc.policy.checks_catalog import REQUIRED_PURPOSES

REQUIRED = {p for p, _ in REQUIRED_PURPOSES}


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="run a synthetic city end to end and compare grades with the oracle",
        description=(
            "Simulate a city, run every protocol role (agencies, aggregator, key holder, "
            "relying party, subjects) with signed messages and a transparency log, each "
            "served party as its own process on 127.0.0.1 (psc serve; --in-process: all in "
            "this one), reveal "
            "grades through a k-of-n key committee with distributed differential-privacy noise "
            "(or --reveal trusted: one key holder, exact; or --reveal he: the trusted reveal, "
            "then the same events graded under CKKS encryption) and compare them with the "
            "plaintext oracle, exactly: committee grades with the oracle's grade of the raw "
            "score plus the noise the members actually drew (known only to the simulation). "
            "Exits 1 if a check fails (any grade differs from its expected grade, a protocol "
            "check fails, or the committee's misgrade rate against the noiseless oracle "
            "disagrees with what the noise predicts)."
        ),
    )
    p.add_argument("--subjects", type=int, default=20_000, help="subjects (default 20000)")
    p.add_argument(
        "--agencies",
        type=int,
        default=None,
        help="agency parties (default: the catalog's; more = further instances, e.g. courts)",
    )
    p.add_argument("--periods", type=int, default=3, help="monthly periods (default 3)")
    p.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    p.add_argument(
        "--key-bits",
        type=int,
        default=MIN_KEY_BITS,
        help=f"Paillier modulus bits (default {MIN_KEY_BITS} for speed; "
        f"{DEFAULT_KEY_BITS} is the secure default; below {MIN_KEY_BITS} is insecure)",
    )
    p.add_argument("--catalog", default="city", help="catalog file or built-in name (city)")
    p.add_argument("--out", default="demo-out", help="report directory (default demo-out)")
    p.add_argument(
        "--json",
        dest="json_path",
        default=None,
        help="write results as JSON here (- for stdout; the report lines then go to stderr)",
    )
    p.add_argument(
        "--allow-lint-errors",
        action="store_true",
        help="run a catalog with lint errors anyway (research only; the errors are printed first)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="--in-process: worker processes for precomputation (default 2)",
    )
    p.add_argument("--access-sample", type=int, default=25, help="subjects that run subject access")
    p.add_argument(
        "--reveal",
        choices=("committee", "trusted", "he", "exact"),
        default="committee",
        help="who reveals grades: a k-of-n key committee with distributed DP noise "
        "(default), one trusted key holder (the exact baseline), or he: the trusted "
        "baseline, then CKKS homomorphic grading of the same events (about 3 GB of memory "
        "and 25-45 s per 16,384 subjects at the city catalog's N=32768), or exact: the "
        "trusted baseline, then exact grades from a dealer-free 3-of-5 BFV committee (no "
        "trusted party; N=32768: several minutes of setup and evaluation per 32,768 subjects)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--processes",
        action="store_true",
        help="every party its own process on 127.0.0.1 (psc serve): the aggregator, the "
        "registry, each agency, the key holder and each committee member, talking sealed "
        "CBOR over HTTP (with --reveal he, also the CKKS grading authority); the bank and "
        "the residents are clients here (the default but for --reveal exact)",
    )
    where.add_argument(
        "--in-process",
        action="store_true",
        help="every party in this one process (the reference driver; always so for --reveal exact)",
    )
    p.add_argument("--threshold", type=int, default=3, help="committee threshold k (default 3)")
    p.add_argument("--members", type=int, default=5, help="committee members n (default 5)")
    p.add_argument(
        "--epsilon",
        type=positive_fraction,
        default=Fraction(1),
        help="committee: epsilon per subject and period, e.g. 1 or 1/2 (default 1)",
    )
    p.set_defaults(func=run)


def _argument_problem(args: argparse.Namespace) -> str | None:
    """The first numeric flag out of range, named, with what to write instead."""
    limits = (
        ("--subjects", args.subjects, 1),
        ("--periods", args.periods, 1),
        ("--key-bits", args.key_bits, 256),
        ("--workers", args.workers, 1),
        ("--access-sample", args.access_sample, 0),
    )
    for flag, value, low in limits:
        if value < low:
            return f"{flag} must be at least {low}, got {value}"
    if args.agencies is not None and args.agencies < 1:
        return f"--agencies must be at least 1, got {args.agencies}"
    if args.processes and args.reveal == "exact":
        return "--reveal exact runs in one process; drop --processes"
    if args.reveal == "committee" and not 1 <= args.threshold <= args.members <= 64:
        return (
            "need 1 <= --threshold <= --members <= 64, got --threshold "
            f"{args.threshold} --members {args.members}"
        )
    return None


def _outputs_problem(args: argparse.Namespace) -> str | None:
    try:
        check_writable(args.out, flag="--out", directory=True)
        if args.json_path is not None:
            check_writable(args.json_path, flag="--json")
    except OutputError as exc:
        return str(exc)
    return None


def run(args: argparse.Namespace) -> int:
    """Validate, lint the catalog, then run (report lines to stderr under ``--json -``)."""
    real_stdout = sys.stdout
    if args.json_path == STDOUT:
        with contextlib.redirect_stdout(sys.stderr):
            return _run(args, real_stdout)
    return _run(args, real_stdout)


def _run(args: argparse.Namespace, real_stdout: TextIO) -> int:
    from psc.sim.city import simulate_city
    from psc.sim.driver import run as run_driver
    from psc.sim.report import write_report

    try:
        catalog = load_catalog(args.catalog)
    except CatalogError as exc:
        print(exc, file=sys.stderr)
        return 2
    problem = _argument_problem(args) or _outputs_problem(args)
    if problem is not None:
        print(f"psc demo: {problem}", file=sys.stderr)
        return 2
    if not lint_gate(catalog, command="psc demo", allow=args.allow_lint_errors):
        return 2
    if not [p for p in catalog.scheme.purposes if p not in REQUIRED]:
        print(
            f"psc demo: {catalog.source}: scheme.purposes lists only {sorted(REQUIRED)}; the "
            "demo's relying party needs one more purpose to ask for, e.g. 'credit-assessment'",
            file=sys.stderr,
        )
        return 2
    from psc.sim.loopback import recent_first_period

    processes = not args.in_process and args.reveal != "exact"
    keeps = catalog.max_retention_months
    if processes and args.periods >= keeps:
        print(
            f"psc demo: --periods {args.periods} reaches back further than {catalog.source} "
            f"keeps records ({keeps} months), and the parties keep real time, so the aggregator "
            f"would refuse the oldest periods as stale: use --periods {keeps - 1} or fewer, "
            "or --in-process (a simulated clock)",
            file=sys.stderr,
        )
        return 2
    try:
        city = simulate_city(
            catalog,
            subjects=args.subjects,
            agencies=args.agencies,
            periods=args.periods,
            seed=args.seed,
            **({"first_period": recent_first_period(args.periods)} if processes else {}),
        )
    except ValueError as exc:
        print(f"psc demo: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ledger = out / "ledger.sqlite"
    committee_store = out / "committee.sqlite"
    for suffix in ("", "-wal", "-shm"):  # a fresh ledger and committee store each run
        Path(f"{ledger}{suffix}").unlink(missing_ok=True)
        Path(f"{committee_store}{suffix}").unlink(missing_ok=True)
    print(
        f"psc demo: {city.n_subjects:,} subjects, {len(city.agencies)} agencies, "
        f"{len(city.periods)} periods, {city.n_events:,} events, seed {args.seed}"
    )
    note = "" if args.key_bits >= MIN_KEY_BITS else "INSECURE, for tests only; "
    print(f"Paillier key: {args.key_bits} bits ({note}the secure default is {DEFAULT_KEY_BITS})")
    if processes:
        result, ledger = _run_processes(args, city, out)
    else:
        result = run_driver(
            city,
            key_bits=args.key_bits,
            ledger_path=ledger,
            workers=args.workers,
            access_sample=args.access_sample,
            reveal=args.reveal,
            committee=(args.threshold, args.members),
            epsilon=args.epsilon,
            committee_path=committee_store,
        )
    if result.reveal == "committee":
        print(
            f"reveal: {result.committee_k}-of-{result.committee_n} key committee, "
            f"{result.mechanism}, epsilon {result.epsilon_per_release} per subject and period "
            f"({result.epsilon_breakdown}; honest = {result.committee_honest}); "
            "epsilon spent per subject: "
            f"{result.epsilon_spent:g} (delta {result.delta_spent:.3g}) of a budget of "
            f"{result.budget_epsilon:g}"
        )
        print(
            f"  exact check (god view, no protocol party sees the noise): "
            f"{result.subjects - result.mismatches:,}/{result.subjects:,} revealed grades equal "
            "the oracle's grade of raw score + the noise drawn for the subject"
        )
        print(
            f"  misgrade_rate_vs_noiseless_oracle {result.misgrade_rate_vs_noiseless_oracle:.4f} "
            f"(expected_misgrade_rate {result.expected_misgrade_rate:.4f})"
        )
    elif result.he is not None:
        h = result.he
        print(
            "reveal: one trusted key holder (Paillier, exact), then CKKS homomorphic grading "
            f"({h.profile}: N={h.ring_dimension}, {h.modulus_bits}-bit modulus (128-bit bound "
            f"{h.modulus_bound_bits}), scale 2^{h.scale_bits}, {h.levels} levels, {h.slots:,} "
            "slots per part)"
        )
        if "reveal" in h.seconds:  # the authority its own process: the reveal as timed here
            timing = f"reveal over HTTP {h.seconds['reveal']:.1f} s"
        else:
            timing = f"circuit {h.seconds['grade']:.1f} s + decryption {h.seconds['decrypt']:.3f} s"
        print(
            f"  CKKS: {h.ms_per_subject:.3f} ms per subject ({timing} for {result.subjects:,} "
            f"subjects in {h.parts} part(s)); key generation {h.seconds['keygen']:.1f} s; "
            f"public context {h.context_bytes:,} bytes; submissions {h.submission_bytes:,} "
            f"bytes ({h.bytes_per_subject:,.0f} per subject)"
        )
        print(
            f"  CKKS grades vs oracle: {h.mismatches} mismatches; Paillier grades vs oracle: "
            f"{h.paillier_mismatches}; CKKS = Paillier on every subject: "
            f"{'yes' if h.grades_match_paillier else 'NO'}"
        )
    elif result.reveal == "exact":
        print(
            "reveal: one trusted key holder (Paillier, exact), then the exact reveal: "
            + result.exact_summary
        )
    else:
        print("reveal: one trusted key holder (exact baseline, no DP)")
    print(
        f"slot layout: {result.slot_bits}-bit slots, {result.slots_per_ciphertext} per "
        f"ciphertext; {result.ciphertext_blocks:,} ciphertext blocks encrypted"
    )
    print(f"\ngrades at {result.evaluation_period}   revealed     oracle")
    for label in reversed(list(result.grades)):
        print(
            f"  {label:6s}              {result.grades[label]:>8,}   {result.oracle_grades[label]:>8,}"
        )
    print("\nphase          seconds")
    for name, sec in result.phase_seconds.items():
        print(f"  {name:12s} {sec:8.3f}")
    print(f"  {'total':12s} {sum(result.phase_seconds.values()):8.3f}")
    total = sum(result.bytes_by_message.values())
    print(
        f"\nbytes on the wire: {total:,} in total, {result.bytes_submitted:,} in "
        f"{result.envelopes} envelopes ({result.bytes_submitted / result.subjects / result.periods:.1f} "
        "bytes per subject per period)"
    )
    print(
        f"log: {result.log_size} entries, verified: {result.log_verified}; subject access: "
        f"{result.access_consistent}/{result.access_checked} verified and consistent with "
        f"{result.access_compared_with}"
        + (
            f" ({result.access_noiseless_consistent}/{result.access_checked} equal to the "
            "noiseless grade)"
            if result.reveal == "committee"
            else ""
        )
    )
    report = write_report(result, out)
    key_file = out / "log-public-key.hex"
    key_file.write_text(result.log_public_key + "\n", encoding="utf-8")
    print(f"report: {report}")
    print(f"ledger: {ledger} (audit: psc log verify --db {ledger} --public-key {key_file})")
    if args.json_path:
        text = json.dumps(dataclasses.asdict(result), indent=2, sort_keys=True) + "\n"
        if args.json_path == STDOUT:
            real_stdout.write(text)
            real_stdout.flush()
            print("json: standard output")
        else:
            print(f"json: {write_text(args.json_path, text)}")
    print(f"grades_match_oracle: {'true' if result.grades_match_oracle else 'false'}")
    print(f"checks_passed: {'true' if result.ok else 'false'}")
    return 0 if result.ok else 1


def _run_processes(args: argparse.Namespace, city: Any, out: Path) -> tuple[Any, Path]:
    """Every party its own process (:mod:`psc.sim.loopback`); the result and the ledger."""
    import shutil

    from psc.sim.loopback import processes_result, run_processes

    deployment = out / "deployment"
    shutil.rmtree(deployment, ignore_errors=True)  # the demo's own files of a previous run
    quiet = args.json_path == STDOUT or not sys.stderr.isatty()
    observed = run_processes(
        city,
        deployment,
        key_bits=args.key_bits,
        reveal=args.reveal,
        committee=(args.threshold, args.members),
        epsilon=args.epsilon,
        access_sample=args.access_sample,
        progress=None if quiet else lambda line: print(f"  {line}", file=sys.stderr),
    )
    result = processes_result(city, observed)
    root = observed.root
    # the aggregator's log and the combiner's store where the in-process run puts them
    _copy_sqlite(root / "aggregator" / "ledger.sqlite", out / "ledger.sqlite")
    if (root / "key_holder" / "committee.sqlite").exists():
        _copy_sqlite(root / "key_holder" / "committee.sqlite", out / "committee.sqlite")
    print(
        f"parties: {len(result.processes)} processes on 127.0.0.1 (all stopped): "
        + ", ".join(sorted(result.processes))
    )
    return result, out / "ledger.sqlite"


def _copy_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy of a stopped party's SQLite file (the backup API: WAL included)."""
    import sqlite3

    for suffix in ("", "-wal", "-shm"):
        Path(f"{dst}{suffix}").unlink(missing_ok=True)
    with (
        contextlib.closing(sqlite3.connect(f"file:{src}?mode=ro", uri=True)) as a,
        contextlib.closing(sqlite3.connect(dst)) as b,
    ):
        a.backup(b)
