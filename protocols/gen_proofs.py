"""Write ``protocols/vectors/proofs.json``: zero-knowledge proofs about packed ciphertexts.

Spec: ``protocols/proofs.md``.  Deterministic: values and every random draw come from
:class:`random.Random` seeded with :data:`SEED`, and the key is the fixed INSECURE test key
of ``gen_packing.py``, so regenerating is byte-identical unless the proof format changed.

Each good case records the prover's draws in order (``draws``: the ``randbelow`` outputs),
so a replay rebuilds the proof byte for byte through the private randomness seam; the
verifier's batching exponents are the verifier's own and do not appear.  Every ``bad_*``
case names the exact error class a conforming verifier raises.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from protocols.gen_packing import TEST_KEYS, expect_error, keypair
from psc.exceptions import InvalidMessage, InvalidProof
from psc.hazmat.backends.paillier import PackedPaillier, RandomnessPool
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import PaillierPublicKey
from psc.hazmat.proofs.plaintext import PlaintextProof, prove_plaintexts, verify_plaintexts

OUT = Path(__file__).parent / "vectors" / "proofs.json"
VERSION = 1
SEED = "psc/proofs/vectors/v1"


class Recorder:
    """A ``randbelow`` from a seeded generator that remembers every draw (the replay list)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.draws: list[int] = []

    def __call__(self, bound: int) -> int:
        v = self.rng.randrange(bound)
        self.draws.append(v)
        return v


def _encrypt(
    rng: random.Random, pk: PaillierPublicKey, layout: SlotLayout, values: list[int]
) -> tuple[list[int], Any, list[int]]:
    rec = Recorder(rng)
    be = PackedPaillier(pk, layout, pool=RandomnessPool(pk, randbelow=rec), allow_insecure_key=True)
    ct, openings = be.encrypt_with_openings(np.array(values, dtype=np.int64))
    return [int(c) for c in ct.blocks], openings, rec.draws


def _hex(xs: list[int] | tuple[int, ...]) -> list[str]:
    return [f"{x:x}" for x in xs]


def plaintext_cases(rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    pk, _ = keypair("test")
    layout = SlotLayout.for_key(pk.bits, 16)
    good: list[dict[str, Any]] = []
    proofs: list[tuple[list[int], PlaintextProof, bytes]] = []
    for name, values, context in (
        ("plaintext-one-block", [3, -1, 0, 7], b"psc/test/one"),
        (
            "plaintext-three-blocks",
            [rng.randrange(-1000, 1000) for _ in range(2 * layout.slots + 3)],
            b"psc/test/three",
        ),
    ):
        cts, openings, enc_draws = _encrypt(rng, pk, layout, values)
        rec = Recorder(rng)
        proof = prove_plaintexts(pk, cts, openings, context, randbelow=rec)
        verify_plaintexts(pk, cts, proof, context)
        data = proof.to_bytes(pk)
        proofs.append((cts, proof, context))
        good.append(
            {
                "name": name,
                "kind": "plaintext",
                "key": "test",
                "layout": {"slot_bits": layout.slot_bits, "slots": layout.slots},
                "values": values,
                "encryption_draws": _hex(enc_draws),
                "openings": [
                    {"m": f"{int(o.plaintext):x}", "r": f"{int(o.randomness):x}"} for o in openings
                ],
                "ciphertexts": _hex(cts),
                "context": context.hex(),
                "prover_draws": _hex(rec.draws),
                "proof": data.hex(),
            }
        )

    cts, proof, context = proofs[1]
    data = proof.to_bytes(pk)
    bad: list[dict[str, Any]] = []

    def verify_case(
        name: str,
        note: str,
        ciphertexts: list[int],
        blob: bytes,
        ctx: bytes,
        error: type[InvalidMessage],
    ) -> None:
        def run() -> None:
            p = PlaintextProof.from_bytes(pk, blob, len(ciphertexts))
            verify_plaintexts(pk, ciphertexts, p, ctx)

        bad.append(
            {
                "name": name,
                "note": note,
                "kind": "plaintext",
                "key": "test",
                "ciphertexts": _hex(ciphertexts),
                "context": ctx.hex(),
                "proof": blob.hex(),
                "error": expect_error(run, error),
            }
        )

    cw = pk.ciphertext_bytes
    mw = (pk.bits + 7) // 8
    count = len(cts)
    verify_case(
        "bad_plaintext_wrong_context", "another context", cts, data, b"psc/test/four", InvalidProof
    )
    verify_case(
        "bad_plaintext_swapped_blocks",
        "blocks 0 and 1 swapped",
        [cts[1], cts[0], *cts[2:]],
        data,
        context,
        InvalidProof,
    )
    verify_case(
        "bad_plaintext_truncated", "last byte missing", cts, data[:-1], context, InvalidMessage
    )
    verify_case(
        "bad_plaintext_padded", "one byte too many", cts, data + b"\0", context, InvalidMessage
    )
    n = int(pk.n)
    scaled = [pow(c, (1 << 16) - 1, n * n) for c in cts]
    verify_case(
        "bad_plaintext_scaled_ciphertexts",
        "every block raised to 2^16 - 1 (the issue-9 attack), the honest proof reused",
        scaled,
        data,
        context,
        InvalidProof,
    )
    for field, off in (
        ("commitment", 0),
        ("response_m", count * cw),
        ("response_r", count * cw + count * mw),
    ):
        width = cw if field == "commitment" else mw
        pos = off + width - 1  # lowest byte of block 0's field
        b = bytearray(data)
        b[pos] ^= 0x02
        verify_case(
            f"bad_plaintext_tampered_{field}",
            f"lowest byte of block 0's {field} altered (still in its group)",
            cts,
            bytes(b),
            context,
            InvalidProof,
        )
    z_off = count * cw
    too_big = data[:z_off] + n.to_bytes(mw, "big") + data[z_off + mw :]
    verify_case(
        "bad_plaintext_response_not_reduced", "z_0 = n", cts, too_big, context, InvalidMessage
    )
    return good, bad


def build() -> dict[str, Any]:
    rng = random.Random(SEED)
    good, bad = plaintext_cases(rng)
    p, q = TEST_KEYS["test"]
    return {
        "version": VERSION,
        "spec": "protocols/proofs.md",
        "integers": "lower-case hex without 0x; values and bounds signed decimal",
        "keys": {"test": {"p": f"{p:x}", "q": f"{q:x}", "n": f"{p * q:x}", "warning": "INSECURE"}},
        "cases": good,
        "bad": bad,
    }


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(build(), indent=1) + "\n", "utf-8")


if __name__ == "__main__":
    main()
