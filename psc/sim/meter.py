"""What a reference run measures about itself: seconds per phase, messages and bytes by kind.

Harness bookkeeping, not protocol: a driver times each phase with :meth:`Meter.phase` and
passes every message through :meth:`Meter.send`, which counts it and its bytes and hands it
on unchanged.  Nothing here reads, keeps or alters a message's content.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager


class Meter:
    """Wall-clock seconds per phase and, per message kind, messages and bytes sent.

    ``seconds`` and ``wire`` keep the order in which phases first ran and kinds were first
    sent (reports print them in that order).
    """

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.wire: Counter[str] = Counter()  # bytes by message kind
        self.messages: Counter[str] = Counter()  # messages by kind

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the time spent in the ``with`` block to phase ``name``, also when it raises.
        A phase may be entered many times (submit and ingest alternate per envelope)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t0

    def send(self, kind: str, data: bytes) -> bytes:
        """Count ``data`` as one message of ``kind`` on the wire; return it unchanged."""
        self.wire[kind] += len(data)
        self.messages[kind] += 1
        return data

    def phase_seconds(self) -> dict[str, float]:
        """Seconds per phase so far, rounded to the millisecond."""
        return {k: round(v, 3) for k, v in self.seconds.items()}
