"""Counter-based random numbers for the fleet twin.

Why not ``numpy.random.Generator``: a generator's output depends on the order
in which draws are made, so the load of site X on day D would change when the
fleet gains a site, when the twin is stepped interval by interval instead of a
day at a time, or when a local-day window is used instead of a UTC-day one. Here
every random number is a pure hash of ``(seed, site key, stream, counter)``, so a
value depends only on *what* it is for, never on *when* or *alongside what* it
was computed. Everything is vectorized over numpy ``uint64`` arrays.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtri

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _u64(x) -> np.ndarray:
    """View ints (possibly negative, e.g. ordinals) as uint64 with wraparound."""
    return np.asarray(x).astype(np.int64, copy=False).astype(np.uint64)


def splitmix64(x) -> np.ndarray:
    """SplitMix64 finalizer: a bijective, well-mixing uint64 -> uint64 hash."""
    with np.errstate(over="ignore"):  # wraparound mod 2**64 is the point
        z = np.asarray(x, dtype=np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def site_keys(site_ids, seed: int) -> np.ndarray:
    """Stable uint64 key per site from its id string and the run seed.

    Uses pandas' fixed-key SipHash of the string, so the key (and therefore
    every trait drawn from it) survives process restarts and fleet changes.
    """
    raw = pd.util.hash_array(np.asarray([str(s) for s in site_ids], dtype=object))
    return splitmix64(raw ^ splitmix64(_u64(np.array([seed]))))


def hash_key(site_key, stream: int, counter=0) -> np.ndarray:
    """Combine site key (broadcastable), stream id and counter into one hash."""
    h = splitmix64(np.asarray(site_key, dtype=np.uint64) ^ splitmix64(_u64(np.array([stream]))))
    with np.errstate(over="ignore"):
        return splitmix64(h ^ splitmix64(_u64(counter) * _GOLDEN))


def uniform(site_key, stream: int, counter=0) -> np.ndarray:
    """Uniform [0, 1) floats, one per broadcast element of key x counter."""
    return (hash_key(site_key, stream, counter) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def normal(site_key, stream: int, counter=0) -> np.ndarray:
    """Standard normal floats by inverse CDF of :func:`uniform` (no rejection loop)."""
    u = uniform(site_key, stream, counter)
    return ndtri(np.clip(u, 1e-12, 1.0 - 1e-12))
