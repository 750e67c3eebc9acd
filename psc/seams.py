"""Time and randomness seams of the parties: every role takes a ``clock`` and a ``randbytes``.

``clock`` returns an aware UTC :class:`datetime.datetime`; ``randbytes(n)`` returns ``n``
random bytes.  The defaults are the system clock and the OS CSPRNG (:func:`os.urandom`);
tests and vector generators pass fixed sources so their outputs are reproducible.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

__all__ = [
    "system_clock",
]

Clock = Callable[[], dt.datetime]
RandBytes = Callable[[int], bytes]


def system_clock() -> dt.datetime:
    """The current UTC time (the default ``clock``)."""
    return dt.datetime.now(dt.UTC)


def _seconds(clock: Clock) -> int:
    return int(clock().timestamp())


def _randbelow(randbytes: RandBytes, n: int) -> int:
    """Uniform in ``[0, n)`` from ``randbytes`` by rejection sampling."""
    k = max(1, (n.bit_length() + 7) // 8 + 1)
    limit = (1 << (8 * k)) - (1 << (8 * k)) % n
    while True:
        x = int.from_bytes(randbytes(k), "big")
        if x < limit:
            return x % n
