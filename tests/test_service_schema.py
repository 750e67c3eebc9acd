"""Schemathesis against each served party's OpenAPI schema, on a real process.

For every route: bounded generated requests (random bodies as ``application/cbor``, path
parameters, wrong media types), and for each: no 5xx, statuses and content types as the
schema documents them, and a request the party rejects leaves its state digest (every
table of its SQLite files) unchanged.  Examples are bounded (and derandomized by the
suite's hypothesis profile) so the test is quick and repeatable.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import checks

from psc.service.deploy import init_deployment, write_deployment
from psc.service.processes import Parties
from psc.testing import insecure_keypair

pytestmark = pytest.mark.timeout(600)

MAX_EXAMPLES = 40

schemathesis.openapi.media_type("application/cbor", st.binary(max_size=4096))


def state_digest(path: Path) -> str:
    """SHA-256 over every row of every table of a SQLite file (read-only)."""
    h = hashlib.sha256()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        ]
        for t in tables:
            h.update(t.encode())
            for row in conn.execute(f'SELECT * FROM "{t}" ORDER BY 1'):
                h.update(repr(row).encode())
    finally:
        conn.close()
    return h.hexdigest()


@pytest.fixture(scope="module")
def aggregator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = init_deployment(
        tmp_path_factory.mktemp("schema") / "dep", subjects=24, keypair=insecure_keypair(0, 512)
    )
    with Parties() as ps:
        party = ps.start("aggregator", root / "aggregator.toml")
        yield party.url, root / "aggregator" / "ledger.sqlite"


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from protocols.gen_reveal_dp import test_primes as shipped_primes
    from psc.hazmat.threshold.dealer import deal

    tpk, shares = deal(2, 3, bits=512, allow_insecure=True, _primes=shipped_primes(512))
    root = init_deployment(
        tmp_path_factory.mktemp("schema-member") / "dep", subjects=16, committee=(tpk, shares)
    )
    with Parties() as ps:
        party = ps.start("member", root / "member-1.toml")
        yield party.url, root / "members" / "member-1.sqlite"


@pytest.fixture(scope="module")
def desks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, list[Path]]]]:
    """The registry, one agency and the trusted key holder's desk, with the aggregator they
    call: each role's URL and the files its state (and the aggregator's) lives in."""
    root = init_deployment(
        tmp_path_factory.mktemp("schema-desks") / "dep",
        subjects=24,
        keypair=insecure_keypair(0, 512),
    )
    ledger = root / "aggregator" / "ledger.sqlite"
    agency = sorted((root / "agencies").glob("*.toml"))[0].stem
    with Parties() as ps:
        agg = ps.start("aggregator", root / "aggregator.toml")
        peers = {"aggregator": agg.url}
        yield {
            "registry": (ps.start("registry", root / "registry.toml").url, [ledger]),
            "agency": (
                ps.start("agency", root / "agencies" / f"{agency}.toml", peers).url,
                [ledger, root / "agencies" / agency / "outbox.sqlite"],
            ),
            "key-holder": (
                ps.start("key-holder", root / "key_holder.toml", peers).url,
                [ledger, root / "key_holder" / "desk.sqlite"],
            ),
        }


@pytest.fixture(scope="module")
def grading(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The CKKS grading authority over the small test catalog (N=16384) and its state file
    (the grading log, the budget's charges, the stored responses)."""
    from psc.catalog import parse_catalog
    from psc.service.he_deploy import write_grading_authority
    from psc.sim.he_driver import SMALL_TEST_CATALOG

    base = tmp_path_factory.mktemp("schema-grading")
    (base / "catalog.toml").write_text(SMALL_TEST_CATALOG)
    root, _ = write_deployment(
        base / "dep",
        catalog=parse_catalog(SMALL_TEST_CATALOG),
        catalog_name=str(base / "catalog.toml"),
        subjects=4,
        keypair=insecure_keypair(0, 512),
    )
    config = write_grading_authority(root)
    with Parties() as ps:
        party = ps.start("grading-authority", config)
        yield party.url, root / "grading_authority" / "state.sqlite"


@pytest.fixture(scope="module")
def rights_office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[Path]]]:
    """The rights office with every party it calls (two agencies): its URL and the files
    its state and its peers' live in."""
    from psc.catalog import load_catalog
    from psc.service.deploy import write_deployment
    from psc.sim.city import agency_instances

    catalog = load_catalog("city")
    agencies = ("intermediate-court", "transport-bureau")
    root, _ = write_deployment(
        tmp_path_factory.mktemp("schema-rights") / "dep",
        catalog=catalog,
        catalog_name="city",
        subjects=24,
        keypair=insecure_keypair(0, 512),
        agencies=[a for a in agency_instances(catalog) if a.id in agencies],
    )
    with Parties() as ps:
        agg = ps.start("aggregator", root / "aggregator.toml")
        peers = {
            "aggregator": agg.url,
            "registry": ps.start("registry", root / "registry.toml").url,
        }
        for a in agencies:
            peers[a] = ps.start(
                "agency", root / "agencies" / f"{a}.toml", {"aggregator": agg.url}
            ).url
        peers["key-holder"] = ps.start(
            "key-holder", root / "key_holder.toml", {"aggregator": agg.url}
        ).url
        office = ps.start("rights-office", root / "rights_office.toml", peers)
        files = [root / "rights_office" / "desk.sqlite", root / "aggregator" / "ledger.sqlite"]
        files += [root / "agencies" / a / "outbox.sqlite" for a in agencies]
        yield office.url, [*files, root / "key_holder" / "desk.sqlite"]


def test_every_rights_office_route_is_in_the_schema(
    rights_office: tuple[str, list[Path]],
) -> None:
    url, _ = rights_office
    assert {op.label for op in _operations(url)} == {
        "GET /v1/health",
        "POST /v1/rights/access-asks",
        "POST /v1/rights/correction-asks",
        "POST /v1/rights/repair-asks",
        "POST /v1/rights/withdrawal-asks",
        "POST /v1/rights/access-answers",
        "POST /v1/rights/grants",
        "POST /v1/rights/repair-decisions",
        "GET /v1/rights/requests/{request_id}",
    }


def _operations(url: str) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    ops = []
    for result in schema.get_all_operations():
        ops.append(result.ok())
    return ops


def test_every_route_is_in_the_schema(aggregator: tuple[str, Path]) -> None:
    url, _ = aggregator
    labels = {op.label for op in _operations(url)}
    assert labels == {
        "GET /v1/health",
        "POST /v1/submissions",
        "POST /v1/reveal-requests",
        "POST /v1/reveal-notices",
        "GET /v1/log/inclusions/{envelope_hash}",
        "GET /v1/log/tree-head",
        "GET /v1/log/leaves/{start}/{end}",
        "GET /v1/log/consistency/{old_size}/{new_size}",
        "GET /v1/log/envelopes/{envelope_hash}",
        "GET /v1/log/parties/{party}",
        "GET /v1/log/adjustments/{adjustment_hash}",
        "POST /v1/adjustments",
        "POST /v1/adjustment-batches",
        "POST /v1/adjustment-checks",
        "GET /v1/log/adjustment-inclusions/{adjustment_hash}",
    }


def test_every_member_route_is_in_the_schema(member: tuple[str, Path]) -> None:
    url, _ = member
    assert {op.label for op in _operations(url)} == {
        "GET /v1/health",
        "POST /v1/noise-shares",
        "POST /v1/decryption-shares",
        "GET /v1/known-answer-share",
    }


def test_every_grading_authority_route_is_in_the_schema(grading: tuple[str, Path]) -> None:
    url, _ = grading
    assert {op.label for op in _operations(url)} == {
        "GET /v1/health",
        "GET /v1/he/context",
        "POST /v1/he/submissions",
        "POST /v1/he/grade-requests",
    }


def test_every_desk_route_is_in_the_schema(desks: dict[str, tuple[str, list[Path]]]) -> None:
    routes = {role: {op.label for op in _operations(url)} for role, (url, _) in desks.items()}
    assert routes == {
        "registry": {
            "GET /v1/health",
            "POST /v1/grade-asks",
            "POST /v1/access-asks",
            "POST /v1/adjustment-order-asks",
        },
        "agency": {
            "GET /v1/health",
            "POST /v1/period-submissions",
            "POST /v1/access-requests",
            "POST /v1/adjustment-orders",
            "POST /v1/logged-adjustments",
        },
        "key-holder": {"GET /v1/health", "POST /v1/grade-requests"},
    }


@pytest.mark.parametrize(
    "party",
    [
        "aggregator",
        "member",
        "registry",
        "agency",
        "key-holder",
        "grading-authority",
        "rights-office",
    ],
)
def test_generated_requests_get_no_5xx_and_rejections_change_nothing(
    party: str, request: pytest.FixtureRequest
) -> None:
    if party in ("aggregator", "member", "grading-authority"):
        url, ledger = request.getfixturevalue("grading" if party == "grading-authority" else party)
        files = [ledger]
    elif party == "rights-office":
        url, files = request.getfixturevalue("rights_office")
    else:
        url, files = request.getfixturevalue("desks")[party]
    for op in _operations(url):

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy())
        def one(case: schemathesis.Case) -> None:
            before = [state_digest(f) for f in files]
            response = case.call(base_url=url, timeout=30)
            case.validate_response(
                response,
                checks=[
                    checks.not_a_server_error,
                    checks.status_code_conformance,
                    checks.content_type_conformance,
                    checks.response_schema_conformance,
                ],
            )
            if response.status_code >= 400:
                after = [state_digest(f) for f in files]
                assert after == before, f"{case.operation.label} changed state"

        one()
