"""Content-Encoding decoders that never produce more than they are allowed to.

httpx decodes a whole network chunk at once, so a 1 MB gzip bomb becomes one
64 MiB ``bytes`` before anyone can look at its size. We ask httpx for the raw
bytes instead and decompress them here in steps of at most ``step`` output bytes,
so the fetcher can stop the moment the decoded body passes its cap.

Supported: ``identity``, ``gzip``/``x-gzip`` (several members too), ``deflate``
(zlib-wrapped, or raw as some servers send it), and ``br`` when the ``brotli``
package (>= 1.2, which has an output limit) is installed. A chain such as
``Content-Encoding: deflate, gzip`` is undone right to left.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Iterator
from typing import Any, Protocol


def _load_brotli() -> Any:
    """The brotli module when it can decode with an output limit (>= 1.2), else None."""
    try:
        mod = importlib.import_module("brotli")
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return mod if hasattr(mod.Decompressor(), "can_accept_more_data") else None


_BROTLI: Any = _load_brotli()  # optional: only advertised in Accept-Encoding when present

DEFAULT_STEP = 64 * 1024


class DecodeError(Exception):
    """The bytes do not decode with the announced Content-Encoding."""


class _Step(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def flush(self) -> Iterator[bytes]: ...


def accept_encoding() -> str:
    """The Accept-Encoding header value for what this module can decode."""
    return "gzip, deflate, br" if _BROTLI is not None else "gzip, deflate"


class _Identity:
    def feed(self, data: bytes) -> Iterator[bytes]:
        if data:
            yield data

    def flush(self) -> Iterator[bytes]:
        return iter(())


class _Zlib:
    """gzip or deflate, bounded by ``max_length`` on every call."""

    def __init__(self, wbits: int, step: int, *, fallback_raw: bool = False) -> None:
        self._wbits = wbits
        self._step = step
        self._fallback_raw = fallback_raw
        self._started = False
        self._d = zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            try:
                out = self._d.decompress(data, self._step)
            except zlib.error as e:
                if self._fallback_raw and not self._started:
                    # "deflate" is zlib-wrapped by the RFC but raw in many servers.
                    self._fallback_raw = False
                    self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise DecodeError(str(e)) from e
            self._started = True
            if out:
                yield out
            if self._d.eof:
                rest = self._d.unused_data
                if self._wbits & 16 and rest.strip(b"\x00"):
                    # concatenated gzip members are one valid stream
                    self._d = zlib.decompressobj(self._wbits)
                    data = rest
                    continue
                return
            data = self._d.unconsumed_tail
        # input consumed; output may still be pending inside the object
        while True:
            out = self._d.decompress(b"", self._step)
            if not out:
                break
            yield out

    def flush(self) -> Iterator[bytes]:
        if self._started and not self._d.eof:
            raise DecodeError("compressed stream ended early")
        return iter(())


class _Brotli:
    def __init__(self, step: int) -> None:
        self._step = step
        self._d = _BROTLI.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            out = self._d.process(data, output_buffer_limit=self._step)
            # drain what the limit held back before more input may go in
            while out:
                yield out
                if self._d.is_finished():
                    return
                out = self._d.process(b"", output_buffer_limit=self._step)
            for _ in range(1024):
                if self._d.can_accept_more_data():
                    break
                out = self._d.process(b"", output_buffer_limit=self._step)
                if out:
                    yield out
        except _BROTLI.error as e:
            raise DecodeError(str(e)) from e

    def flush(self) -> Iterator[bytes]:
        if not self._d.is_finished():
            raise DecodeError("brotli stream ended early")
        return iter(())


# Misconfigured servers label plain bodies with these; treating them as identity
# is what browsers do, and a body that really was encoded fails to parse anyway.
_NOT_ENCODINGS = frozenset({"", "identity", "none", "utf-8", "utf8", "binary", "text", "plain",
                            "7bit", "8bit"})


def _make(coding: str, step: int) -> _Step:
    if coding in _NOT_ENCODINGS:
        return _Identity()
    if coding in ("gzip", "x-gzip"):
        return _Zlib(16 + zlib.MAX_WBITS, step)
    if coding == "deflate":
        return _Zlib(zlib.MAX_WBITS, step, fallback_raw=True)
    if coding == "br" and _BROTLI is not None:
        return _Brotli(step)
    raise DecodeError(f"unsupported Content-Encoding {coding!r}")


class BoundedDecoder:
    """Undo a Content-Encoding chain chunk by chunk, yielding at most ``step`` bytes at a time.

    The caller counts what comes out and stops iterating when it has enough; since
    every step is bounded, memory stays near ``cap + step`` whatever the ratio.
    """

    def __init__(self, content_encoding: str | None, step: int = DEFAULT_STEP) -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        # applied in order listed, so undone in reverse
        self._steps = [_make(c, step) for c in reversed(codings) if c not in _NOT_ENCODINGS]

    def feed(self, data: bytes) -> Iterator[bytes]:
        yield from self._run(0, data)

    def flush(self) -> Iterator[bytes]:
        yield from self._flush(0)

    def _run(self, i: int, data: bytes) -> Iterator[bytes]:
        if i == len(self._steps):
            if data:
                yield data
            return
        for out in self._steps[i].feed(data):
            yield from self._run(i + 1, out)

    def _flush(self, i: int) -> Iterator[bytes]:
        if i == len(self._steps):
            return
        for out in self._steps[i].flush():
            yield from self._run(i + 1, out)
        yield from self._flush(i + 1)
