"""Write ``protocols/vectors/reveal_dp.json``: the committee's DP grade reveal, good and bad.

Specs: ``protocols/reveal-dp.md`` (the reveal) and ``protocols/noise-shares.md`` (noise
and mask shares).  Deterministic: keys are dealt from the shipped test safe primes
(``protocols/vectors/threshold.json``, INSECURE) with :class:`protocols.gen_threshold.Drbg`
randomness; signing keys come from fixed seeds; noise shares from
:class:`psc.dp.random.SeededRandomSource`; masks, encryption randomizers and proof nonces
from ``Drbg``; the combiner's clock is fixed.  Ed25519 signatures are deterministic, so
the combiner's messages are byte-identical on replay and every recorded member reply
still answers them.

Each case records the members' replies (noise shares, decryption shares) as the
combiner received them, and the outcome: the grades and excluded members, or the error.
``tests/test_vectors_reveal_dp.py`` replays every case through :class:`KeyCommittee`
with links that return the recorded bytes.

:func:`make_committee` is also the fixture of ``tests/test_committee.py`` and of the
reveal benchmark.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from protocols.gen_threshold import Drbg
from psc.catalog import Catalog, load_catalog
from psc.dp.accounting import ApproxDP, Loss
from psc.dp.random import SeededRandomSource
from psc.exceptions import (
    BudgetExhausted,
    InsufficientShares,
    InvalidMessage,
    PolicyViolation,
    UnknownParty,
)
from psc.hazmat.backends.paillier import PackedCiphertext, PackedPaillier, RandomnessPool
from psc.hazmat.threshold.dealer import deal
from psc.hazmat.threshold.keys import KeyShare, ThresholdPublicKey
from psc.parties.committee import (
    CommitteeMember,
    CommitteeParameters,
    KeyCommittee,
    LocalLink,
    MapMembers,
    MemberLink,
    RevealPolicy,
    reveal_layout,
)
from psc.parties.committee.outcomes import CommitteeReveal
from psc.protocol.committee_messages import NoiseShare, StatisticRequest
from psc.protocol.logview import LiveSums, LogView, Requester
from psc.protocol.messages import BlockCiphertext, GradeRequest, RevealRequest
from psc.protocol.parameters import (
    REGISTRY_ID,
    SCORE_LABEL,
    SELF_ACCESS_PURPOSE,
    ProtocolParameters,
)
from psc.protocol.signing import _signing_key_from_seed, digest, public_bytes, seal

OUT = Path(__file__).parent / "vectors" / "reveal_dp.json"
THRESHOLD = Path(__file__).parent / "vectors" / "threshold.json"
VERSION = 1
CLOCK = 1_780_000_000
PERIOD = 24_316  # 2026-05


def test_primes(bits: int) -> tuple[int, int]:
    """The shipped (public, INSECURE) test safe primes for a ``bits``-bit modulus."""
    entry = json.loads(THRESHOLD.read_text())["test_safe_primes"][str(bits)]
    return int(entry["p"], 16), int(entry["q"], 16)


def member_seed(i: int) -> bytes:
    return bytes([0x40 + i]) * 32


COMBINER_SEED = b"\x5c" * 32
AGGREGATOR_SEED = b"\x6a" * 32
REGISTRY_SEED = b"\x6b" * 32
#: The tree root the fixture's aggregator signs in its reveal requests.
FIXTURE_ROOT = hashlib.sha256(b"psc/test/committee-fixture-log").digest()


#: One-block ciphertexts of the live sums: score blocks, and per cap label its blocks.
LiveBlocks = tuple[dict[int, PackedCiphertext], dict[str, dict[int, PackedCiphertext]]]


class FixtureLog(LogView):
    """The public log as committee unit tests see it: the live sums are whatever the
    fixture's aggregator encrypted (:func:`live_blocks`), for every period, at the tree
    head ``(1, FIXTURE_ROOT)``; requests come from the registry.  Its
    :meth:`~psc.protocol.logview.LogView.check_blocks` is the real one.  The binding to
    a real ledger (:class:`~psc.protocol.logview.LedgerLogView`) is exercised with a real
    aggregator in ``tests/attacks/test_aggregator_reveal.py``."""

    def __init__(self, params: ProtocolParameters) -> None:
        self.params = params
        self.by_label: dict[str, PackedCiphertext] = {}

    def requester(self, name: str) -> Requester:
        if name != REGISTRY_ID:
            raise UnknownParty(f"requester {name!r} is not registered in the fixture")
        return Requester(self.params.registry_key, None)

    def live_sums(self, period: int, tree_size: int, tree_root: bytes) -> LiveSums:
        if (tree_size, tree_root) != (1, FIXTURE_ROOT):
            raise InvalidMessage("the fixture log has no such tree head")
        return LiveSums(period, tree_size, dict(self.by_label))


@dataclass
class Committee:
    """A whole committee in one process (tests, vectors, benchmarks)."""

    catalog: Catalog
    public: ThresholdPublicKey
    key_shares: list[KeyShare]
    params: CommitteeParameters
    members: list[CommitteeMember]
    links: list[MemberLink]
    combiner: KeyCommittee
    store: sqlite3.Connection
    backend: PackedPaillier
    log: FixtureLog
    seen: list[tuple[str, int, np.ndarray]] = field(default_factory=list)
    requests: int = 0
    live: LiveBlocks | None = None

    def authorize(self, slots: Sequence[int], period: int) -> tuple[bytes, bytes]:
        """The fixture's registry asks for ``slots`` and its aggregator signs the reveal
        request: ``(request hash, sealed RevealRequest)``.  Each call is a new request."""
        self.requests += 1
        req = seal(
            GradeRequest(
                requester=REGISTRY_ID,
                purpose=SELF_ACCESS_PURPOSE,
                period=period,
                slots=tuple(sorted(set(int(s) for s in slots))),
                nonce=self.requests.to_bytes(16, "big"),
                consent=b"",
                issued_at=CLOCK,
            ),
            _signing_key_from_seed(REGISTRY_SEED),
        )
        score = self.log.by_label[SCORE_LABEL]
        block = PackedCiphertext(
            score.key_fingerprint, score.layout, score.layout.slots, score.bound, score.blocks[:1]
        )
        rr = RevealRequest(
            request=req,
            period=period,
            blocks=(BlockCiphertext(SCORE_LABEL, 0, self.backend.serialize(block)),),
            tree_size=1,
            tree_root=FIXTURE_ROOT,
        )
        return digest(req), seal(rr, _signing_key_from_seed(AGGREGATOR_SEED))

    def reveal(
        self,
        period: int,
        slots: Sequence[int],
        score: Mapping[int, PackedCiphertext],
        caps: Mapping[str, Mapping[int, PackedCiphertext]],
    ) -> CommitteeReveal:
        """The combiner reveals ``slots`` for a fresh, authorized request."""
        request_hash, auth = self.authorize(slots, period)
        return self.combiner.reveal_grades(
            request_hash, period, slots, score, caps, authorization=auth
        )

    def statistic_request(self, name: str, period: int, cells: int) -> bytes:
        """The fixture's aggregator asks for a published statistic."""
        msg = StatisticRequest(name, period, cells, CLOCK)
        return seal(msg, _signing_key_from_seed(AGGREGATOR_SEED))


def make_committee(
    *,
    bits: int = 512,
    k: int = 3,
    n: int = 5,
    honest: int | None = None,
    quorum: int | None = None,
    epsilon: Fraction = Fraction(1),
    min_epsilon: Fraction = Fraction(1, 4),
    budget: Loss | None = None,
    catalog: Catalog | None = None,
    multiplicity: int = 1,
    seed: str = "committee",
    draw: Callable[[], int] | None = None,
    links: Callable[[list[CommitteeMember]], list[MemberLink]] | None = None,
    store: sqlite3.Connection | None = None,
    map_members: MapMembers | None = None,
    noise_seeded: bool = True,
    verify_pool: Executor | None = None,
    live: tuple[np.ndarray, dict[str, np.ndarray]] | None = None,
) -> Committee:
    """A deterministic ``k``-of-``n`` committee over ``bits``-bit test primes (INSECURE)."""
    cat = catalog if catalog is not None else load_catalog("city")
    dealer = Drbg(f"reveal-dp/{seed}/dealer")
    pk, shares = deal(
        k, n, bits=bits, randbelow=dealer.randbelow, allow_insecure=True, _primes=test_primes(bits)
    )
    policy = RevealPolicy(
        epsilon, min_epsilon, honest=k if honest is None else honest, quorum=quorum
    )
    layout = reveal_layout(cat, bits, multiplicity=multiplicity, members=n, policy=policy)
    mkeys = [_signing_key_from_seed(member_seed(i)) for i in range(1, n + 1)]
    ckey = _signing_key_from_seed(COMBINER_SEED)
    log = FixtureLog(
        ProtocolParameters(
            cat,
            pk.public,
            layout,
            1000,
            multiplicity,
            public_bytes(_signing_key_from_seed(REGISTRY_SEED)),
            public_bytes(_signing_key_from_seed(AGGREGATOR_SEED)),
            public_bytes(ckey),
            allow_insecure_key=True,
        )
    )
    params = CommitteeParameters(
        cat,
        pk,
        layout,
        multiplicity,
        policy,
        tuple(public_bytes(x) for x in mkeys),
        public_bytes(ckey),
        allow_insecure_key=True,
    )
    members = []
    for i in range(n):
        rng = Drbg(f"reveal-dp/{seed}/member/{i + 1}")
        members.append(
            CommitteeMember(
                params,
                shares[i],
                mkeys[i],
                noise_rng=SeededRandomSource(f"reveal-dp/{seed}/noise/{i + 1}")
                if noise_seeded
                else None,
                randbelow=rng.randbelow,
                pool=RandomnessPool(pk.public, randbelow=rng.randbelow),
                log_view=log,
                _draw=draw,
            )
        )
    enc = Drbg(f"reveal-dp/{seed}/aggregator")
    backend = params.backend(RandomnessPool(pk.public, randbelow=enc.randbelow))
    live_cts = None
    if live is not None:  # before members fork into processes: they read this log
        live_cts = _encrypt_live(params, backend, log, *live)
    member_links = links(members) if links is not None else [LocalLink(m) for m in members]
    conn = store if store is not None else sqlite3.connect(":memory:", isolation_level=None)
    seen: list[tuple[str, int, np.ndarray]] = []
    combiner = KeyCommittee(
        params,
        ckey,
        member_links,
        conn,
        budget=budget if budget is not None else ApproxDP(4, Fraction(1, 10**9)),
        clock=lambda: CLOCK,
        observer=lambda label, j, v: seen.append((label, j, v)),
        verify_pool=verify_pool,
        **({} if map_members is None else {"map_members": map_members}),
    )
    return Committee(
        cat,
        pk,
        shares,
        params,
        members,
        member_links,
        combiner,
        conn,
        backend,
        log,
        seen,
        0,
        live_cts,
    )


def live_blocks(c: Committee, sums: np.ndarray, caps: dict[str, np.ndarray]) -> LiveBlocks:
    """Encrypt live sums and cap counters as the aggregator holds them, one entry per block
    (the ones :func:`make_committee` made with ``live=`` if any)."""
    if c.live is not None:
        return c.live
    return _encrypt_live(c.params, c.backend, c.log, sums, caps)


def _encrypt_live(
    params: CommitteeParameters,
    backend: PackedPaillier,
    log: FixtureLog,
    sums: np.ndarray,
    caps: dict[str, np.ndarray],
) -> LiveBlocks:
    S = params.layout.slots
    blocks = range(-(-len(sums) // S))
    bound = params.data_bound

    def enc(label: str, v: np.ndarray) -> dict[int, PackedCiphertext]:
        whole = backend.encrypt(v, bound=bound)
        log.by_label[label] = whole  # what the fixture's log reproduces
        return {
            j: PackedCiphertext(
                whole.key_fingerprint,
                whole.layout,
                min(S, len(v) - j * S),
                bound,
                (whole.blocks[j],),
            )
            for j in blocks
        }

    return enc(SCORE_LABEL, sums), {label: enc(label, v) for label, v in caps.items()}


class RecordingLink(MemberLink):
    """Forwards to a member and records its replies (or, in replay, returns recorded ones)."""

    def __init__(
        self,
        index: int,
        inner: MemberLink | None = None,
        *,
        noise: bytes | None = None,
        decryption: bytes | None = None,
        known: bytes | None = None,
        tamper_noise: Callable[[bytes], bytes] | None = None,
        tamper_decryption: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.index = index
        self.inner = inner
        self.noise = noise
        self.decryption = decryption
        self.known = known
        self._tn = tamper_noise
        self._td = tamper_decryption
        self.calls = 0

    def noise_share(self, sealed_task: bytes) -> bytes:
        self.calls += 1
        if self.inner is not None:
            out = self.inner.noise_share(sealed_task)
            self.noise = self._tn(out) if self._tn else out
        if self.noise is None:
            raise InvalidMessage(f"member {self.index} sent no noise share")
        return self.noise

    def decryption_share(self, sealed_request: bytes) -> bytes:
        self.calls += 1
        if self.inner is not None:
            out = self.inner.decryption_share(sealed_request)
            self.decryption = self._td(out) if self._td else out
        if self.decryption is None:
            raise InvalidMessage(f"member {self.index} sent no decryption share")
        return self.decryption

    def known_answer_share(self) -> bytes:
        if self.inner is not None:
            self.known = self.inner.known_answer_share()
        if self.known is None:
            raise InvalidMessage(f"member {self.index} sent no known-answer share")
        return self.known


# -- the cases ---------------------------------------------------------------------------
N_SUBJECTS = 12
TARGET = 3
SUMS = [-950, 831, -1242, 40, -1018, 529, 341, 120, -75, 900, 0, -300]
CAPS = {"C": [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0]}


def resign_noise_share(sealed: bytes) -> bytes:
    """A member's noise share signed with another member's key (bad signature)."""
    from psc.protocol import codec
    from psc.protocol.messages import SignedMessage

    body = codec.decode(codec.decode(sealed, SignedMessage).body, NoiseShare)
    return seal(body, _signing_key_from_seed(member_seed(9)))


def corrupt_decryption_share(sealed: bytes, member: int) -> bytes:
    """A member's decryption share with one block share altered, re-signed by the member
    (a correct signature on a share whose proof fails)."""
    from psc.protocol import codec
    from psc.protocol.committee_messages import MemberDecryptionShare
    from psc.protocol.messages import SignedMessage

    msg = codec.decode(codec.decode(sealed, SignedMessage).body, MemberDecryptionShare)
    share = bytearray(msg.share)
    share[20] ^= 1  # inside the first block share value
    bad = MemberDecryptionShare(msg.member, msg.task_hash, msg.request_hash, bytes(share))
    return seal(bad, _signing_key_from_seed(member_seed(member)))


def _hex_or_none(b: bytes | None) -> str | None:
    return None if b is None else b.hex()


def run_case(
    name: str, *, record: dict[int, dict[str, str | None]] | None = None
) -> tuple[Committee, list[RecordingLink], dict[str, Any]]:
    """Run (or, with ``record``, replay) one named case; returns the outcome."""
    other_task: dict[str, bytes] = {}

    def links(members: list[CommitteeMember]) -> list[MemberLink]:
        out: list[RecordingLink] = []
        for m in members:
            if record is not None:
                r = record[m.index]
                noise = bytes.fromhex(r["noise"]) if r["noise"] else None
                dec = bytes.fromhex(r["decryption"]) if r["decryption"] else None
                kat = bytes.fromhex(r["known_answer"]) if r.get("known_answer") else None
                out.append(RecordingLink(m.index, noise=noise, decryption=dec, known=kat))
                continue
            tn: Callable[[bytes], bytes] | None = None
            td: Callable[[bytes], bytes] | None = None
            if name == "bad_noise_share_signature" and m.index == 2:
                tn = resign_noise_share
            if name == "bad_noise_share_other_request" and m.index == 4:
                tn = lambda _b: other_task["share"]  # noqa: E731
            if name == "bad_decryption_share_proof" and m.index == 1:
                td = lambda b: corrupt_decryption_share(b, 1)  # noqa: E731
            out.append(RecordingLink(m.index, LocalLink(m), tamper_noise=tn, tamper_decryption=td))
        return list(out)

    budget = (
        ApproxDP(Fraction(1, 2), Fraction(1, 10**9)) if name == "bad_budget_exhausted" else None
    )
    # quorum 4 of 5: a case with one bad noise share still reveals (and names its member)
    c = make_committee(seed="vectors", links=links, budget=budget, quorum=4)
    sums = np.array(SUMS, dtype=np.int64)
    caps = {k: np.array(v, dtype=np.int64) for k, v in CAPS.items()}
    score, cap_blocks = live_blocks(c, sums, caps)
    if name == "bad_noise_share_other_request":  # in replay too: the request count matters
        other_auth = c.authorize([TARGET], PERIOD)
    if name == "bad_noise_share_other_request" and record is None:
        # member 4's honest share for another request on the same blocks: signed
        # correctly, but bound to another task
        from psc.protocol.committee_messages import RevealTask
        from psc.protocol.messages import BlockCiphertext

        blocks = tuple(
            BlockCiphertext(
                lab, 0, c.backend.serialize(score[0] if lab == "score" else cap_blocks[lab][0])
            )
            for lab in c.params.labels
        )
        ckey = _signing_key_from_seed(COMBINER_SEED)
        rh, auth = other_auth
        t = seal(RevealTask(rh, "grade", PERIOD, (TARGET,), blocks, CLOCK, auth), ckey)
        other_task["share"] = c.members[3].noise_share(t)
    outcome: dict[str, Any]
    try:
        res = c.reveal(PERIOD, [TARGET], score, cap_blocks)
        labels = c.catalog.labels
        outcome = {
            "grades": {str(s): labels[g] for s, g in res.grades.items()},
            "members": list(res.members),
            "excluded": sorted(res.excluded),
            "answer": res.answer.hex(),
        }
    except (BudgetExhausted, InsufficientShares, InvalidMessage, PolicyViolation) as exc:
        outcome = {"error": type(exc).__name__}
    rlinks = [link for link in c.links if isinstance(link, RecordingLink)]
    return c, rlinks, outcome


CASES = (
    "good",
    "bad_noise_share_signature",
    "bad_noise_share_other_request",
    "bad_decryption_share_proof",
    "bad_budget_exhausted",
)


def duplicate_member_case(c: Committee) -> dict[str, str]:
    """A decryption request listing one member's noise share twice (members refuse it)."""
    from psc.protocol.committee_messages import DecryptionRequest, RevealTask
    from psc.protocol.messages import BlockCiphertext

    sums = np.array(SUMS, dtype=np.int64)
    score, caps = live_blocks(c, sums, {k: np.array(v) for k, v in CAPS.items()})
    blocks = tuple(
        BlockCiphertext(lab, 0, c.backend.serialize(score[0] if lab == "score" else caps[lab][0]))
        for lab in c.params.labels
    )
    ckey = _signing_key_from_seed(COMBINER_SEED)
    rh, auth = c.authorize([TARGET], PERIOD)
    task = seal(RevealTask(rh, "grade", PERIOD, (TARGET,), blocks, CLOCK, auth), ckey)
    shares = [m.noise_share(task) for m in c.members[:3]]
    req = seal(DecryptionRequest(task, (shares[0], shares[1], shares[1], shares[2])), ckey)
    return {
        "task": task.hex(),
        "noise_shares": ",".join(s.hex() for s in shares),
        "request": req.hex(),
    }


def main() -> None:
    doc: dict[str, Any] = {
        "version": VERSION,
        "specs": ["protocols/reveal-dp.md", "protocols/noise-shares.md"],
        "warning": "512-bit test key from public primes: INSECURE, vectors only",
        "parameters": {
            "bits": 512,
            "k": 3,
            "n": 5,
            "honest": 3,
            "quorum": 4,
            "epsilon": "1",
            "min_epsilon": "1/4",
            "catalog": "city",
            "period": PERIOD,
            "clock": CLOCK,
            "target": TARGET,
            "sums": SUMS,
            "caps": CAPS,
        },
        "cases": {},
    }
    for name in CASES:
        c, links, outcome = run_case(name)
        p = c.params
        doc["parameters"]["slot_bits"] = p.layout.slot_bits
        doc["parameters"]["slots"] = p.layout.slots
        doc["parameters"]["share_bound"] = p.share_bound
        doc["parameters"]["mask_range_bits"] = p.mask_range.bit_length() - 1
        doc["parameters"]["delta"] = f"{p.delta.numerator}/{p.delta.denominator}"
        doc["cases"][name] = {
            "replies": {
                str(link.index): {
                    "noise": _hex_or_none(link.noise),
                    "decryption": _hex_or_none(link.decryption),
                    "known_answer": _hex_or_none(link.known),
                }
                for link in links
            },
            "outcome": outcome,
        }
    c = make_committee(seed="vectors-duplicate")
    doc["cases"]["bad_duplicate_member"] = {
        "seed": "vectors-duplicate",
        "member": 1,
        **duplicate_member_case(c),
        "outcome": {"error": "InvalidMessage"},
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
