"""RNS limbs in and out of SEAL objects through SEAL's own serialization (hazmat).

SEAL's Python binding exposes no pointer to polynomial memory, so psc reads and writes
limbs the way SEAL persists them: ``save`` (SEAL compresses with zstd; ``zstandard``
inflates it) and ``load`` of an uncompressed stream (compression mode ``none``), which SEAL
validates on load (``is_valid_for``: parameter id, sizes, every word below its prime).

Layout relied on (SEAL 4.x ``save_members``): a 16-byte header (magic ``0xA15E``, header
size, version, compression mode, reserved, total size) then the members; for a
``Ciphertext`` (and a ``PublicKey``, which is one) and a ``Plaintext`` (and a
``SecretKey``) the polynomial words are the **last** ``count * 8`` bytes, as an array with
its own header; a ``RelinKeys`` holds a parameter id, a count, then one ``PublicKey``
stream per component, each with its own header and size.  The tests check every layout
against SEAL (a round trip changes nothing and SEAL decrypts what it reads back).
"""

from __future__ import annotations

import os
import struct
import tempfile
from typing import Any

import numpy as np
import tenseal.sealapi as seal
import zstandard

from psc.hazmat.exact.ring import U64, Ring

_HEADER = struct.Struct("<HBBBBHQ")
_MAGIC = 0xA15E


def raw(obj: Any) -> bytes:
    """``obj.save`` as an uncompressed SEAL stream."""
    fd, path = tempfile.mkstemp(suffix=".seal")
    os.close(fd)
    try:
        obj.save(path)
        with open(path, "rb") as f:
            blob = f.read()
    finally:
        os.unlink(path)
    magic, hsize, major, minor, mode, _res, _size = _HEADER.unpack_from(blob)
    if magic != _MAGIC or hsize != 16:
        raise ValueError("not a SEAL stream")
    body = blob[16:]
    if mode == 2:
        body = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    elif mode != 0:
        raise ValueError(f"SEAL compression mode {mode} is not supported")
    return _HEADER.pack(_MAGIC, 16, major, minor, 0, 0, 16 + len(body)) + body


def _load(obj: Any, ring: Ring, blob: bytes) -> Any:
    fd, path = tempfile.mkstemp(suffix=".seal")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        obj.load(ring.context, path)
    finally:
        os.unlink(path)
    return obj


def _tail(blob: bytes, words: int) -> U64:
    return np.frombuffer(blob, dtype="<u8", count=words, offset=len(blob) - 8 * words).astype(
        np.uint64
    )


def ct_read(ring: Ring, ct: Any) -> U64:
    """A ciphertext's polynomials as a ``(size, primes, N)`` array (a copy)."""
    size, levels = ct.size(), ct.coeff_modulus_size()
    return _tail(raw(ct), size * levels * ring.n).reshape(size, levels, ring.n)


def ct_write(ring: Ring, template: Any, polys: U64, ntt: bool | None = None) -> Any:
    """A new SEAL ``Ciphertext`` shaped like ``template`` holding ``polys``."""
    blob = bytearray(raw(template))
    if polys.shape != (template.size(), template.coeff_modulus_size(), ring.n):
        raise ValueError(f"shape {polys.shape} does not fit the template")
    data = np.ascontiguousarray(polys, dtype="<u8").tobytes()
    blob[len(blob) - len(data) :] = data
    if ntt is not None:
        blob[16 + 32] = int(ntt)  # is_ntt_form follows the parameter id
    return _load(seal.Ciphertext(), ring, bytes(blob))


def pk_read(ring: Ring, pk: Any) -> U64:
    return ct_read(ring, pk.data())


def pk_write(ring: Ring, template: Any, polys: U64) -> Any:
    blob = bytearray(raw(template))
    data = np.ascontiguousarray(polys, dtype="<u8").tobytes()
    blob[len(blob) - len(data) :] = data
    return _load(seal.PublicKey(), ring, bytes(blob))


def sk_read(ring: Ring, sk: Any) -> U64:
    return _tail(raw(sk), len(ring.key_primes) * ring.n).reshape(len(ring.key_primes), ring.n)


def sk_write(ring: Ring, template: Any, poly: U64) -> Any:
    blob = bytearray(raw(template))
    data = np.ascontiguousarray(poly, dtype="<u8").tobytes()
    blob[len(blob) - len(data) :] = data
    return _load(seal.SecretKey(), ring, bytes(blob))


def rk_write(ring: Ring, template: Any, comps: list[U64]) -> Any:
    """New ``RelinKeys`` shaped like ``template`` whose component ``j`` holds ``comps[j]``
    (a ``(2, key primes, N)`` array)."""
    blob = bytearray(raw(template))
    pos = 16 + 32
    (dim1,) = struct.unpack_from("<Q", blob, pos)
    pos += 8
    j = 0
    for _ in range(dim1):
        (dim2,) = struct.unpack_from("<Q", blob, pos)
        pos += 8
        for _ in range(dim2):
            size = _HEADER.unpack_from(blob, pos)[6]
            data = np.ascontiguousarray(comps[j], dtype="<u8").tobytes()
            end = pos + size
            blob[end - len(data) : end] = data
            pos = end
            j += 1
    if j != len(comps):
        raise ValueError(f"{len(comps)} components for a key with {j}")
    return _load(seal.RelinKeys(), ring, bytes(blob))


def pt_read(ring: Ring, pt: Any) -> U64:
    """A (coefficient-form) plaintext's ``N`` coefficients."""
    return _tail(raw(pt), ring.n)
