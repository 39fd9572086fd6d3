"""float32 <-> float16 conversion for the half-precision video store (numba; several
times faster than numpy's ``astype``, which dominated a pass over a stored movie)."""

from __future__ import annotations

import numba
import numpy as np


def to_float16(x: np.ndarray) -> np.ndarray:
    """float32 -> float16, rounding to nearest even like ``astype`` (several times faster);
    magnitudes below 2**-14 (float16's smallest normal, 6.1e-5) become 0."""
    x = np.ascontiguousarray(x, np.float32)
    out = np.empty(x.shape, np.uint16)
    _to_half_bits(x.reshape(-1).view(np.uint32), out.reshape(-1))
    return out.view(np.float16)


@numba.njit(cache=True, nogil=True)
def _to_half_bits(bits, out):  # pragma: no cover - compiled
    for i in range(bits.size):
        f = bits[i]
        sign = (f >> 16) & 0x8000
        a = f & 0x7FFFFFFF
        if a > 0x7F800000:  # NaN
            h = 0x7E00
        elif a >= 0x477FF000:  # rounds to >= 65520: infinity
            h = 0x7C00
        elif a < 0x38800000:  # below the smallest normal float16
            h = 0
        else:
            a = a + 0x0FFF + ((a >> 13) & 1)
            h = (a - 0x38000000) >> 13
        out[i] = sign | h



def from_float16(x: np.ndarray) -> np.ndarray:
    """float16 -> float32, exact (every float16 value is a float32 value)."""
    x = np.ascontiguousarray(x, np.float16)
    out = np.empty(x.shape, np.float32)
    _from_half_bits(x.reshape(-1).view(np.uint16), out.reshape(-1), out.reshape(-1).view(np.uint32))
    return out


@numba.njit(cache=True, nogil=True)
def _from_half_bits(bits, out, out_bits):  # pragma: no cover - compiled
    for i in range(bits.size):
        h = np.uint32(bits[i])
        sign = (h & 0x8000) << 16
        exponent = (h >> 10) & 0x1F
        mantissa = h & 0x3FF
        if exponent == 0:  # zero or subnormal: mantissa * 2**-24
            value = np.float32(mantissa) * np.float32(5.9604644775390625e-08)
            out[i] = -value if sign else value
        elif exponent == 31:  # infinity / NaN
            out_bits[i] = sign | 0x7F800000 | (mantissa << 13)
        else:
            out_bits[i] = sign | ((exponent + 112) << 23) | (mantissa << 13)


def as_dtype(x: np.ndarray, dtype=np.float32) -> np.ndarray:
    """``np.asarray(x, dtype)``, with the fast conversion for float16 -> float32."""
    x = np.asarray(x)
    if x.dtype == np.float16 and np.dtype(dtype) == np.float32:
        return from_float16(x)
    return np.asarray(x, dtype)
