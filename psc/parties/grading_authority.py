"""The grading authority: the CKKS key holder that evaluates the published circuit itself.

**Role.**  One grading authority holds the whole CKKS secret key (this version; issue 10
replaces it by a threshold committee).  It publishes the public context, keeps the
**grading log** (an append-only, hash-chained record of every signed :class:`HeSubmission`
and every signed grade request it accepted) and answers a request only by

1. verifying the requester's signature, registration and purpose, and that the request is
   new (its digest and ``(requester, nonce)`` were never logged: no replay);
2. charging each requested subject's query budget (``max_queries`` decryptions per subject
   over the key's lifetime) durably *before* anything is decrypted;
3. recomputing the live sums for the request's period from its own logged, verified
   submissions (``p <= period < p + months(retention)``), running the **published
   circuit** on them itself (:class:`~psc.hazmat.he.evaluator.HomomorphicGrader`), masking every
   slot but the requested ones;
4. flooding every slot with fresh discrete Gaussian noise from the OS CSPRNG
   (:mod:`psc.hazmat.he.flooding`), decrypting, and releasing only the rounded grades.

The log's entries, the charges and the answered requests live in one SQLite file (the
:class:`QueryLedger`): a submission's entry commits before it counts, a request's entry with
its charge; :meth:`GradingAuthority.restore` replays them after a restart, verifying every
submission again.

It never decrypts a ciphertext that another party computed: there is no entry point that
takes one.  An evaluator that packs bits of a score into "grades", evaluates its own
thresholds, replays or re-labels a request, or forges an input has nothing to send it
(``tests/attacks/test_he_evaluator.py``).

**What each party learns.**  Requester: the rounded grades of its slots.  Aggregator:
ciphertexts and the log.  The authority: the raw decryption of masked, flooded grades:
``g + w + E`` per slot with ``w`` the circuit's residual; the flooding hides ``w`` only to
the bound :func:`~psc.hazmat.he.flooding.flooding_distance` states for the measured residuals (city
profile: ``2^-13.2`` for the requested slot in one query, ``2^-7.8`` for the whole view of
the declared 4 queries; **not** the ``2^-40`` target).  The authority
holds the whole secret key, so it *could* decrypt any logged submission or accumulator
itself; nothing in this design prevents that, and that single point of trust is why issue
10 exists.  A malicious agency can still submit a ciphertext derived from other agencies'
logged ciphertexts (CKKS is malleable and psc has no lattice proof of plaintext knowledge);
the authority checks only that each is a fresh, well-formed encryption under its context.

Raises: :class:`UnknownParty` (unregistered signer, named), :class:`InvalidMessage` (bad
signature, malformed message or ciphertext), :class:`CatalogMismatch`,
:class:`KeyMismatch` (another context), :class:`PolicyViolation` (purpose, a counter the
agency's rules cannot set), :class:`ReplayedNonce` (replayed request or submission nonce),
:class:`DuplicateSubmission`, :class:`BudgetExhausted` (nothing decrypted).
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from psc.catalog import Catalog
from psc.dp.random import RandomSource, resolve
from psc.dp.sampling import sample_skellam
from psc.exceptions import (
    BudgetExhausted,
    CatalogMismatch,
    DuplicateSubmission,
    InvalidMessage,
    KeyMismatch,
    ParameterError,
    PolicyViolation,
    ReplayedNonce,
    UnknownParty,
)
from psc.hazmat.backends.bfv import TensealCiphertext
from psc.hazmat.he.circuit import GradingCircuit
from psc.hazmat.he.contexts import PublicContext, SecretContext, generate
from psc.hazmat.he.evaluator import HomomorphicGrader, _Prepared
from psc.hazmat.he.flooding import DEFAULT_MAX_QUERIES, FLOOD_SIGMA, sample_flooding
from psc.hazmat.he.histogram import encrypted_histogram, histogram_rotation_steps
from psc.protocol import codec
from psc.protocol.he_messages import HeSubmission
from psc.protocol.messages import GradeRequest, SignedMessage
from psc.protocol.signing import digest, open_signed


@dataclass(frozen=True)
class LoggedSubmission:
    """A verified submission in the grading log, with its parsed ciphertext."""

    message: HeSubmission
    ciphertext: TensealCiphertext
    digest: bytes  # SHA-256 of the signed wire bytes


@dataclass
class GradingLog:
    """Append-only, hash-chained record of what the authority accepted (public to auditors).

    ``head = SHA-256(head || kind || SHA-256(entry))`` after each entry, from 32 zero bytes.
    """

    entries: list[tuple[str, bytes]] = field(default_factory=list)
    head: bytes = bytes(32)
    #: the head right after each entry (``heads[i]`` follows ``entries[i]``)
    heads: list[bytes] = field(default_factory=list)

    def append(self, kind: str, data: bytes) -> bytes:
        d = digest(data)
        self.head = hashlib.sha256(self.head + kind.encode() + b"\x00" + d).digest()
        self.entries.append((kind, data))
        self.heads.append(self.head)
        return d


class QueryLedger:
    """How many decryptions each subject slot took part in, which requests were answered,
    and the grading log's entries in order.

    SQLite (``path``, default in memory); every charge commits, with its request's log
    entry, before the caller decrypts, so a crash cannot reopen a budget; a submission's
    entry commits before it counts (:meth:`GradingAuthority.restore` replays them).
    """

    def __init__(self, path: str = ":memory:") -> None:
        self._db = sqlite3.connect(path, check_same_thread=False)
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS used (slot INTEGER PRIMARY KEY, n INTEGER)")
        self._db.execute("CREATE TABLE IF NOT EXISTS answered (digest BLOB PRIMARY KEY)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS entries "
            "(seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, data BLOB NOT NULL)"
        )
        self._db.commit()

    def append(self, kind: str, data: bytes) -> None:
        """Commit one grading-log entry (a verified submission) before it counts."""
        with self._db:
            self._db.execute("INSERT INTO entries (kind, data) VALUES (?, ?)", (kind, data))

    def entries(self) -> list[tuple[str, bytes]]:
        """The committed grading-log entries, in order."""
        rows = self._db.execute("SELECT kind, data FROM entries ORDER BY seq").fetchall()
        return [(str(k), bytes(d)) for k, d in rows]

    def answered(self, d: bytes) -> bool:
        return (
            self._db.execute("SELECT 1 FROM answered WHERE digest = ?", (d,)).fetchone() is not None
        )

    def used(self, slot: int) -> int:
        row = self._db.execute("SELECT n FROM used WHERE slot = ?", (slot,)).fetchone()
        return int(row[0]) if row else 0

    def charge(
        self, d: bytes, slots: Sequence[int], limit: int, entry: bytes | None = None
    ) -> None:
        """Record request ``d`` and one query on each slot, atomically, with ``entry`` (the
        sealed request) appended to the grading log in the same transaction; refuses
        (changing nothing) a replay or a slot whose budget is spent."""
        with self._db:
            if self.answered(d):
                raise ReplayedNonce("this grade request was already answered (a replay)")
            spent = [s for s in slots if self.used(s) + 1 > limit]
            if spent:
                raise BudgetExhausted(
                    f"subject slot(s) {spent[:5]} already took part in {limit} decryptions, "
                    "the declared number the flooding bound covers; nothing was decrypted"
                )
            self._db.execute("INSERT INTO answered (digest) VALUES (?)", (d,))
            for s in slots:
                self._db.execute(
                    "INSERT INTO used (slot, n) VALUES (?, 1) "
                    "ON CONFLICT(slot) DO UPDATE SET n = n + 1",
                    (s,),
                )
            if entry is not None:
                self._db.execute(
                    "INSERT INTO entries (kind, data) VALUES ('grade-request', ?)", (entry,)
                )


@dataclass
class GradingAuthority:
    """The single CKKS key holder; see the module doc for its protocol and threat model.

    Make one with :meth:`generate`, then :meth:`register_agency` and
    :meth:`register_requester`; agencies' signed submissions go to :meth:`log_submission`
    (the aggregator forwards them), requests to :meth:`reveal` or :meth:`reveal_histogram`.
    """

    circuit: GradingCircuit
    secret: SecretContext
    catalog: Catalog
    max_queries: int = DEFAULT_MAX_QUERIES
    ledger: QueryLedger = field(default_factory=QueryLedger)
    log: GradingLog = field(default_factory=GradingLog)
    decryptions: int = 0
    #: seconds spent in the circuit ("grade") and in flooding and decryption ("decrypt")
    timings: dict[str, float] = field(default_factory=dict)
    _rng: RandomSource | None = field(default=None, repr=False)
    _agencies: dict[str, tuple[bytes, str]] = field(default_factory=dict, repr=False)
    _requesters: dict[str, bytes] = field(default_factory=dict, repr=False)
    _subs: dict[tuple[str, int, str, str], LoggedSubmission] = field(default_factory=dict)
    _nonces: set[tuple[str, bytes]] = field(default_factory=set, repr=False)
    _req_nonces: set[tuple[str, bytes]] = field(default_factory=set, repr=False)
    _n_subjects: int | None = None
    _first_period: int | None = None
    _cache: tuple[tuple[Any, ...], _Prepared] | None = field(default=None, repr=False)

    @classmethod
    def generate(
        cls,
        circuit: GradingCircuit,
        *,
        catalog: Catalog,
        max_queries: int = DEFAULT_MAX_QUERIES,
        ledger_path: str = ":memory:",
        histograms: bool = False,
        n_threads: int = 1,
    ) -> GradingAuthority:
        """Keys for ``circuit`` (the published circuit of ``catalog``); ``histograms=True``
        also publishes the Galois keys of :func:`histogram_rotation_steps` and only those.
        Raises :class:`ParameterError` if ``circuit`` is not ``catalog``'s circuit or
        ``max_queries < 1``."""
        if GradingCircuit.for_catalog(catalog, profile=circuit.profile) != circuit:
            raise ParameterError("the circuit is not the published circuit of this catalog")
        if max_queries < 1:
            raise ParameterError("max_queries must be at least 1")
        steps = histogram_rotation_steps(circuit.slots) if histograms else ()
        secret = generate(circuit.params, relin_keys=True, galois_steps=steps, n_threads=n_threads)
        return cls(circuit, secret, catalog, max_queries, QueryLedger(ledger_path))

    @property
    def public(self) -> PublicContext:
        return self.secret.public

    @property
    def grader(self) -> HomomorphicGrader:
        return HomomorphicGrader(self.circuit, self.public)

    # -- setup ----------------------------------------------------------------------
    def register_agency(self, agency: str, verify_key: bytes, catalog_agency: str) -> None:
        """Accept signed submissions from ``agency`` (an instance of ``catalog_agency``)."""
        if catalog_agency not in self.catalog.agencies:
            raise ValueError(f"{catalog_agency!r} is not an agency of the catalog")
        if agency in self._agencies:
            raise ValueError(f"agency {agency!r} is already registered")
        self._agencies[agency] = (bytes(verify_key), catalog_agency)

    def expect_subjects(self, n_subjects: int, *, first_period: int) -> None:
        """Declare the deployment: ``n_subjects`` slots and its first period.  A period is
        complete only when every registered agency has submitted for every period from
        ``first_period`` on that is live at it; the authority grades nothing before this is
        declared.  Raises ``ValueError`` if the log already says otherwise."""
        if n_subjects < 1 or (self._n_subjects not in (None, n_subjects)):
            raise ValueError(f"the log already covers {self._n_subjects} subjects")
        logged = [p for (_, p, _, _) in self._subs]
        if first_period < 0 or (logged and min(logged) < first_period):
            raise ValueError("the log already holds a submission before that first period")
        self._n_subjects = n_subjects
        self._first_period = first_period

    def missing(self, period: int) -> list[tuple[str, int, str, str]]:
        """Submissions the live sums at ``period`` need and the log lacks: for every period
        ``q`` from the first with a class live at ``period``, every registered agency's
        (class, counter) pairs its rules set.  Dense submissions from everyone are the
        protocol, so a request waits until the log is complete: an aggregator that
        withholds one agency's vector cannot have a partial sum graded."""
        if self._first_period is None:
            raise ParameterError("declare the deployment first (expect_subjects)")
        first = self._first_period
        out = []
        for agency, (_, own) in sorted(self._agencies.items()):
            rules = [r for r in self.catalog.rules if r.agency == own]
            needs = {(r.retention, "score") for r in rules}
            needs |= {(r.retention, f"cap:{r.grade_cap}") for r in rules if r.grade_cap}
            for cls, counter in sorted(needs):
                months = self.catalog.retention[cls].months
                for q in range(max(first, period - months + 1), period + 1):
                    if (agency, q, cls, counter) not in self._subs:
                        out.append((agency, q, cls, counter))
        return out

    def register_requester(self, requester: str, verify_key: bytes) -> None:
        """Accept signed grade requests from ``requester`` (relying party or registry)."""
        if requester in self._requesters:
            raise ValueError(f"requester {requester!r} is already registered")
        self._requesters[requester] = bytes(verify_key)

    # -- the log --------------------------------------------------------------------
    def log_submission(self, data: bytes) -> bytes:
        """Verify and log an agency's signed :class:`HeSubmission`; returns its digest.

        Nothing is logged unless every check passes (see the module doc for the errors);
        the entry is committed to the query ledger's file before it counts.
        """
        return self._log_submission(data, durable=True)

    def _log_submission(self, data: bytes, *, durable: bool) -> bytes:

        def key_of(m: HeSubmission) -> bytes:
            if m.agency not in self._agencies:
                raise UnknownParty(
                    f"he-submission signed as {m.agency!r}: not a registered agency (only "
                    "registered agencies' signed submissions enter the grading log)"
                )
            return self._agencies[m.agency][0]

        m = open_signed(data, HeSubmission, key_of)
        if m.catalog_version != bytes.fromhex(self.catalog.version_hash):
            raise CatalogMismatch(f"he-submission from {m.agency!r} cites another catalog")
        if m.context != self.public.fingerprint:
            raise KeyMismatch(f"he-submission from {m.agency!r} is for another context")
        own = self._agencies[m.agency][1]
        rules = [r for r in self.catalog.rules if r.agency == own and r.retention == m.retention]
        allowed = any(r.grade_cap == m.cap for r in rules) if m.cap else bool(rules)
        if not allowed:
            raise PolicyViolation(
                f"agency {m.agency!r}: no rule of {own!r} in class {m.retention!r} sets "
                f"counter {m.counter!r}"
            )
        if (m.agency, m.nonce) in self._nonces:
            raise ReplayedNonce(f"agency {m.agency!r} reused a submission nonce")
        if self._first_period is not None and m.period < self._first_period:
            raise PolicyViolation(
                f"agency {m.agency!r} submitted for period {m.period}, before the "
                f"deployment's first period {self._first_period}"
            )
        key = (m.agency, m.period, m.retention, m.counter)
        if key in self._subs:
            raise DuplicateSubmission(
                f"agency {m.agency!r} already submitted {m.counter} for period {m.period}, "
                f"class {m.retention!r}"
            )
        ct = self._parse(m)
        if durable:
            self.ledger.append("he-submission", data)  # durable before it counts
        self._nonces.add((m.agency, m.nonce))
        d = self.log.append("he-submission", data)
        self._subs[key] = LoggedSubmission(m, ct, d)
        return d

    def _parse(self, m: HeSubmission) -> TensealCiphertext:
        grader = self.grader
        be = grader.caps if m.cap else grader.scores
        ct = be.deserialize(m.ciphertext)
        if self._n_subjects is not None and ct.n_values != self._n_subjects:
            raise InvalidMessage(f"he-submission from {m.agency!r} covers the wrong subjects")
        p = self.circuit.params
        for part in ct.parts:
            raw = part.ciphertext()
            seal_ct = raw[0] if isinstance(raw, list) else raw
            fresh = (
                part.size() == self.circuit.slots
                and seal_ct.size() == 2
                and seal_ct.coeff_modulus_size() == len(p.coeff_bits) - 1
                and seal_ct.scale == p.scale
            )
            if not fresh:
                raise InvalidMessage(
                    f"he-submission from {m.agency!r} is not a fresh full-slot encryption"
                )
        self._n_subjects = ct.n_values
        return ct

    # -- requests -------------------------------------------------------------------
    def _open_request(self, data: bytes) -> tuple[GradeRequest, bytes]:
        def key_of(r: GradeRequest) -> bytes:
            if r.requester not in self._requesters:
                raise UnknownParty(f"grade request signed as {r.requester!r}: not registered")
            return self._requesters[r.requester]

        req = open_signed(data, GradeRequest, key_of)
        if req.purpose not in self.catalog.scheme.purposes:
            raise PolicyViolation(
                f"requester {req.requester!r}: purpose {req.purpose!r} is not one the scheme "
                "declares"
            )
        n, first = self._n_subjects, self._first_period
        if n is None or first is None:
            raise ParameterError("declare the deployment first (expect_subjects)")
        if req.period < first:
            raise PolicyViolation(
                f"requester {req.requester!r} asked for period {req.period}, before the "
                f"deployment's first period {first}"
            )
        if req.slots[-1] >= n:
            raise InvalidMessage(f"requester {req.requester!r} asked for a slot outside 0..{n}")
        # one (requester, nonce) per request: a re-signed copy is a replay too
        body = codec.decode(data, SignedMessage).body
        if (req.requester, req.nonce) in self._req_nonces:
            raise ReplayedNonce(f"requester {req.requester!r} reused a request nonce (a replay)")
        gaps = self.missing(req.period)
        if gaps:
            agency, q, cls, counter = gaps[0]
            raise PolicyViolation(
                f"period {req.period} cannot be graded yet: the log lacks {len(gaps)} "
                f"submission(s), e.g. agency {agency!r}'s {counter} for period {q}, class "
                f"{cls!r}; ask again once every registered agency has submitted"
            )
        return req, digest(body)

    def _live(self, period: int) -> tuple[tuple[bytes, ...], TensealCiphertext, dict[str, Any]]:
        """The live sums at the close of ``period``, from logged submissions only."""
        months = {k: v.months for k, v in self.catalog.retention.items()}
        live = [
            s for (_, p, cls, _), s in sorted(self._subs.items()) if p <= period < p + months[cls]
        ]
        grader, n = self.grader, self._n_subjects or 1
        zeros = np.zeros(n, dtype=np.int64)
        score_cts = [s.ciphertext for s in live if s.message.cap is None]
        scores = grader.scores.sum(score_cts) if score_cts else grader.scores.encrypt(zeros)
        caps: dict[str, Any] = {}
        for lab, _ in self.circuit.cap_levels:
            cts = [s.ciphertext for s in live if s.message.cap == lab]
            caps[lab] = grader.caps.sum(cts) if cts else grader.caps.encrypt(zeros)
        return tuple(s.digest for s in live), scores, caps

    def _prepared(self, period: int, part: int) -> tuple[HomomorphicGrader, Any, Any, _Prepared]:
        ids, scores, caps = self._live(period)
        key = (ids, part)
        grader = self.grader
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, grader.prepare(scores, caps, part))
        return grader, scores, caps, self._cache[1]

    def reveal(self, request: bytes) -> dict[int, int]:
        """Answer a signed :class:`GradeRequest`: ``{slot: grade index}``.

        The request is logged and every slot's budget charged before anything is
        decrypted; the circuit runs on the logged inputs live at ``request.period``.
        """
        req, d = self._open_request(request)
        S = self.circuit.slots
        parts = sorted({s // S for s in req.slots})
        self.ledger.charge(d, req.slots, self.max_queries, entry=request)
        self._req_nonces.add((req.requester, req.nonce))
        self.log.append("grade-request", request)
        out: dict[int, int] = {}
        for part in parts:
            slots = [s for s in req.slots if s // S == part]
            t0 = time.perf_counter()
            grader, scores, caps, prep = self._prepared(req.period, part)
            _, ct, factor = grader.masked(scores, caps, slots, prep)
            t1 = time.perf_counter()
            values = self._decrypt_flooded(ct, factor)
            self._tick("grade", t1 - t0)
            self._tick("decrypt", time.perf_counter() - t1)
            out.update(self._release(values, part, slots))
        return out

    def _tick(self, name: str, seconds: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + seconds

    def _decrypt_flooded(self, ct: Any, factor: float) -> np.ndarray:
        """Private seam: flood every slot (CSPRNG), decrypt, undo the known factor."""
        noise = sample_flooding(self.circuit.slots, sigma=FLOOD_SIGMA, rng=self._rng)
        flooded = ct + (noise * factor).tolist()
        try:
            vals = np.asarray(flooded.decrypt(self.secret.context.secret_key()), dtype=np.float64)
        except Exception:
            raise InvalidMessage("the circuit output does not decrypt under this key") from None
        self.decryptions += 1
        return vals / factor

    def _release(self, values: np.ndarray, part: int, slots: Sequence[int]) -> dict[int, int]:
        S = self.circuit.slots
        rounded = np.rint(values).astype(np.int64)
        local = [s - part * S for s in slots]
        others = np.ones(values.size, dtype=bool)
        others[local] = False
        top = len(self.circuit.labels) - 1
        out = {s: int(rounded[i]) for s, i in zip(slots, local, strict=True)}
        if np.any(rounded[others] != 0) or any(not 0 <= g <= top for g in out.values()):
            # only inputs outside the catalog's domain can do this (a malformed submission)
            raise InvalidMessage("the circuit output is not a masked grade; nothing released")
        return out

    def reveal_histogram(self, request: bytes, *, noise_variance: Fraction) -> dict[str, int]:
        """The noisy grade histogram of the district ``request.slots`` (one part).

        Skellam noise of variance ``noise_variance`` per bin, drawn by the authority from
        the OS CSPRNG and added under encryption; one flooding draw per bin (every slot of
        a bin holds the same total).  Each district slot's budget is charged once.
        """
        req, d = self._open_request(request)
        S = self.circuit.slots
        if len({s // S for s in req.slots}) != 1:
            raise ValueError(f"a district must lie in one block of {S} slots")
        self.ledger.charge(d, req.slots, self.max_queries, entry=request)
        self._req_nonces.add((req.requester, req.nonce))
        self.log.append("grade-request", request)
        _, scores, caps = self._live(req.period)
        src = resolve(self._rng)
        noise = [sample_skellam(noise_variance, rng=src) for _ in self.circuit.labels]
        bins = encrypted_histogram(self.grader, scores, caps, list(req.slots), noise)
        out: dict[str, int] = {}
        for label, b in zip(self.circuit.labels, bins, strict=True):
            e = float(sample_flooding(1, rng=self._rng)[0])
            vals = np.asarray(
                (b + np.full(S, e).tolist()).decrypt(self.secret.context.secret_key())
            )
            self.decryptions += 1
            if float(vals.max() - vals.min()) > 0.25:
                raise InvalidMessage("a histogram bin is not the same in every slot")
            out[label] = round(float(vals[0]))
        return out

    def restore(self) -> int:
        """Rebuild the in-memory log from the query ledger's committed entries (after a
        restart from its file; registrations and the deployment declared first): every
        submission is verified again exactly as when it arrived, every request's nonce is
        marked used.  Returns the number of entries.  Raises what
        :meth:`log_submission` raises if the file holds an entry that no longer verifies
        (another catalog, context or registration: a file that is not this authority's)."""
        if self.log.entries:
            raise ValueError("restore() is for an authority whose log is still empty")
        entries = self.ledger.entries()
        for kind, data in entries:
            if kind == "he-submission":
                self._log_submission(data, durable=False)
            elif kind == "grade-request":
                req = codec.decode(codec.decode(data, SignedMessage).body, GradeRequest)
                self._req_nonces.add((req.requester, req.nonce))
                self.log.append(kind, data)
            else:
                raise InvalidMessage(f"the grading log file holds an unknown entry {kind!r}")
        return len(entries)

    def submissions(self) -> Mapping[tuple[str, int, str, str], LoggedSubmission]:
        """The verified submissions in the log (read-only view)."""
        return dict(self._subs)
