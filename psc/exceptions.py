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
