"""The simulation's clock, seeded randomness and precomputed Paillier randomness.

Fixed sources for reproducible runs (never for a deployment): a clock that advances only
when told, ``randbytes`` seeded from a string, a demo key pair derived from a seed, and the
agencies' offline randomness precomputed in parallel processes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gmpy2
from gmpy2 import mpz

from psc.hazmat.backends.paillier import ShortExponentPool
from psc.hazmat.paillier import (
    MIN_KEY_BITS,
    PaillierPrivateKey,
    PaillierPublicKey,
    ShortExponentRandomizer,
    _keypair_from_primes,
    generate_keypair,
)

if TYPE_CHECKING:
    from psc.parties.agency import Agency


class SimClock:
    """A clock that only moves forward when the driver says so (periods pass instantly)."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance_to(self, when: dt.datetime) -> None:
        self.now = max(self.now, when)

    def ms(self) -> int:
        return int(self.now.timestamp() * 1000)


@dataclass(frozen=True)
class AgencyRandomness:
    """One agency's precomputed randomizers: its secret short-exponent base ``h`` and
    ``(alpha, h_s^alpha mod n^2)`` pairs (:class:`~psc.hazmat.paillier.ShortExponentRandomizer`).
    Secret: whoever holds it opens the agency's ciphertexts."""

    base: int
    exponents: list[tuple[int, int]]


class PrecomputedPool(ShortExponentPool):
    """A short-exponent randomness pool filled from what worker processes computed
    (:func:`precompute`); also accepts plain ``(r, r^n mod n^2)`` pairs."""

    def __init__(
        self, public_key: PaillierPublicKey, values: AgencyRandomness | list[tuple[int, int]]
    ) -> None:
        if isinstance(values, AgencyRandomness):
            super().__init__(
                public_key, randomizer=ShortExponentRandomizer(public_key, values.base)
            )
            self.add_exponents(values.exponents)
        else:
            super().__init__(public_key)
            self.add_precomputed(values)


def seeded_randbytes(seed: str) -> Callable[[int], bytes]:
    """A deterministic ``randbytes`` (SHAKE-256 of the seed and a counter): test vectors only.

    Never use it for anything real: every "random" value it gives is public given the seed.
    """
    counter = 0

    def randbytes(n: int) -> bytes:
        nonlocal counter
        counter += 1
        return hashlib.shake_256(f"{seed}/{counter}".encode()).digest(n)

    return randbytes


def _randomizers(n: int, base: int, count: int) -> list[tuple[int, int]]:
    """Worker: ``count`` fresh ``(alpha, h_s^alpha mod n^2)`` for the base ``h``, exponents
    from the OS CSPRNG (the worker builds its own fixed-base table)."""
    z = ShortExponentRandomizer(PaillierPublicKey(mpz(n)), base)
    z.prepare(count)
    out = []
    for _ in range(count):
        alpha = z.draw(secrets.randbelow)
        out.append((alpha, int(z.rn(alpha))))
    return out


def precompute(
    public_key: PaillierPublicKey, counts: list[int], workers: int
) -> list[AgencyRandomness]:
    """Short-exponent randomizers for several agencies, spread over ``workers`` processes.

    Each agency gets its own secret base (drawn here from the OS CSPRNG); its work is cut
    into pieces of about ``total / (2 workers)`` randomizers so both the pieces and the
    per-piece table builds stay balanced."""
    bases = [int(ShortExponentRandomizer.generate(public_key).base) for _ in counts]
    n, total = int(public_key.n), sum(counts)
    if workers <= 1 or total == 0:
        return [
            AgencyRandomness(h, _randomizers(n, h, c) if c else [])
            for h, c in zip(bases, counts, strict=True)
        ]
    chunk = max(1, -(-total // (workers * 2)))
    tasks = [(i, min(chunk, c - j)) for i, c in enumerate(counts) for j in range(0, c, chunk)]
    out = [AgencyRandomness(h, []) for h in bases]
    with ProcessPoolExecutor(max_workers=workers) as ex:
        parts = ex.map(
            _randomizers, [n] * len(tasks), [bases[i] for i, _ in tasks], [k for _, k in tasks]
        )
        for (i, _), part in zip(tasks, parts, strict=True):
            out[i].exponents.extend(part)
    return out


def precompute_agencies(
    agencies: Sequence[Agency], public_key: PaillierPublicKey, submissions: int, workers: int
) -> None:
    """Agencies, offline: give each agency a pool of the randomizers its next
    ``submissions`` submissions take (one per ciphertext block and per validity-proof
    commitment), computed over ``workers`` processes (:func:`precompute`)."""
    counts = [a.randomizers_per_submission() * submissions for a in agencies]
    for agency, values in zip(agencies, precompute(public_key, counts, workers), strict=True):
        agency.use_pool(PrecomputedPool(public_key, values))


def demo_keypair(bits: int, seed: int = 0) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    """A Paillier keypair: fresh from the CSPRNG at ``bits >= 2048``; below that an
    *insecure* one from seeded primes (tests and quick demos only)."""
    if bits >= MIN_KEY_BITS:
        return generate_keypair(bits)
    rnd = random.Random(f"psc-demo-key/{bits}/{seed}")
    half = bits // 2
    while True:
        p = int(gmpy2.next_prime(rnd.getrandbits(half) | (1 << (half - 1))))
        q = int(gmpy2.next_prime(rnd.getrandbits(half) | (1 << (half - 1))))
        if p != q and (p * q).bit_length() == bits:
            return _keypair_from_primes(p, q, allow_insecure=True)
