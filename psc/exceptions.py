"""Every exception psc raises, in one flat module (after pyca/cryptography).

Two families:

* ``InvalidMessage`` is the one opaque error for any cryptographic verification
  failure (bad signature, ciphertext that does not decrypt into its layout, a Merkle
  proof that does not verify).  It deliberately says little about *why*, so it cannot
  be used as an oracle.
* Everything else is a precise ``ValueError`` subclass for a caller's mistake, with a
  message that says what to change.
"""

from __future__ import annotations

from collections.abc import Sequence


class PscError(Exception):
    """Base class of every psc error."""


class InvalidMessage(PscError):
    """A message, ciphertext or proof failed cryptographic verification.

    Raised for a bad signature, an altered or truncated ciphertext, a plaintext that
    decodes outside its slot layout, or a proof that does not verify.  State is never
    changed when this is raised.
    """


class InvalidProof(InvalidMessage):
    """A zero-knowledge proof (plaintext knowledge, slot range) does not verify.

    A subclass of the opaque :class:`InvalidMessage`: callers that only care that
    verification failed catch that.  Raised by :mod:`psc.hazmat.proofs`; the protocol layer names
    the party and the block, the proof layer never says which equation failed.
    """


class CatalogError(PscError, ValueError):
    """A catalog could not be loaded.  ``problems`` lists every problem with its location."""

    def __init__(self, problems: Sequence[str], source: str = "<catalog>") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s) in catalog:\n{lines}")


class SensitiveRuleError(CatalogError):
    """A rule scores a sensitive category (PIPL Art. 28-32): refused, never warned about."""


class EventError(PscError, ValueError):
    """An event does not fit the catalog (unknown rule, too many events in one period...)."""


class OverflowRisk(PscError, ValueError):
    """The packing parameters cannot rule out slot overflow; pick wider slots or fewer sums."""


class KeyMismatch(PscError, ValueError):
    """Operands were encrypted under different keys, or a key does not match a ciphertext."""


class ParameterError(PscError, ValueError):
    """A scheme parameter is insecure or out of range."""


class PolicyViolation(PscError, ValueError):
    """An operation is refused by policy (purpose, domain, consent, budget...)."""


class BudgetExhausted(PolicyViolation):
    """A differential-privacy budget would be exceeded; nothing was decrypted."""


# -- protocol (issue 3): policy refusals of well-formed, authentic messages ----------------


class UnknownParty(PscError, ValueError):
    """A message names a party (agency, relying party...) that was not registered at setup."""


class CatalogMismatch(PscError, ValueError):
    """A message cites a catalog version other than the one in force."""


class StalePeriod(PolicyViolation):
    """A submission's period is in the future or older than the longest retention."""


class ReplayedNonce(PscError, ValueError):
    """A nonce was already used by the same party for a different message."""


class DuplicateSubmission(PscError, ValueError):
    """An agency already submitted a different envelope for this period (one per period)."""


# -- threshold decryption (issue 4, item 1) --------------------------------------------------


class InsufficientShares(PscError, ValueError):
    """Fewer than ``k`` valid decryption shares with distinct indices: nothing was decrypted.

    ``bad`` lists the party indices whose shares failed verification (empty when the
    caller simply supplied too few shares), so the committee knows whom to ask again.
    """

    def __init__(self, message: str, bad: Sequence[int] = ()) -> None:
        self.bad = tuple(bad)
        super().__init__(message)


class LogVerificationFailed(InvalidMessage):
    """An audit of a transparency log found a problem (raised by ``psc.ledger.log_verify.verify_log``).

    Unlike a bare ``InvalidMessage`` this names the first problem, because the auditor
    already holds the whole log and gains no oracle from the detail.  ``problem`` is one
    of ``"missing-leaf"``, ``"altered-leaf"``, ``"malformed-row"``, ``"bad-signature"``,
    ``"root-mismatch"``, ``"inconsistent-heads"``; against heads and receipts parties hold,
    ``"bad-trusted-head"``, ``"equivocation"``, ``"truncated"``, ``"rewritten"``,
    ``"bad-receipt"``; from the ledger audit, ``"missing-row"``, ``"unlogged-row"``,
    ``"accumulator-mismatch"``; ``position`` is the leaf index or tree size concerned.
    """

    def __init__(self, problem: str, position: int, message: str) -> None:
        self.problem = problem
        self.position = position
        super().__init__(message)


class LogFormatError(PscError, ValueError):
    """A database could not be read as a psc transparency log (missing file or tables)."""


class DeploymentError(PscError, ValueError):
    """A deployment description could not be loaded.  ``problems`` lists each with its location."""

    def __init__(self, problems: Sequence[str], source: str = "<deployment>") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s) in deployment:\n{lines}")


class ServiceConfigError(PscError, ValueError):
    """A served party's files are refused (``psc init``, ``psc serve``): a config with an
    unknown key or a missing file, a directory in use, a port already taken."""


class ConsentRefused(PolicyViolation):
    """A relying party's consent token does not authorise the query (expired, mismatched,
    withdrawn).  ``reason`` is a stable code (``expired``, ``relying-party``, ``purpose``...).

    A token whose signature does not verify raises :class:`InvalidMessage` instead.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class RightsRequestError(PscError, ValueError):
    """A data-subject rights request cannot be opened or decided as asked."""
