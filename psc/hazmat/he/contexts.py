"""TenSEAL contexts: generated secret contexts, published public contexts, loading them.

**Hazmat.**  What an agency or the aggregator receives is a :class:`PublicContext`:
a psc header (scheme, ring dimension, prime bit sizes, scale or plaintext modulus) followed
by TenSEAL's serialization *without* the secret key
(``context.serialize(save_secret_key=False)``).  Loading one checks that it holds no
secret key, that the header matches the TenSEAL parameters, and the security bound
(:func:`psc.hazmat.he.params.check_security`).  Its fingerprint (SHA-256 of the published
bytes, 16 bytes) is what ciphertexts cite.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import tenseal as ts

from psc.exceptions import InvalidMessage, ParameterError
from psc.hazmat.he.params import BfvParams, CkksParams, check_security

_CTX_MAGIC = b"PSCX"
_CTX_VERSION = 1
_CTX_HEAD = struct.Struct(">4sBI")  # magic, version, header JSON length


# ----------------------------------------------------------------------------------------
# public contexts


@dataclass(frozen=True)
class PublicContext:
    """A context as published: psc header + TenSEAL bytes, no secret key.

    ``context`` is the loaded TenSEAL context (encrypt, add, evaluate; never decrypt).
    """

    params: CkksParams | BfvParams
    context: ts.Context
    data: bytes = field(repr=False)
    #: SHA-256 of ``data``, first 16 bytes: what ciphertexts cite
    fingerprint: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", hashlib.sha256(self.data).digest()[:16])

    @property
    def byte_size(self) -> int:
        return len(self.data)


def publish(
    params: CkksParams | BfvParams,
    secret_context: ts.Context,
    *,
    relin_keys: bool = True,
    galois_steps: Sequence[int] = (),
) -> PublicContext:
    """Serialize the public half of ``secret_context`` (key holder, at setup).

    ``relin_keys``: the grading evaluator needs them (about 206 MB at N=32768 with 24
    primes); aggregation-only parties do not.  ``galois_steps``: left-rotation steps to
    publish Galois keys for, and *only* those (TenSEAL can only generate all of them:
    1.9 GB at N=16384, more at N=32768); the slot sums of the grade histogram need the
    powers of two below the vector size.  Each key is as large as the relinearization key.
    """
    body = secret_context.serialize(
        save_public_key=True,
        save_secret_key=False,
        save_galois_keys=False,
        save_relin_keys=relin_keys,
    )
    if galois_steps:
        body = _with_galois_keys(body, params.n, secret_context, galois_steps)
    head = json.dumps(params.as_json(), sort_keys=True, separators=(",", ":")).encode()
    data = _CTX_HEAD.pack(_CTX_MAGIC, _CTX_VERSION, len(head)) + head + body
    return load_public(data)


def ckks_vector_with_size(vector: Any, size: int, context: ts.Context) -> Any:
    """The same ciphertext with TenSEAL's logical vector size set to ``size``.

    Hazmat.  TenSEAL's ``sum()`` marks its result as a 1-element vector although, after a
    rotate-and-add over the whole ``n/2``-slot cycle, *every* slot holds the total; psc
    widens it back so noise can be added to every slot (``CKKSVectorProto.sizes``, field 1).
    """
    out = []
    for f, wt, v in _pb_fields(vector.serialize()):
        if f == 1:
            continue
        out.append((f, wt, v))
    data = _pb_encode([(1, 2, _pb_enc_varint(size)), *out])
    return ts.ckks_vector_from(context, data)


def galois_element(n: int, step: int) -> int:
    """SEAL's Galois element for a left rotation of the CKKS/BFV slot rows by ``step``."""
    if not 0 < step < n // 2:
        raise ParameterError(f"rotation step must be in 1..{n // 2 - 1}")
    return pow(3, step, 2 * n)


def _with_galois_keys(
    body: bytes, n: int, secret_context: ts.Context, steps: Sequence[int]
) -> bytes:
    # TenSEAL's context is a protobuf (tenseal/proto/tensealcontext.proto): field 2 is the
    # public part, whose field 5 holds SEAL-serialized Galois keys.  Splice in keys for the
    # requested elements only, made with SEAL's KeyGenerator from the secret key.
    import os
    import tempfile

    seal = sys.modules[type(secret_context.data).__module__]
    keygen = seal.KeyGenerator(secret_context.data.seal_context(), secret_context.data.secret_key())
    keys = seal.GaloisKeys()
    keygen.create_galois_keys(sorted({galois_element(n, s) for s in steps}), keys)
    fd, path = tempfile.mkstemp(prefix="psc-galois-")
    os.close(fd)
    try:
        keys.save(path)
        with open(path, "rb") as fh:
            blob = fh.read()
    finally:
        os.unlink(path)
    out = []
    for f, wt, v in _pb_fields(body):
        if f == 2 and wt == 2 and isinstance(v, bytes):
            sub = [x for x in _pb_fields(v) if x[0] != 5]
            v = _pb_encode([*sub, (5, 2, blob)])
        out.append((f, wt, v))
    return _pb_encode(out)


def _pb_varint(b: bytes, i: int) -> tuple[int, int]:
    x = shift = 0
    while True:
        if i >= len(b):
            raise InvalidMessage("truncated protobuf")
        c = b[i]
        i += 1
        x |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return x, i


def _pb_fields(b: bytes) -> list[tuple[int, int, int | bytes]]:
    i = 0
    out: list[tuple[int, int, int | bytes]] = []
    while i < len(b):
        tag, i = _pb_varint(b, i)
        f, wt = tag >> 3, tag & 7
        v: int | bytes
        if wt == 0:
            v, i = _pb_varint(b, i)
        elif wt == 2:
            ln, i = _pb_varint(b, i)
            v, i = b[i : i + ln], i + ln
        elif wt in (1, 5):
            w = 8 if wt == 1 else 4
            v, i = b[i : i + w], i + w
        else:
            raise InvalidMessage("unsupported protobuf wire type")
        out.append((f, wt, v))
    return out


def _pb_encode(fields_: Sequence[tuple[int, int, int | bytes]]) -> bytes:
    out = bytearray()
    for f, wt, v in fields_:
        out += _pb_enc_varint(f << 3 | wt)
        if wt == 0:
            assert isinstance(v, int)
            out += _pb_enc_varint(v)
        else:
            assert isinstance(v, bytes)
            out += (_pb_enc_varint(len(v)) if wt == 2 else b"") + v
    return bytes(out)


def _pb_enc_varint(x: int) -> bytes:
    out = bytearray()
    while True:
        c, x = x & 0x7F, x >> 7
        if x:
            out.append(c | 0x80)
        else:
            out.append(c)
            return bytes(out)


def _params_from_json(doc: Any) -> CkksParams | BfvParams:
    if not isinstance(doc, dict):
        raise InvalidMessage("context header is not an object")
    try:
        if doc["scheme"] == "ckks":
            return CkksParams(
                int(doc["n"]), tuple(int(b) for b in doc["coeff_bits"]), int(doc["scale_bits"])
            )
        if doc["scheme"] == "bfv":
            return BfvParams(
                int(doc["n"]),
                int(doc["plain_modulus"]),
                tuple(int(b) for b in doc["coeff_bits"]),
                int(doc.get("digit_bits", 0)),
            )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ParameterError):
            raise
        raise InvalidMessage("context header is malformed") from None
    raise InvalidMessage("context header names an unknown scheme")


def load_public(data: bytes) -> PublicContext:
    """Load a published context (agency, aggregator).

    Raises :class:`InvalidMessage` for bytes that are not a psc context or whose header
    disagrees with the TenSEAL parameters, and :class:`ParameterError` for a context that
    holds a secret key (it must never leave the key holder) or whose parameters are below
    128-bit security.
    """
    if len(data) < _CTX_HEAD.size:
        raise InvalidMessage("context is truncated")
    magic, version, hlen = _CTX_HEAD.unpack_from(data)
    if magic != _CTX_MAGIC or version != _CTX_VERSION or len(data) < _CTX_HEAD.size + hlen:
        raise InvalidMessage("not a psc public context of a supported version")
    try:
        doc = json.loads(data[_CTX_HEAD.size : _CTX_HEAD.size + hlen])
    except ValueError:
        raise InvalidMessage("context header is not JSON") from None
    params = _params_from_json(doc)
    try:
        ctx = ts.context_from(data[_CTX_HEAD.size + hlen :])
    except Exception:  # TenSEAL raises assorted C++ exceptions on bad bytes
        raise InvalidMessage("context body is not a TenSEAL context") from None
    if ctx.has_secret_key():
        raise ParameterError(
            "this context holds a secret key: only the key holder may have it; publish "
            "contexts with save_secret_key=False"
        )
    if not ctx.has_public_key():
        raise InvalidMessage("context has no public key")
    kd = ctx.data.seal_context().key_context_data()
    n = int(kd.parms().poly_modulus_degree())
    total = int(kd.total_coeff_modulus_bit_count())
    check_security(n, [total])
    want = sum(params.coeff_bits) if isinstance(params, CkksParams) else params.modulus_bits
    if n != params.n or total > want or total < want - len(params.as_json()["coeff_bits"]):
        raise InvalidMessage("context header does not match the TenSEAL parameters")
    if isinstance(params, BfvParams):
        t = 2 * int(kd.plain_upper_half_threshold()) - 1
        if t != params.plain_modulus:
            raise InvalidMessage("context header does not match the plaintext modulus")
    return PublicContext(params, ctx, bytes(data))


@dataclass(frozen=True)
class SecretContext:
    """The key holder's side: the full TenSEAL context (with the secret key) and what was
    published from it.  Never serialized by psc; decryption takes it as an argument."""

    public: PublicContext
    context: ts.Context

    @property
    def fingerprint(self) -> bytes:
        return self.public.fingerprint


def generate(
    params: CkksParams | BfvParams,
    *,
    relin_keys: bool = False,
    galois_steps: Sequence[int] = (),
    n_threads: int = 1,
) -> SecretContext:
    """Generate keys for ``params`` and publish the public context (key holder, at setup).

    ``relin_keys=True`` only for the CKKS grading evaluator (ciphertext multiplications);
    ``galois_steps`` only for slot sums (the grade histogram).
    """
    ctx = params.new_secret_context(n_threads=n_threads)
    return SecretContext(
        publish(params, ctx, relin_keys=relin_keys, galois_steps=galois_steps), ctx
    )
