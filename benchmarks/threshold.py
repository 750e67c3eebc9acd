"""Micro-benchmark of threshold Paillier (psc.hazmat.threshold): share, verify, combine.

``python -m benchmarks.threshold [--bits 2048] [--k 3] [--parties 5] [--blocks 8]
[--repeat 3] [--json PATH]``, run from the repository root.  Not registered in
``benchmarks/__main__.py``: the reveal suite (issue 4, item 8) measures the protocol end
to end; this one isolates the scheme's three steps.

The key is dealt from the fixed test safe primes in ``protocols/vectors/threshold.json``
(public, INSECURE: timing only); one fresh safe prime is also searched for, to record
what dealing a fresh key costs.  Figures are medians over ``--repeat`` runs, in ms:

* ``single``: one ciphertext; one party's share with its proof, verifying one share,
  combining ``k`` verified shares, and the full committee decryption (``k`` shares made,
  verified and combined, sequentially on this one machine);
* ``packed``: a packed ciphertext of ``--blocks`` blocks (24-bit slots) with one batched
  proof per party; the same steps per party, per block and per subject;
* ``full_key``: the single-key CRT decryption of one block, for comparison.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from psc.hazmat.backends.paillier import PackedPaillier, RandomnessPool
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import _keypair_from_primes
from psc.hazmat.threshold.combine import _combine_values, decrypt_packed, decrypt_with_committee
from psc.hazmat.threshold.dealer import _generate_safe_prime, deal
from psc.hazmat.threshold.encoding import encode_packed_share

VECTORS = Path(__file__).resolve().parent.parent / "protocols" / "vectors" / "threshold.json"


def _ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 3)


def run(bits: int, k: int, parties: int, blocks: int, repeat: int) -> dict[str, Any]:
    entry = json.loads(VECTORS.read_text())["test_safe_primes"][str(bits)]
    primes = (int(entry["p"], 16), int(entry["q"], 16))
    rng = random.Random(1)
    pk, keys = deal(
        k, parties, bits=bits, randbelow=rng.randrange, allow_insecure=bits < 2048, _primes=primes
    )
    priv = _keypair_from_primes(*primes, allow_insecure=bits < 2048)[1]
    out: dict[str, Any] = {"key_bits": bits, "k": k, "n": parties, "repeat": repeat}
    out["deal_ms_given_primes"] = _ms(
        lambda: deal(
            k,
            parties,
            bits=bits,
            randbelow=rng.randrange,
            allow_insecure=bits < 2048,
            _primes=primes,
        ),
        repeat,
    )
    out["safe_prime_search_ms"] = _ms(
        lambda: _generate_safe_prime(bits // 2, rng.randrange), repeat
    )

    # one ciphertext
    c = pk.public.raw_encrypt(12345, pk.public.random_rn(rng.randrange))
    share = keys[0].decryption_share(c, randbelow=rng.randrange)
    shares = [ks.decryption_share(c, randbelow=rng.randrange) for ks in keys[:k]]
    values = {s.index: s.value for s in shares}
    out["single"] = {
        "share_ms": _ms(lambda: keys[0].decryption_share(c, randbelow=rng.randrange), repeat),
        "verify_ms": _ms(lambda: pk.verify_share(c, share), repeat),
        "combine_ms": _ms(lambda: _combine_values(pk, values), repeat),
        "committee_decrypt_ms": _ms(
            lambda: decrypt_with_committee(
                pk, c, [ks.decryption_share(c, randbelow=rng.randrange) for ks in keys[:k]]
            ),
            repeat,
        ),
    }

    # a packed ciphertext
    layout = SlotLayout.for_key(bits, 24)
    backend = PackedPaillier(
        pk.public,
        layout,
        pool=RandomnessPool(pk.public, randbelow=rng.randrange),
        allow_insecure_key=bits < 2048,
    )
    vec = np.random.default_rng(1).integers(-1000, 1001, blocks * layout.slots, dtype=np.int64)
    ct = backend.encrypt(vec, bound=1000)
    pshares = [ks.packed_decryption_share(ct, randbelow=rng.randrange) for ks in keys[:k]]
    share_ms = _ms(lambda: keys[0].packed_decryption_share(ct, randbelow=rng.randrange), repeat)
    verify_ms = _ms(lambda: pk.verify_packed_share(ct.blocks, pshares[0]), repeat)
    total_ms = _ms(
        lambda: decrypt_packed(
            pk, ct, [ks.packed_decryption_share(ct, randbelow=rng.randrange) for ks in keys[:k]]
        ),
        repeat,
    )
    got = decrypt_packed(pk, ct, pshares).plaintext
    if not np.array_equal(got, vec):
        raise AssertionError("threshold decryption differs from the plaintext")
    combine_ms = _ms(
        lambda: [
            _combine_values(pk, {s.index: s.values[j] for s in pshares}) for j in range(blocks)
        ],
        repeat,
    )
    subjects = int(vec.size)
    out["packed"] = {
        "blocks": blocks,
        "slot_bits": layout.slot_bits,
        "slots_per_block": layout.slots,
        "subjects": subjects,
        "share_ms_per_party": share_ms,
        "share_ms_per_party_per_block": round(share_ms / blocks, 3),
        "verify_ms_per_party": verify_ms,
        "combine_ms_per_block": round(combine_ms / blocks, 3),
        "committee_decrypt_ms": total_ms,
        "committee_decrypt_ms_per_subject": round(total_ms / subjects, 4),
        "share_bytes_per_party": len(encode_packed_share(pk, pshares[0])),
    }
    out["full_key"] = {
        "decrypt_block_ms": _ms(lambda: priv.raw_decrypt(ct.blocks[0]), repeat),
    }
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.threshold")
    ap.add_argument("--bits", type=int, default=2048, choices=(512, 1024, 2048))
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--parties", type=int, default=5)
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    result = run(args.bits, args.k, args.parties, args.blocks, args.repeat)
    try:
        from benchmarks.env import environment

        result["environment"] = environment()
    except ImportError:  # the env module is optional for this micro-benchmark
        result["environment"] = None
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
