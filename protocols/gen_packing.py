"""Write ``protocols/vectors/packing.json``: slot packing and packed Paillier ciphertexts.

Spec: ``protocols/packing.md``.  Deterministic: the vectors and encryption randomizers
come from :class:`random.Random` seeded with :data:`SEED` (whose string seeding and
``randrange`` are stable across Python 3 releases), and the keys are the fixed primes
below, so regenerating is byte-identical unless the format changed.

Every good case records the randomizer ``r`` of each block, so a replay rebuilds the
ciphertext byte for byte through the private randomness seam
(``RandomnessPool(randbelow=...)``).  Every ``bad_*`` case names the exact error class a
conforming implementation raises.

The keys are **INSECURE TEST KEYS** (512-bit moduli whose primes are printed here):
never use them for anything but tests.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from psc.catalog import load_catalog
from psc.exceptions import InvalidMessage, KeyMismatch, OverflowRisk, PscError
from psc.hazmat.backends.paillier import (
    _CHECKSUM_BYTES,
    _HEADER,
    PackedCiphertext,
    PackedPaillier,
    RandomnessPool,
    _checksum,
)
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey, _keypair_from_primes

OUT = Path(__file__).parent / "vectors" / "packing.json"
VERSION = 1
SEED = "psc/packing/vectors/v1"

#: INSECURE 512-bit test keys, given by their primes (public: tests only).
TEST_KEYS: dict[str, tuple[int, int]] = {
    "test": (
        0xC575FF75F622C3F02EEE9847940938CA7743B71332291A4BA42F4EB676909EED,
        0xD64C1FDBB6559CC52E5EBBB39E6F37262ED549AE5D8F5CF5B27094680ECF0C5B,
    ),
    "other": (
        0xE45F10EFA28058599C97607A17BF3D808E9E33492B7D714B9767AFB9B76FDBC1,
        0xE4EF56C6F5AAF7838F1171980E330E8A4A10F1E3EA8D4367873DDBCABA7A0CC3,
    ),
}

Keys = tuple[PaillierPublicKey, PaillierPrivateKey]


def keypair(name: str) -> Keys:
    """The named fixed test keypair."""
    p, q = TEST_KEYS[name]
    return _keypair_from_primes(p, q, allow_insecure=True)


def scripted(values: list[int]) -> Callable[[int], int]:
    """A ``randbelow`` that returns ``values`` in order: the replay seam."""
    it: Iterator[int] = iter(values)

    def randbelow(bound: int) -> int:
        v = next(it)
        if not 0 <= v < bound:
            raise ValueError(f"scripted randomizer {v} is not below {bound}")
        return v

    return randbelow


def backend_for(pk: PaillierPublicKey, layout: SlotLayout, rs: list[int]) -> PackedPaillier:
    pool = RandomnessPool(pk, randbelow=scripted(rs))
    return PackedPaillier(pk, layout, pool=pool, allow_insecure_key=True)


def draw_rs(rng: random.Random, pk: PaillierPublicKey, count: int) -> list[int]:
    """``count`` randomizers uniform in ``Z_n^*`` (rejection of the negligible non-units)."""
    out: list[int] = []
    n = int(pk.n)
    while len(out) < count:
        r = rng.randrange(1, n)
        if math.gcd(r, n) == 1:
            out.append(r)
    return out


def layout_json(layout: SlotLayout) -> dict[str, int]:
    return {"slot_bits": layout.slot_bits, "slots": layout.slots, "max_value": layout.max_value}


def good_case(
    name: str,
    rng: random.Random,
    keys: Keys,
    slot_bits: int,
    vector: list[int],
    bound: int,
    note: str,
) -> tuple[dict[str, Any], PackedCiphertext, PackedPaillier]:
    pk, sk = keys
    layout = SlotLayout.for_key(pk.bits, slot_bits)
    rs = draw_rs(rng, pk, layout.blocks(len(vector)))
    be = backend_for(pk, layout, rs)
    v = np.array(vector, dtype=np.int64)
    ct = be.encrypt(v, bound=bound)
    blob = be.serialize(ct)
    assert be.decrypt(be.deserialize(blob), sk).tolist() == vector
    S = layout.slots
    blocks = []
    for j, c in enumerate(ct.blocks):
        packed = layout.pack(v[j * S : (j + 1) * S])
        blocks.append(
            {
                "r": f"{rs[j]:x}",
                "packed": str(packed),
                "plaintext": f"{packed % int(pk.n):x}",
                "ciphertext": f"{int(c):x}",
            }
        )
    case = {
        "name": name,
        "note": note,
        "key": "test",
        "layout": layout_json(layout),
        "vector": vector,
        "bound": bound,
        "blocks": blocks,
        "serialized": blob.hex(),
    }
    return case, ct, be


def rechecksum(blob: bytes) -> bytes:
    """Recompute the trailing checksum (a well-formed message with wrong contents)."""
    body = blob[:-_CHECKSUM_BYTES]
    return body + _checksum(body)


def reheader(blob: bytes, **fields: int | bytes) -> bytes:
    names = ("magic", "version", "fingerprint", "slot_bits", "n_values", "bound", "count")
    values = dict(zip(names, _HEADER.unpack_from(blob), strict=True))
    values.update(fields)
    return rechecksum(_HEADER.pack(*values.values()) + blob[_HEADER.size :])


def flip(blob: bytes, pos: int, mask: int = 0x01) -> bytes:
    b = bytearray(blob)
    b[pos] ^= mask
    return bytes(b)


def expect_error(fn: Callable[[], object], error: type[PscError]) -> str:
    """Run ``fn`` and return the name of the error it raises, checking it is ``error``."""
    try:
        fn()
    except error:
        return error.__name__
    raise AssertionError(f"expected {error.__name__}")


def build() -> dict[str, Any]:
    rng = random.Random(SEED)
    test, other = keypair("test"), keypair("other")
    pk, sk = test
    city = load_catalog("city")
    city_w = SlotLayout.for_catalog(city, pk.bits).slot_bits

    cases: list[dict[str, Any]] = []
    c, _, _ = good_case(
        "single-negative", rng, test, city_w, [-1], 1, "one slot: the plaintext is n - 1"
    )
    cases.append(c)
    top = (1 << 7) - 1
    c, _, _ = good_case(
        "slot-extremes-8bit",
        rng,
        test,
        8,
        [top, -top, 0, 1, -1, top, -top],
        top,
        "the boundary values +-(2^(w-1) - 1) next to 0 and +-1",
    )
    cases.append(c)
    S = SlotLayout.for_key(pk.bits, city_w).slots
    bound = city.agency_period_bound("transport-bureau")
    vec = [rng.choice([0, 0, 0, -5, -10, -15, -20, -30, -35]) for _ in range(2 * S + 5)]
    c, ct_a, be_a = good_case(
        "city-width-three-blocks",
        rng,
        test,
        city_w,
        vec,
        bound,
        f"the city catalog's {city_w}-bit slots, {S} per block, transport-bureau bound {bound}",
    )
    cases.append(c)
    wide = (1 << 61) - 1
    c, _, _ = good_case(
        "widest-slots-62bit",
        rng,
        test,
        62,
        [wide, -wide, 123456789, -987654321, 0, 1],
        wide,
        "the widest slots values travel as int64",
    )
    cases.append(c)

    # one homomorphic addition: the sum of two city-width encryptions
    vec_b = [rng.choice([0, 0, 5, 10, 15]) for _ in range(2 * S + 5)]
    c_b, ct_b, _ = good_case("city-width-addend", rng, test, city_w, vec_b, 20, "second addend")
    cases.append(c_b)
    total = be_a.add(ct_a, ct_b)
    sums = [
        {
            "name": "city-width-sum",
            "key": "test",
            "layout": cases[2]["layout"],
            "inputs": ["city-width-three-blocks", "city-width-addend"],
            "bound": total.bound,
            "vector": [a + b for a, b in zip(vec, vec_b, strict=True)],
            "serialized": be_a.serialize(total).hex(),
        }
    ]
    assert be_a.decrypt(total, sk).tolist() == sums[0]["vector"]

    # -- bad cases -----------------------------------------------------------------------
    ref = cases[2]
    blob = bytes.fromhex(ref["serialized"])
    layout = SlotLayout.for_key(pk.bits, city_w)
    be = PackedPaillier(pk, layout, allow_insecure_key=True)
    width = pk.ciphertext_bytes
    block1 = _HEADER.size + width  # first byte of the second block
    bound_pos = 4 + 1 + 16 + 2 + 4  # first byte of the bound field
    bad: list[dict[str, Any]] = []

    def deserialize_case(name: str, data: bytes, error: type[PscError], note: str) -> None:
        bad.append(
            {
                "name": name,
                "note": note,
                "op": "deserialize",
                "key": "test",
                "layout": ref["layout"],
                "serialized": data.hex(),
                "error": expect_error(lambda: be.deserialize(data), error),
            }
        )

    deserialize_case("bad_truncated", blob[:-1], InvalidMessage, "last byte missing")
    deserialize_case("bad_truncated_header", blob[:40], InvalidMessage, "shorter than a header")
    deserialize_case("bad_empty", b"", InvalidMessage, "no bytes at all")
    deserialize_case("bad_trailing_byte", blob + b"\x00", InvalidMessage, "one byte too many")
    deserialize_case("bad_magic", reheader(blob, magic=b"PSCQ"), InvalidMessage, "wrong magic")
    deserialize_case("bad_version", reheader(blob, version=2), InvalidMessage, "unknown version")
    deserialize_case(
        "bad_altered_header_byte",
        flip(blob, bound_pos + 7),
        InvalidMessage,
        "lowest byte of the bound flipped: a value that would otherwise parse",
    )
    deserialize_case(
        "bad_altered_n_values", flip(blob, 4 + 1 + 16 + 2 + 3), InvalidMessage, "n_values changed"
    )
    deserialize_case(
        "bad_altered_block", flip(blob, block1 + 17, 0x80), InvalidMessage, "a block byte flipped"
    )
    deserialize_case(
        "bad_altered_checksum", flip(blob, len(blob) - 1), InvalidMessage, "checksum byte flipped"
    )
    deserialize_case(
        "bad_wrong_slot_count",
        reheader(blob, count=2),
        InvalidMessage,
        "block count disagrees with n_values (checksum recomputed)",
    )
    deserialize_case(
        "bad_wrong_n_values",
        reheader(blob, n_values=S),
        InvalidMessage,
        "n_values needs one block, the message has three (checksum recomputed)",
    )
    deserialize_case(
        "bad_wrong_slot_bits",
        reheader(blob, slot_bits=city_w + 1),
        InvalidMessage,
        "slot width differs from the layout (checksum recomputed)",
    )
    deserialize_case(
        "bad_bound_above_range",
        reheader(blob, bound=layout.max_value + 1),
        InvalidMessage,
        "declared bound above 2^(w-1) - 1 (checksum recomputed)",
    )
    zero_block = blob[:block1] + bytes(width) + blob[block1 + width :]
    deserialize_case(
        "bad_block_zero", rechecksum(zero_block), InvalidMessage, "block 0 is not in Z_{n^2}^*"
    )
    p_block = blob[:block1] + TEST_KEYS["test"][0].to_bytes(width, "big") + blob[block1 + width :]
    deserialize_case(
        "bad_block_not_unit", rechecksum(p_block), InvalidMessage, "block shares a factor with n"
    )
    big = blob[:block1] + int(pk.nsquare).to_bytes(width, "big") + blob[block1 + width :]
    deserialize_case("bad_block_too_large", rechecksum(big), InvalidMessage, "block equals n^2")

    # a well-formed message under the other key
    opk = other[0]
    obe = backend_for(opk, SlotLayout.for_key(opk.bits, city_w), draw_rs(rng, opk, 3))
    foreign = obe.serialize(obe.encrypt(np.array(vec, dtype=np.int64), bound=bound))
    deserialize_case(
        "bad_wrong_key_fingerprint", foreign, KeyMismatch, "encrypted under the 'other' key"
    )

    # a tampered block with a recomputed checksum parses, but never decrypts into the layout
    tampered = rechecksum(flip(blob, block1 + 17, 0x80))
    parsed = be.deserialize(tampered)
    bad.append(
        {
            "name": "bad_tampered_block_decrypt",
            "note": "block byte flipped and checksum recomputed: the guard bits catch it",
            "op": "decrypt",
            "key": "test",
            "layout": ref["layout"],
            "serialized": tampered.hex(),
            "error": expect_error(lambda: be.decrypt(parsed, sk), InvalidMessage),
        }
    )
    bad.append(
        {
            "name": "bad_decrypt_with_wrong_key",
            "note": "the 'other' private key cannot decrypt a 'test' ciphertext",
            "op": "decrypt",
            "key": "test",
            "decrypt_key": "other",
            "layout": ref["layout"],
            "serialized": blob.hex(),
            "error": expect_error(lambda: be.decrypt(be.deserialize(blob), other[1]), KeyMismatch),
        }
    )
    small = [3, -4, 0]
    bad.append(
        {
            "name": "bad_encrypt_above_bound",
            "note": "a value of magnitude 4 under a declared bound of 3",
            "op": "encrypt",
            "key": "test",
            "layout": ref["layout"],
            "vector": small,
            "bound": 3,
            "error": expect_error(lambda: be.encrypt(np.array(small), bound=3), OverflowRisk),
        }
    )
    bad.append(
        {
            "name": "bad_encrypt_bound_above_range",
            "note": "a declared bound above the slot range",
            "op": "encrypt",
            "key": "test",
            "layout": ref["layout"],
            "vector": small,
            "bound": layout.max_value + 1,
            "error": expect_error(
                lambda: be.encrypt(np.array(small), bound=layout.max_value + 1), OverflowRisk
            ),
        }
    )
    big_bound = be.deserialize(blob).with_bound(layout.max_value)
    hi = be.serialize(big_bound)
    bad.append(
        {
            "name": "bad_add_overflow",
            "note": "bounds max_value and 20 add up beyond the slot range",
            "op": "add",
            "key": "test",
            "layout": ref["layout"],
            "inputs": [hi.hex(), c_b["serialized"]],
            "error": expect_error(
                lambda: be.add(
                    be.deserialize(hi), be.deserialize(bytes.fromhex(c_b["serialized"]))
                ),
                OverflowRisk,
            ),
        }
    )
    bad.append(
        {
            "name": "bad_layout_too_narrow",
            "note": "the city catalog's worst-case sum needs more than 12-bit slots",
            "op": "layout",
            "catalog": "city",
            "key_bits": 2048,
            "slot_bits": 12,
            "error": expect_error(
                lambda: SlotLayout.for_catalog(city, 2048, slot_bits=12), OverflowRisk
            ),
        }
    )

    keys_json = {
        name: {
            "p": f"{p:x}",
            "q": f"{q:x}",
            "n": f"{p * q:x}",
            "fingerprint": keypair(name)[0].fingerprint.hex(),
            "warning": "public test primes: INSECURE",
        }
        for name, (p, q) in TEST_KEYS.items()
    }
    return {
        "version": VERSION,
        "spec": "protocols/packing.md",
        "integers": "lower-case hex without 0x, except 'packed' (signed decimal) and vectors",
        "header": "magic 'PSCP' | version u8 | key fingerprint 16B | slot_bits u16 | n_values u32 | bound u64 | count u32 (big-endian)",
        "keys": keys_json,
        "cases": cases,
        "sums": sums,
        "bad": bad,
    }


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(build(), indent=1) + "\n", "utf-8")


if __name__ == "__main__":
    main()
