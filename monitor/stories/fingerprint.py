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

The banding index is one dict per band, from the band's key to member keys: it must delete a
member when it leaves the window and rebuild from persisted signatures, which a
dict does trivially and deterministically.
"""

from __future__ import annotations

import importlib
import zlib
from array import array
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

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


_KEY_MASK = np.uint64((1 << 60) - 1)
_MIX = np.uint64(0x9E3779B97F4A7C15)   # odd: multiplying by it is a bijection mod 2**64


def _bands(sig: bytes) -> list[int]:
    """The signature's bands as 60-bit keys; band ``i`` is looked up in table ``i``.

    A band is 4 uint32 (128 bits); its key folds them into 60 bits, deterministically.
    Two different bands get one key with probability ~2**-60: nothing in practice, and
    even then only one more candidate, checked by its Jaccard estimate. A 60-bit int
    takes 32 bytes against 49 for the 16-byte slice, 16 times per member.
    """
    halves = np.frombuffer(sig, dtype=np.uint64)
    keys: list[int] = ((halves[0::2] ^ (halves[1::2] * _MIX)) & _KEY_MASK).tolist()
    return keys


B = TypeVar("B", bound=Hashable)


def hold(buckets: dict[B, str | set[str]], bucket: B, key: str) -> None:
    """Put ``key`` in a bucket that holds a bare key until a second one lands in it.

    Most buckets hold one key, and a set per bucket costs ~200 bytes.
    """
    held = buckets.get(bucket)
    if held is None:
        buckets[bucket] = key
    elif isinstance(held, str):
        if held != key:
            buckets[bucket] = {held, key}
    else:
        held.add(key)


def release(buckets: dict[B, str | set[str]], bucket: B, key: str) -> None:
    """Take ``key`` out of a bucket filled by ``hold``; an empty bucket is deleted."""
    held = buckets.get(bucket)
    if held is None:
        return
    if isinstance(held, str):
        if held == key:
            del buckets[bucket]
    else:
        held.discard(key)
        if len(held) == 1:
            buckets[bucket] = next(iter(held))


class LSHIndex:
    """Member key -> signature, findable by any identical band.

    A bucket holds a bare key until a second member lands in it: most buckets hold
    one member, and a set per bucket would cost more memory than the signatures.
    """

    def __init__(self) -> None:
        self._sigs: dict[str, bytes] = {}
        self._tables: list[dict[int, str | set[str]]] = [{} for _ in range(BANDS)]
        # the bands of the last signature looked up: a placed article is looked up
        # (``best``), then added with the same signature object
        self._last: tuple[bytes, list[int]] = (b"", [])

    def _bands_of(self, sig: bytes) -> list[int]:
        last_sig, bands = self._last
        if sig is not last_sig:
            bands = _bands(sig)
            self._last = (sig, bands)
        return bands

    def __len__(self) -> int:
        return len(self._sigs)

    def add(self, key: str, sig: bytes) -> None:
        self._sigs[key] = sig
        for buckets, band in zip(self._tables, self._bands_of(sig), strict=True):
            hold(buckets, band, key)

    def remove(self, key: str) -> None:
        sig = self._sigs.pop(key, None)
        if sig is None:
            return
        for buckets, band in zip(self._tables, _bands(sig), strict=True):
            release(buckets, band, key)

    def remove_many(self, keys: Iterable[str]) -> None:
        """``remove`` for many keys: all their bands in one numpy call, then table by table."""
        sigs = self._sigs
        gone = [(key, sig) for key in keys if (sig := sigs.pop(key, None)) is not None]
        if not gone:
            return
        halves = np.frombuffer(b"".join([sig for _, sig in gone]),
                               dtype=np.uint64).reshape(len(gone), -1)
        bands = (halves[:, 0::2] ^ (halves[:, 1::2] * _MIX)) & _KEY_MASK
        names = [key for key, _ in gone]
        for buckets, column in zip(self._tables, bands.T.tolist(), strict=True):
            for band, key in zip(column, names, strict=True):
                held = buckets.get(band)
                if held == key:   # most buckets hold one key
                    del buckets[band]
                elif held is not None and not isinstance(held, str):
                    held.discard(key)
                    if len(held) == 1:
                        buckets[band] = next(iter(held))

    def best(self, sig: bytes) -> tuple[str, float] | None:
        """The stored member most similar to ``sig`` among LSH candidates (ties: smallest key)."""
        candidates: set[str] = set()
        for buckets, band in zip(self._tables, self._bands_of(sig), strict=True):
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
