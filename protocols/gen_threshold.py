"""Write ``protocols/vectors/threshold.json``: threshold Paillier keygen and decryption shares.

Deterministic: every random choice (safe primes, the dealer's polynomial and ``v``,
encryption randomizers, proof nonces) comes from :class:`Drbg`, a SHA-256 counter-mode
generator seeded with a fixed label per use, so regenerating is byte-identical unless
the protocol changed.  Specs: ``protocols/keygen.md``, ``protocols/decryption-shares.md``.

The file also ships fixed **test** safe primes (512-, 1024- and 2048-bit moduli) so
tests never search for safe primes.  They are public: INSECURE, for tests only.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from psc.hazmat.backends.paillier import PackedPaillier, RandomnessPool
from psc.hazmat.packing import SlotLayout
from psc.hazmat.threshold.dealer import _generate_safe_prime, deal
from psc.hazmat.threshold.encoding import encode_packed_share, encode_share
from psc.hazmat.threshold.keys import (
    DecryptionShare,
    PackedDecryptionShare,
    ShareProof,
    ThresholdPublicKey,
)

OUT = Path(__file__).parent / "vectors" / "threshold.json"
VERSION = 1
SEED = b"psc/threshold/vectors/v1"
#: modulus bits -> the suites that use it (2048 is only shipped, for slow tests/benchmarks)
PRIME_SIZES = (512, 1024, 2048)
SUITES = ((2, 3, 512), (3, 5, 1024))


class Drbg:
    """SHA-256 in counter mode; test randomness only.

    ``key = SHA-256(SEED || "|" || label)``, ``block_i = SHA-256(key || u64(i))`` with a
    counter ``i`` that never repeats.  Each draw of ``b = bitlen(bound)`` bits concatenates
    the next ``ceil(b/256)`` blocks, keeps the first ``ceil(b/8)`` bytes (big-endian), shifts
    right to ``b`` bits and rejects values ``>= bound`` (then draws again), so
    :meth:`randbelow` is uniform and reproducible on every platform.
    """

    def __init__(self, label: str) -> None:
        self._key = hashlib.sha256(SEED + b"|" + label.encode()).digest()
        self._counter = 0

    def _bits(self, nbits: int) -> int:
        nbytes = (nbits + 7) // 8
        out = b""
        while len(out) < nbytes:
            out += hashlib.sha256(self._key + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        return int.from_bytes(out[:nbytes], "big") >> (8 * nbytes - nbits)

    def randbelow(self, bound: int) -> int:
        if bound <= 0:
            raise ValueError("randbelow() needs a positive bound")
        nbits = int(bound).bit_length()
        while True:
            x = self._bits(nbits)
            if x < bound:
                return x


def safe_test_primes(bits: int) -> tuple[int, int]:
    """The fixed test safe primes for a ``bits``-bit modulus (deterministic from the seed)."""
    rng = Drbg(f"safe-primes/{bits}")
    p = _generate_safe_prime(bits // 2, rng.randbelow)
    q = _generate_safe_prime(bits // 2, rng.randbelow)
    while q == p:
        q = _generate_safe_prime(bits // 2, rng.randbelow)
    return int(p), int(q)


def _h(x: int) -> str:
    return format(int(x), "x")


def _share_json(pk: ThresholdPublicKey, s: DecryptionShare) -> dict[str, Any]:
    return {
        "index": s.index,
        "value": _h(s.value),
        "challenge": _h(s.proof.challenge),
        "response": _h(s.proof.response),
        "encoded": encode_share(pk, s).hex(),
    }


def _bad(
    name: str, op: str, shares: list[bytes], expected: dict[str, Any], **kw: Any
) -> dict[str, Any]:
    return {"name": name, "op": op, "shares": [b.hex() for b in shares], "expected": expected, **kw}


def suite(k: int, parties: int, bits: int, primes: tuple[int, int]) -> dict[str, Any]:
    label = f"{k}-of-{parties}/{bits}"
    dealer = Drbg(f"{label}/dealer")
    pk, key_shares = deal(
        k, parties, bits=bits, randbelow=dealer.randbelow, allow_insecure=True, _primes=primes
    )
    n, nsq = pk.public.n, pk.public.nsquare
    enc = Drbg(f"{label}/encrypt")
    nonces = Drbg(f"{label}/proofs")

    plaintext = enc.randbelow(int(n))
    r = 0
    while r == 0:
        r = enc.randbelow(int(n))
    c = pk.public.raw_encrypt(plaintext, pk.public.random_rn(lambda _b: r))
    plaintext2 = enc.randbelow(int(n))
    c2 = pk.public.raw_encrypt(plaintext2, pk.public.random_rn(enc.randbelow))

    shares = [ks.decryption_share(c, randbelow=nonces.randbelow) for ks in key_shares]
    other = [ks.decryption_share(c2, randbelow=nonces.randbelow) for ks in key_shares]
    enc_shares = [encode_share(pk, s) for s in shares]

    # packed: two blocks of 16-bit slots
    layout = SlotLayout.for_key(bits, 16)
    backend = PackedPaillier(
        pk.public,
        layout,
        pool=RandomnessPool(pk.public, randbelow=enc.randbelow),
        allow_insecure_key=True,
    )
    n_values = layout.slots + 3
    vec = np.array([enc.randbelow(2001) - 1000 for _ in range(n_values)], dtype=np.int64)
    ct = backend.encrypt(vec, bound=1000)
    packed = [ks.packed_decryption_share(ct, randbelow=nonces.randbelow) for ks in key_shares]

    s0 = shares[0]
    n_, e0, z0 = s0.index, s0.proof.challenge, s0.proof.response
    bad = [
        _bad(
            "bad_share_value",
            "verify_share",
            [encode_share(pk, DecryptionShare(n_, s0.value * (n + 1) % nsq, s0.proof))],
            {"error": "InvalidMessage", "party": 1},
        ),
        _bad(
            "bad_proof_challenge",
            "verify_share",
            [encode_share(pk, DecryptionShare(n_, s0.value, ShareProof(e0 ^ 1, z0)))],
            {"error": "InvalidMessage", "party": 1},
        ),
        _bad(
            "bad_proof_response",
            "verify_share",
            [encode_share(pk, DecryptionShare(n_, s0.value, ShareProof(e0, z0 + 1)))],
            {"error": "InvalidMessage", "party": 1},
        ),
        _bad(
            "bad_other_ciphertext",
            "verify_share",
            [encode_share(pk, other[0])],
            {"error": "InvalidMessage", "party": 1},
        ),
        _bad(
            "bad_wrong_index",
            "verify_share",
            [encode_share(pk, DecryptionShare(2, s0.value, s0.proof))],
            {"error": "InvalidMessage", "party": 2},
        ),
        _bad(
            "bad_index_out_of_range",
            "verify_share",
            [encode_share(pk, DecryptionShare(parties + 1, s0.value, s0.proof))],
            {"error": "InvalidMessage", "party": parties + 1},
        ),
        _bad("bad_truncated", "decode_share", [enc_shares[0][:-1]], {"error": "InvalidMessage"}),
        _bad("bad_duplicate_index", "combine", [enc_shares[0]] * k, {"error": "ValueError"}),
        _bad("bad_too_few", "combine", enc_shares[: k - 1], {"error": "InsufficientShares"}),
        _bad(
            "bad_committee_too_few_good",
            "decrypt_with_committee",
            [encode_share(pk, other[i]) for i in range(parties - k + 1)]
            + enc_shares[parties - k + 1 :],
            {"error": "InsufficientShares", "bad": list(range(1, parties - k + 2))},
        ),
        _bad(
            "bad_packed_blocks_swapped",
            "verify_packed_share",
            [
                encode_packed_share(
                    pk, PackedDecryptionShare(1, packed[0].values[::-1], packed[0].proof)
                )
            ],
            {"error": "InvalidMessage", "party": 1},
        ),
    ]
    # the committee: parties 1..(N-k) misbehave (alternately a share of another
    # ciphertext and an altered proof), the k others are honest
    n_bad = parties - k
    committee = [
        encode_share(pk, other[i])
        if i % 2 == 0
        else encode_share(
            pk,
            DecryptionShare(
                shares[i].index,
                shares[i].value,
                ShareProof(shares[i].proof.challenge, shares[i].proof.response + 1),
            ),
        )
        for i in range(n_bad)
    ] + enc_shares[n_bad:]

    return {
        "name": label,
        "k": k,
        "parties": parties,
        "bits": bits,
        "primes": str(bits),
        "public_key": pk.to_json(),
        "fingerprint": pk.fingerprint.hex(),
        "key_shares": [ks.to_json() for ks in key_shares],
        "ciphertext": {"plaintext": _h(plaintext), "r": _h(r), "c": _h(c)},
        "other_ciphertext": {"plaintext": _h(plaintext2), "c": _h(c2)},
        "decryption_shares": [_share_json(pk, s) for s in shares],
        "combinations": [
            {"indices": list(idx), "plaintext": _h(plaintext)}
            for idx in itertools.combinations(range(1, parties + 1), k)
        ],
        "committee": {
            "shares": [b.hex() for b in committee],
            "expected": {
                "plaintext": _h(plaintext),
                "bad": list(range(1, n_bad + 1)),
                "used": list(range(n_bad + 1, parties + 1)),
            },
        },
        "packed": {
            "slot_bits": layout.slot_bits,
            "slots": layout.slots,
            "ciphertext": backend.serialize(ct).hex(),
            "shares": [encode_packed_share(pk, s).hex() for s in packed],
            "plaintext": [int(x) for x in vec],
        },
        "bad": bad,
    }


def build() -> dict[str, Any]:
    primes = {bits: safe_test_primes(bits) for bits in PRIME_SIZES}
    return {
        "version": VERSION,
        "scheme": "threshold-paillier (Shoup/FPS/Damgard-Jurik s=1), trusted dealer",
        "specs": ["protocols/keygen.md", "protocols/decryption-shares.md"],
        "integers": "lower-case hex without 0x; byte strings hex",
        "test_safe_primes": {
            str(bits): {"p": _h(p), "q": _h(q), "warning": "public test primes: INSECURE"}
            for bits, (p, q) in primes.items()
        },
        "suites": [suite(k, parties, bits, primes[bits]) for k, parties, bits in SUITES],
    }


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(build(), indent=1) + "\n")
