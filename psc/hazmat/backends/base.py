"""The one small interface every homomorphic backend implements.

A backend holds the *public* side of a scheme (a public key or a public context): that is
all an agency or the aggregator ever has.  Decryption takes the secret key as an argument,
so code that cannot decrypt visibly has nothing to decrypt with.

Contract, for dense int64 vectors ``x`` and ``y`` of the same length::

    decrypt(add(encrypt(x), encrypt(y)), sk) == x + y        (while within the backend's bound)
    deserialize(serialize(c)) == c
    byte_size(c) == len(serialize(c))

Every backend must give the same sums, and so the same grades, as :mod:`psc.oracle`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import numpy.typing as npt

C = TypeVar("C")
IntArray = npt.NDArray[np.int64]


class Backend(ABC, Generic[C]):
    """Encrypt dense vectors, add them, serialize them; decrypt only with a secret key."""

    #: short name used in benchmarks and messages (``paillier-packed``, ``bfv``, ``ckks``)
    name: ClassVar[str]

    @abstractmethod
    def encrypt(self, vector: IntArray) -> C:
        """Encrypt a dense vector under the public key.  Raises ``ValueError`` if out of range."""

    @abstractmethod
    def add(self, a: C, b: C) -> C:
        """Homomorphic sum; raises :class:`~psc.exceptions.KeyMismatch` for foreign operands."""

    def sum(self, items: Iterable[C]) -> C:
        """Sum of one or more ciphertexts (left fold of :meth:`add`)."""
        it = iter(items)
        try:
            acc = next(it)
        except StopIteration:
            raise ValueError("sum() needs at least one ciphertext") from None
        for c in it:
            acc = self.add(acc, c)
        return acc

    @abstractmethod
    def serialize(self, ct: C) -> bytes:
        """Deterministic, versioned bytes."""

    @abstractmethod
    def deserialize(self, data: bytes) -> C:
        """Parse and validate; raises :class:`~psc.exceptions.InvalidMessage` on bad bytes."""

    def byte_size(self, ct: C) -> int:
        """Size on the wire in bytes."""
        return len(self.serialize(ct))

    @abstractmethod
    def decrypt(self, ct: C, secret_key: Any) -> IntArray:
        """Decrypt to the dense int64 vector (key holder only)."""
