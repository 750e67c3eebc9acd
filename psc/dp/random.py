"""The randomness seam of the differential-privacy layer.

Every sampler in :mod:`psc.dp.sampling` draws *only* uniform integers in ``[0, n)`` and
fair bits, through a :class:`RandomSource`.  There is no floating point anywhere on this
path (Mironov 2012 showed that floating-point Laplace noise leaks the input through the
low-order bits of its output), so the only thing a source has to provide is exactly
uniform integers.

Two sources ship:

* :class:`SystemRandomSource`: the default.  Backed by :mod:`secrets` (the operating
  system CSPRNG, ``os.urandom``).  Use it for anything that protects a person.
* :class:`SeededRandomSource`: deterministic from a seed, for tests and test vectors
  only.  **Insecure**: anyone who knows or guesses the seed knows every noise value,
  and with it every exact score the noise was meant to hide.

Samplers take the source as a keyword-only ``rng`` argument; ``None`` means the
process-wide :data:`SYSTEM_RANDOM`.  That is the seam tests use to drive fixed draws.
"""

from __future__ import annotations

import abc
import hashlib
import random as _stdlib_random
import secrets

__all__ = [
    "SYSTEM_RANDOM",
    "RandomSource",
    "SeededRandomSource",
    "SystemRandomSource",
    "resolve",
]


class RandomSource(abc.ABC):
    """A source of exactly uniform integers.  Subclasses implement :meth:`_below`."""

    #: True only for sources fit to protect real data (a CSPRNG).
    secure: bool = False

    def uniform(self, n: int) -> int:
        """A uniform integer in ``[0, n)``.

        Raises:
            ValueError: ``n`` is not a positive ``int``.
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise ValueError(f"uniform(n) needs an int n, got {type(n).__name__}")
        if n <= 0:
            raise ValueError(f"uniform(n) needs n >= 1, got {n}")
        if n == 1:
            return 0
        return self._below(n)

    def bit(self) -> int:
        """A fair bit: 0 or 1 with probability 1/2 each."""
        return self._below(2)

    @abc.abstractmethod
    def _below(self, n: int) -> int:
        """A uniform integer in ``[0, n)``; ``n >= 2`` is already checked."""


class SystemRandomSource(RandomSource):
    """The operating-system CSPRNG via :func:`secrets.randbelow`.  The default source."""

    secure = True

    def _below(self, n: int) -> int:
        return secrets.randbelow(n)

    def __repr__(self) -> str:
        return "SystemRandomSource()"


class SeededRandomSource(RandomSource):
    """A deterministic source for tests and vectors.  **Insecure: never use on real data.**

    The seed (an ``int``, ``str`` or ``bytes``) is hashed with SHA-256 into the state of
    Python's Mersenne Twister, whose ``randrange`` is exactly uniform (rejection on
    ``k``-bit words) but predictable: the noise it produces hides nothing from whoever
    knows the seed, and the generator's state can be recovered from its outputs.
    """

    secure = False

    def __init__(self, seed: int | str | bytes) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int | str | bytes):
            raise ValueError(f"seed must be int, str or bytes, got {type(seed).__name__}")
        material = seed if isinstance(seed, bytes) else repr(seed).encode("utf-8")
        digest = hashlib.sha256(b"psc.dp.SeededRandomSource\x00" + material).digest()
        self._seed = seed
        self._random = _stdlib_random.Random(int.from_bytes(digest, "big"))

    def _below(self, n: int) -> int:
        return self._random.randrange(n)

    def __repr__(self) -> str:
        return f"SeededRandomSource({self._seed!r})"


#: The process-wide default source (the OS CSPRNG).
SYSTEM_RANDOM: RandomSource = SystemRandomSource()


def resolve(rng: RandomSource | None) -> RandomSource:
    """``rng`` itself, or :data:`SYSTEM_RANDOM` when ``None``.

    Raises:
        ValueError: ``rng`` is neither ``None`` nor a :class:`RandomSource`.
    """
    if rng is None:
        return SYSTEM_RANDOM
    if not isinstance(rng, RandomSource):
        raise ValueError(f"rng must be a psc.dp.random.RandomSource, got {type(rng).__name__}")
    return rng
