"""The CKKS grading authority as a real process, opened from its files (service.md §2-§7).

A tiny city over the small test catalog (N=16384: keys in seconds): agencies submit signed
CKKS submissions over HTTP, a requester asks with a signed request and gets a signed
response bound to it, compared with the plaintext oracle; replays change nothing; the
authority is killed with ``kill -9`` after a charge and restarted from its files; a flood
beyond the query budget is refused and the process keeps serving.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import tomllib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from psc.catalog import Catalog, parse_catalog
from psc.exceptions import BudgetExhausted, InvalidMessage, PolicyViolation, ReplayedNonce
from psc.oracle import grades_of
from psc.protocol import codec
from psc.protocol.he_messages import HeGradeResponse, HeSubmission
from psc.protocol.messages import GradeRequest, SignedMessage
from psc.protocol.signing import seal
from psc.service.client import HttpPeer
from psc.service.config import read_key
from psc.service.deploy import write_deployment
from psc.service.he_client import HttpGradingAuthority, check_grade_response
from psc.service.he_deploy import write_grading_authority
from psc.service.processes import Parties, Party
from psc.sim.he_driver import SMALL_TEST_CATALOG, he_submission
from psc.testing import insecure_keypair

pytestmark = pytest.mark.timeout(600)

N = 7
RAW = np.array([6, 7, 8, 9, 10, 11, 12])
CAPS = np.array([0, 0, 0, 0, 0, 1, 1])
MAX_QUERIES = 3


@dataclasses.dataclass
class World:
    root: Path
    catalog: Catalog
    parties: Parties
    party: Party
    authority_key: bytes
    nonce: int = 0
    wire: list[bytes] = dataclasses.field(default_factory=list)
    receipts: list[bytes] = dataclasses.field(default_factory=list)

    clients: list[HttpGradingAuthority] = dataclasses.field(default_factory=list)

    def client(self) -> HttpGradingAuthority:
        """A client of the running authority (closed when the module's tests end)."""
        if not self.clients or self.clients[-1].peer.base_url != self.party.url:
            peer = HttpPeer(self.party.url, retries=1)
            self.clients.append(HttpGradingAuthority(peer, self.authority_key, self.catalog))
        return self.clients[-1]

    @property
    def bank(self) -> str:
        return str(tomllib.loads((self.root / "bank.toml").read_text())["id"])

    def key(self, name: str) -> object:
        path = self.root / ("agencies/" + name + ".key" if "bureau" in name else name + ".key")
        return read_key(path)

    def next_nonce(self) -> bytes:
        self.nonce += 1
        return self.nonce.to_bytes(16, "big")

    def submissions(self, auth: HttpGradingAuthority, period: int) -> list[bytes]:
        d = RAW - 10
        return [
            he_submission(
                auth,
                agency,
                self.key(agency),
                period,
                "month",
                counter,
                v.astype(np.int64),
                agency,
                randbytes=lambda n: self.next_nonce()[:n],
            )
            for agency, counter, v in (
                ("transport-bureau", "score", np.minimum(d, 0)),
                ("transport-bureau", "cap:C", CAPS),
                ("civil-affairs-bureau", "score", np.maximum(d, 0)),
            )
        ]

    def request(self, slots: list[int], period: int = 0) -> bytes:
        """The bank's signed grade request."""
        req = GradeRequest(
            self.bank, "credit-assessment", period, tuple(slots), self.next_nonce(), b"", 0
        )
        return seal(req, read_key(self.root / "bank.key"))

    def state(self) -> dict[str, list[tuple[object, ...]]]:
        """The authority's durable state, read-only: charges, answered requests, log."""
        path = self.root / "grading_authority" / "state.sqlite"
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return {
                t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("used", "answered", "entries", "he_answers")
            }
        finally:
            conn.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("he-service")
    (base / "catalog.toml").write_text(SMALL_TEST_CATALOG)
    catalog = parse_catalog(SMALL_TEST_CATALOG)
    root, _ = write_deployment(
        base / "dep",
        catalog=catalog,
        catalog_name=str(base / "catalog.toml"),
        subjects=N,
        keypair=insecure_keypair(0, 512),
    )
    config = write_grading_authority(root, max_queries=MAX_QUERIES)
    key = bytes.fromhex((root / "grading_authority.pub").read_text().strip())
    with Parties() as ps:
        party = ps.start("grading-authority", config)
        w = World(root, catalog, ps, party, key)
        # every agency submits period 0 here, not in a test: each test gets a logged period
        # whichever worker runs it and in whatever order (pytest-xdist splits a module)
        client = w.client()
        w.wire = w.submissions(client, 0)
        w.receipts = [client.log_submission(s) for s in w.wire]
        try:
            yield w
        finally:
            for c in w.clients:
                c.close()


def test_the_authority_files_keep_the_secret_key_private(world: World) -> None:
    here = world.root / "grading_authority"
    assert (here / "secret.ctx").stat().st_mode & 0o777 == 0o600
    assert (world.root / "grading_authority.key").stat().st_mode & 0o777 == 0o600
    client = world.client()
    assert client.public.data == (here / "public.ctx").read_bytes()  # no secret key in it


def test_grades_over_http_match_the_oracle_and_replays_change_nothing(world: World) -> None:
    client = world.client()
    wire, receipts = world.wire, world.receipts  # logged by the fixture
    before = world.state()
    assert [e[1] for e in before["entries"]].count("he-submission") == 3
    # the same submissions again: the same receipts, byte for byte, logged once
    assert [client.log_submission(s) for s in wire] == receipts
    assert world.state() == before
    request = world.request(list(range(N)))
    response = client.grade_response(request)
    grades = check_grade_response(response, request, world.authority_key, 4)
    want = grades_of(world.catalog, RAW, np.where(CAPS > 0, 1, 3))
    assert grades == {i: int(want[i]) for i in range(N)}
    charged = world.state()
    used = {int(s): int(n) for s, n in before["used"]}  # type: ignore[call-overload]
    assert charged["used"] == [(s, used.get(s, 0) + 1) for s in range(N)]  # once each
    # the same request again: the same bytes, nothing charged or logged twice
    assert client.grade_response(request) == response
    assert world.state() == charged
    # the response is bound to its request: checked against another, it is refused
    with pytest.raises(InvalidMessage, match="another request"):
        check_grade_response(response, world.request(list(range(N))), world.authority_key, 4)
    # and a forged one (another slot's grade) fails the authority's signature
    msg = codec.decode(codec.decode(response, SignedMessage).body, HeGradeResponse)
    forged = seal(dataclasses.replace(msg, grades=(0,) * N), read_key(world.root / "bank.key"))
    with pytest.raises(InvalidMessage):
        check_grade_response(forged, request, world.authority_key, 4)
    # a request signed by nobody registered, or for a period not yet logged: refused,
    # nothing charged
    with pytest.raises(PolicyViolation, match="period 1 cannot be graded yet"):
        client.reveal(world.request([0], period=1))
    assert world.state() == charged


def test_kill_9_after_a_charge_keeps_the_log_and_the_charges(world: World) -> None:
    client = world.client()
    request = world.request([2, 3])
    grades = client.reveal(request)
    response = client.grade_response(request)  # stored: the same bytes again
    state = world.state()
    world.party.kill()
    assert not world.party.alive()
    world.party = world.parties.start("grading-authority", world.root / "grading_authority.toml")
    restarted = world.client()
    assert world.state() == state  # nothing lost, nothing added by the restart
    assert restarted.grade_response(request) == response
    assert restarted.reveal(request) == grades
    # the log was replayed: a logged submission again gets its receipt, not a second entry
    assert [restarted.log_submission(s) for s in world.wire] == world.receipts
    # and its nonces are known again: the same message re-signed with a used nonce for
    # another period is a replay
    wrapper = codec.decode(world.wire[0], SignedMessage)
    again = dataclasses.replace(codec.decode(wrapper.body, HeSubmission), period=1)
    with pytest.raises(ReplayedNonce, match="'transport-bureau'"):
        restarted.log_submission(seal(again, world.key("transport-bureau")))  # type: ignore[arg-type]
    assert world.state() == state


def test_a_flood_beyond_the_budget_is_refused_and_the_process_keeps_serving(
    world: World,
) -> None:
    client = world.client()
    used_before = {int(s): int(n) for s, n in world.state()["used"]}  # type: ignore[call-overload]
    refused = 0
    for _ in range(MAX_QUERIES + 2):
        try:
            client.reveal(world.request([4]))
        except BudgetExhausted:
            refused += 1
    assert refused == 2 + used_before.get(4, 0)
    assert dict(world.state()["used"])[4] == MAX_QUERIES
    assert world.party.alive() and client.peer.healthy()
    state = world.state()
    with pytest.raises(BudgetExhausted):  # still refused, nothing charged or logged
        client.reveal(world.request([3, 4]))
    assert world.state() == state


def test_bodies_over_the_route_limits_are_refused_before_the_authority_reads_them(
    world: World,
) -> None:
    import httpx

    from psc.service.he_app import REQUEST_MAX_BODY

    state = world.state()
    with httpx.Client(base_url=world.party.url, timeout=60) as http:
        r = http.post(
            "/v1/he/grade-requests",
            content=bytes(REQUEST_MAX_BODY + 1),
            headers={"content-type": "application/cbor"},
        )
        assert r.status_code == 413 and r.json()["error"] == "BodyTooLarge"
        r = http.post("/v1/he/submissions", content=b"\xa0", headers={"content-type": "text/plain"})
        assert r.status_code == 415
    assert world.state() == state and world.party.alive()
