"""Near-duplicate fingerprints: MinHash signatures and a banded LSH index over them.

Wire copy republished by many outlets, with an edited headline or a trimmed last
paragraph, keeps most of its word 3-grams; MinHash estimates that overlap (Jaccard)
from 64 numbers, and LSH banding finds the stored signatures that probably share it
without comparing against every article in the window.

Signatures come from ``rensa`` (Rust, ~190k signatures/s on 200 shingles) when it is
installed, else from ``datasketch`` (~4.4k/s with a CRC32 hash). The two give different
numbers, so a signature carries its scheme and only signatures of one scheme are
compared; a restored member of another scheme simply has no fingerprint.

==================  =====  ===================================================
parameter           value  why
==================  =====  ===================================================
``NUM_PERM``        64     ±0.06 standard error on Jaccard, 256 bytes a member
``BANDS × ROWS``    16×4   candidate probability 0.5 at Jaccard 0.5, 0.98 at 0.75
``MIN_SHINGLES``    8      fewer 3-grams say nothing reliable (bare headlines)
==================  =====  ===================================================

The banding index is one dict per band, from the band's bytes to member keys: it must delete a
member when it leaves the window and rebuild from persisted signatures, which a
dict does trivially and deterministically.
"""

from __future__ import annotations

import importlib
import zlib
from array import array
from collections.abc import Sequence
from typing import Any

NUM_PERM = 64
BANDS = 16
ROWS = NUM_PERM // BANDS
MIN_SHINGLES = 8
SEED = 7

RMinHash: Any
try:  # pragma: no cover - which branch runs depends on the installation
    RMinHash = importlib.import_module("rensa").RMinHash  # untyped: loaded by name
    SCHEME = "rensa"
except ImportError:  # pragma: no cover
    RMinHash = None
    SCHEME = "datasketch"


def signature(shingles: Sequence[str], scheme: str = SCHEME) -> bytes | None:
    """The MinHash signature of ``shingles`` as NUM_PERM little-endian uint32, or None."""
    if len(shingles) < MIN_SHINGLES:
        return None
    values: Sequence[int]
    if scheme == "rensa" and RMinHash is not None:
        m = RMinHash(num_perm=NUM_PERM, seed=SEED)
        m.update(list(shingles))
        values = m.digest()
    elif scheme == "datasketch":
        from datasketch import MinHash

        d = MinHash(num_perm=NUM_PERM, seed=SEED, hashfunc=zlib.crc32)
        d.update_batch([s.encode("utf-8") for s in shingles])
        values = [int(v) for v in d.hashvalues]
    else:
        raise ValueError(f"unknown or unavailable MinHash scheme {scheme!r}")
    return array("I", values).tobytes()


def jaccard(a: bytes, b: bytes) -> float:
    """Estimated Jaccard similarity of the shingle sets behind two signatures."""
    va, vb = array("I", a), array("I", b)
    return sum(1 for x, y in zip(va, vb, strict=True) if x == y) / len(va)


_BAND_BYTES = ROWS * 4
_BAND_STARTS = range(0, NUM_PERM * 4, _BAND_BYTES)


def _bands(sig: bytes) -> list[bytes]:
    """The signature's bands as raw byte slices; band ``i`` is looked up in table ``i``."""
    return [sig[i:i + _BAND_BYTES] for i in _BAND_STARTS]


class LSHIndex:
    """Member key -> signature, findable by any identical band.

    A bucket holds a bare key until a second member lands in it: most buckets hold
    one member, and a set per bucket would cost more memory than the signatures.
    """

    def __init__(self) -> None:
        self._sigs: dict[str, bytes] = {}
        self._tables: list[dict[bytes, str | set[str]]] = [{} for _ in range(BANDS)]

    def __len__(self) -> int:
        return len(self._sigs)

    def add(self, key: str, sig: bytes) -> None:
        self._sigs[key] = sig
        for buckets, band in zip(self._tables, _bands(sig), strict=True):
            held = buckets.get(band)
            if held is None:
                buckets[band] = key
            elif isinstance(held, str):
                if held != key:
                    buckets[band] = {held, key}
            else:
                held.add(key)

    def remove(self, key: str) -> None:
        sig = self._sigs.pop(key, None)
        if sig is None:
            return
        for buckets, band in zip(self._tables, _bands(sig), strict=True):
            held = buckets.get(band)
            if held is None:
                continue
            if isinstance(held, str):
                if held == key:
                    del buckets[band]
            else:
                held.discard(key)
                if len(held) == 1:
                    buckets[band] = next(iter(held))

    def best(self, sig: bytes) -> tuple[str, float] | None:
        """The stored member most similar to ``sig`` among LSH candidates (ties: smallest key)."""
        candidates: set[str] = set()
        for buckets, band in zip(self._tables, _bands(sig), strict=True):
            held = buckets.get(band)
            if held is None:
                continue
            if isinstance(held, str):
                candidates.add(held)
            else:
                candidates |= held
        best: tuple[str, float] | None = None
        for key in sorted(candidates):
            sim = jaccard(sig, self._sigs[key])
            if best is None or sim > best[1]:
                best = (key, sim)
        return best
