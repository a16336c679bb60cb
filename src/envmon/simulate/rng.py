"""Counter-based random numbers: every draw is a pure function of (seed, stream, counter).

The simulator must give the same value for a station, parameter and hour however
the range is cut into chunks, and whichever other stations are simulated with it.
A sequential generator cannot do that cheaply, so each draw hashes its key (seed
and stream names, through BLAKE2b) with its counter (an hour or day index,
through SplitMix64, which is fast in numpy and good enough for simulation).
"""

from __future__ import annotations

import hashlib
import math
from typing import Final

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)
_M1: Final = np.uint64(0xBF58476D1CE4E5B9)
_M2: Final = np.uint64(0x94D049BB133111EB)
_S30: Final = np.uint64(30)
_S27: Final = np.uint64(27)
_S31: Final = np.uint64(31)
_S32: Final = np.uint64(32)
_S11: Final = np.uint64(11)
_LOW32: Final = np.uint64(0xFFFFFFFF)


def key(seed: int, *parts: object) -> int:
    """A 64-bit stream key from the seed and the stream's names (stable across runs)."""
    text = "\x1f".join([str(seed), *(str(p) for p in parts)])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def keys(seed: int, names: list[tuple[object, ...]]) -> U64:
    """Keys of several streams, as an array (one per row of ``names``)."""
    return np.array([key(seed, *n) for n in names], dtype=np.uint64)


def _mix(z: U64) -> U64:
    # SplitMix64 finaliser; arrays wrap silently on overflow, which is what we want.
    z = z + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def bits(stream: int | U64, counter: npt.ArrayLike) -> U64:
    """64 random bits per element of ``counter`` (broadcast against ``stream``)."""
    c: U64 = np.atleast_1d(np.asarray(counter, dtype=np.int64)).view(np.uint64)
    s = np.atleast_1d(np.asarray(stream, dtype=np.uint64))
    return _mix(_mix(s) ^ (c * _GOLDEN))


def uniform(stream: int | U64, counter: npt.ArrayLike) -> F64:
    """Uniform draws in the open interval (0, 1)."""
    b = bits(stream, counter)
    return ((b >> _S11).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


def normal(stream: int | U64, counter: npt.ArrayLike) -> F64:
    """Standard normal draws (Box–Muller on the two 32-bit halves of one hash)."""
    b = bits(stream, counter)
    u1 = ((b >> _S32).astype(np.float64) + 0.5) * (1.0 / 4294967296.0)
    u2 = ((b & _LOW32).astype(np.float64) + 0.5) * (1.0 / 4294967296.0)
    out: F64 = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2)
    return out


def ar1(eps: F64, phi: F64) -> F64:
    """Unit-variance AR(1) series, one per column of ``eps`` (time × streams).

    Starts from the stationary distribution (the first innovation), so a warm-up
    of a few e-folding times makes the start invisible.
    """
    out = np.empty_like(eps)
    scale = np.sqrt(1.0 - phi * phi)
    x = eps[0].copy()
    out[0] = x
    for i in range(1, eps.shape[0]):
        x = phi * x + scale * eps[i]
        out[i] = x
    return out


def phi_for(tau: npt.ArrayLike) -> F64:
    """AR(1) coefficient for an e-folding time of ``tau`` steps."""
    return np.exp(-1.0 / np.asarray(tau, dtype=np.float64))


# Φ tabulated once: the normal quantile is only needed for rain thresholds.
_Z: Final[F64] = np.linspace(-6.0, 6.0, 4801)
_CDF: Final[F64] = np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in _Z.tolist()])


def norm_ppf(p: npt.ArrayLike) -> F64:
    """Standard normal quantiles (table + interpolation; |error| < 1e-4 for p in 1e-9…1−1e-9)."""
    q = np.interp(np.asarray(p, dtype=np.float64), _CDF, _Z)
    return np.asarray(q, dtype=np.float64)


def ema(x: F64, phi: float) -> F64:
    """Exponential moving average of a 1-D series (weight ``1 − phi`` on the newest value)."""
    out = np.empty_like(x)
    acc = 0.0
    a = 1.0 - phi
    for i, v in enumerate(x.tolist()):
        acc = phi * acc + a * v
        out[i] = acc
    return out
