"""CKKS via TenSEAL: dense delta vectors as approximate reals, the input of homomorphic grading.

A dense vector of ``N`` signed integer deltas is cut into blocks of ``n/2`` slots, each one
CKKS ciphertext under the published public key.  Slot ``i`` holds ``v_i / unit`` (plus
CKKS noise): the grading path publishes ``unit = H``, the half-width of the catalog's
raw-score domain, so that sums arrive already normalised into ``[-1, 1]`` and the sign
circuit spends no level on it (:mod:`psc.hazmat.he`).  Addition is slot-wise and
approximate: ``D(E(x) + E(y)) = x + y + e`` with ``|e|`` far below ``1 / (2 unit)`` for the
parameters psc uses, so :meth:`CkksBackend.decrypt` rounds ``unit * slot`` to the exact
integer sum and refuses (:class:`~psc.exceptions.InvalidMessage`) any slot whose value is
not within 1/4 of an integer (a garbage or foreign ciphertext).

**Parameters and security.**  Aggregation alone needs no multiplication: N = 8192 with
primes of 60, 40, 60 bits (160 bits, under the HE standard's 218-bit bound for N = 8192)
is the aggregation profile, :data:`AGGREGATION_PARAMS`.  Grading contexts come from
:mod:`psc.hazmat.he` (N = 32768, 870 bits of 881 allowed).  Noise: additions add the
fresh encryption noise (about ``2^-25`` relative to the scale at 2^40), consuming no level.

**What leaks** to ciphertext holders: vector length, public bound, unit, context
fingerprint.  **Decrypted CKKS values leak the secret key** (Li-Micciancio, EUROCRYPT
2021): a raw decryption must never be published; :meth:`decrypt` is for tests and the
trusted key holder, and returns rounded integers only.  The grade reveal floods noise
before decryption (:mod:`psc.hazmat.he`).

Hazmat note: this is a raw scheme backend; protocol roles wrap it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tenseal as ts

from psc.exceptions import InvalidMessage, KeyMismatch, ParameterError
from psc.hazmat.backends.base import IntArray
from psc.hazmat.backends.bfv import TensealBackend, TensealCiphertext
from psc.hazmat.he.contexts import PublicContext
from psc.hazmat.he.params import CkksParams

__all__ = ["AGGREGATION_PARAMS", "CkksBackend", "TensealCiphertext"]

#: aggregation-only CKKS: N = 8192, 160-bit modulus (<= 218), scale 2^40, no levels used.
AGGREGATION_PARAMS = CkksParams(8192, (60, 40, 60), 40)


class CkksBackend(TensealBackend):
    """The CKKS backend (public side): ``CkksBackend(public_context, unit=1.0)``."""

    name = "ckks"
    _magic = b"PSCK"

    def __init__(
        self, public: PublicContext, *, unit: float = 1.0, full_parts: bool = False
    ) -> None:
        """``full_parts=True`` zero-pads every part to all ``n/2`` slots (the grading path:
        slot sums then cover whole rotation cycles, see :mod:`psc.hazmat.he`)."""
        if not isinstance(public.params, CkksParams):
            raise ParameterError("CkksBackend needs a CKKS context")
        super().__init__(public, unit=unit)
        self.params: CkksParams = public.params
        self.full_parts = full_parts

    @property
    def max_value(self) -> int:
        # |v / unit| must stay below 2^(q0 - scale - 2) for q0 to hold the result, and the
        # rounding to integers needs the noise (about 2^-20 of a unit) far below 1/2.
        head = self.params.coeff_bits[0] - self.params.scale_bits - 2
        return int(min(2.0**head * self.unit, 2.0**30))

    @property
    def max_summands(self) -> int:
        # fresh noise is about 2^-25 of a unit at these scales; 2^20 summands stay far
        # below the 1/4 rounding margin
        return 1 << 20

    def _encrypt_block(self, block: IntArray) -> Any:
        values = block.astype(np.float64) / self.unit
        if self.full_parts and values.size < self.slots:
            values = np.concatenate([values, np.zeros(self.slots - values.size)])
        return ts.ckks_vector(self.public.context, values.tolist())

    def _load_block(self, data: bytes) -> Any:
        try:
            return ts.ckks_vector_from(self.public.context, data)
        except Exception:  # TenSEAL raises assorted C++ exceptions on bad bytes
            raise InvalidMessage("a part is not a valid CKKS ciphertext for this context") from None

    def _decrypt_block(self, part: Any, secret_context: ts.Context) -> IntArray:
        try:
            vals = np.asarray(part.decrypt(secret_context.secret_key()), dtype=np.float64)
        except Exception:
            raise KeyMismatch("this secret context cannot decrypt the ciphertext") from None
        scaled = vals * self.unit
        rounded = np.rint(scaled)
        if scaled.size and float(np.abs(scaled - rounded).max()) > 0.25:
            raise InvalidMessage("decrypted CKKS slots are not integers: wrong key or altered")
        return rounded.astype(np.int64)
