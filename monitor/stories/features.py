"""One article's clustering features, frozen when it is placed, and their JSON text.

The index is rebuilt after a restart from these alone (``StoryIndex.restore``), so
everything a placement depended on is here, already weighted: rebuilding gives the
same document frequencies, story profiles and fingerprints, hence the same
placements. Weights are integers (unit vector × 10,000) so that story sums are
exact and do not depend on the order members were added or removed in.

JSON keys are short because there is one such text per article in the window::

    {"v": 1, "k": article key, "s": story id, "t": seen at (ISO 8601),
     "l": language, "p": [[term, weight], ...] strongest first,
     "d": base64 uint32 CRC32 of the distinct terms (document frequency),
     "m": base64 MinHash signature or null, "ms": MinHash scheme,
     "e": event particulars, e.g. ["n23", "w5", "y2008"] (absent in older texts)}
"""

from __future__ import annotations

import base64
import binascii
import json
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.stories import fingerprint

VERSION = 1
SCALE = 10_000

# One encoder for every text: the same output as ``json.dumps(..., ensure_ascii=False,
# separators=(",", ":"))``. Without the circular-reference check (a plain tree of lists
# and strings cannot have one) encoding the 40 term pairs costs about half as much.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
# The encoder's own function for one string (quoted, escaped as ``_encode`` does it), and
# the %-templates for the profile's pairs, one per length (at most ``profile_terms``).
_string: Callable[[str], str] = json.encoder.encode_basestring
_PAIRS: dict[int, str] = {}


@dataclass(frozen=True, slots=True)
class Features:
    key: str
    story_id: str
    seen_at: datetime
    language: str
    terms: tuple[str, ...]          # profile terms, strongest first
    weights: array[int]             # same order; unit L2 vector × SCALE, uint16
    df_hashes: bytes                # uint32 array: CRC32 of each distinct term
    signature: bytes | None         # MinHash, NUM_PERM uint32
    scheme: str
    marks: tuple[str, ...] = ()     # event particulars (particulars.py), sorted

    def profile(self) -> dict[str, int]:
        return dict(zip(self.terms, self.weights, strict=True))

    def df_terms(self) -> array[int]:
        return array("I", self.df_hashes)

    def with_story(self, story_id: str) -> Features:
        return Features(self.key, story_id, self.seen_at, self.language, self.terms,
                        self.weights, self.df_hashes, self.signature, self.scheme, self.marks)

    def to_json(self) -> str:
        """The features text; the same text as ``_encode`` of the dict (tested).

        Assembled from pieces: strings go through the encoder's own string function,
        the profile's pairs through one %-template per length, and the base64 fields
        (nothing to escape) as they are. Encoding the dict cost ~14 us an article,
        most of it the encoder's per-item calls over the 40 pairs; this is ~6 us.
        """
        k = len(self.terms)
        template = _PAIRS.get(k)
        if template is None:
            template = _PAIRS.setdefault(k, "[" + ",".join(["[%s,%d]"] * k) + "]")
        flat: list[str | int] = [""] * (2 * k)
        flat[::2] = map(_string, self.terms)
        flat[1::2] = self.weights
        sig = self.signature
        m = "null" if not sig else '"' + base64.b64encode(sig).decode("ascii") + '"'
        return (f'{{"v":{VERSION},"k":{_string(self.key)},"s":{_string(self.story_id)},'
                f'"t":{_string(self.seen_at.isoformat())},"l":{_string(self.language)},'
                f'"p":{template % tuple(flat)},'
                f'"d":"{base64.b64encode(self.df_hashes).decode("ascii")}",'
                f'"m":{m},'
                f'"ms":{_string(self.scheme)},"e":[{",".join(map(_string, self.marks))}]}}')

    def to_json_plain(self) -> str:
        """The features text through the general encoder (the reference for ``to_json``)."""
        return _encode({
            "v": VERSION,
            "k": self.key,
            "s": self.story_id,
            "t": self.seen_at.isoformat(),
            "l": self.language,
            "p": list(zip(self.terms, self.weights, strict=True)),   # pairs: JSON arrays
            "d": base64.b64encode(self.df_hashes).decode("ascii"),
            "m": base64.b64encode(self.signature).decode("ascii") if self.signature else None,
            "ms": self.scheme,
            "e": self.marks,
        })

    @classmethod
    def from_json(cls, text: str) -> Features:
        """Parse a features text; raises ValueError when it is not one we wrote."""
        try:
            obj: dict[str, Any] = json.loads(text)
            if obj.get("v") != VERSION:
                raise ValueError(f"unsupported features version {obj.get('v')!r}")
            pairs = obj["p"]
            sig = obj.get("m")
            seen = datetime.fromisoformat(obj["t"])
            if seen.tzinfo is None:
                raise ValueError("features seen-at time has no timezone")
            df_hashes = base64.b64decode(obj["d"])
            signature = base64.b64decode(sig) if sig else None
            # Checked here, not met later half-way through an index insert: a restart
            # skips the one member (``restore_skipped``) instead of refusing to start.
            if len(df_hashes) % 4:
                raise ValueError("document-frequency hashes are not whole uint32 values")
            if signature is not None and len(signature) != fingerprint.NUM_PERM * 4:
                raise ValueError(f"MinHash signature of {len(signature)} bytes, "
                                 f"expected {fingerprint.NUM_PERM * 4}")
            return cls(
                key=str(obj["k"]),
                story_id=str(obj["s"]),
                seen_at=seen,
                language=str(obj.get("l", "")),
                terms=tuple(str(t) for t, _ in pairs),
                weights=array("H", (int(w) for _, w in pairs)),
                df_hashes=df_hashes,
                signature=signature,
                scheme=str(obj.get("ms", "")),
                marks=tuple(str(e) for e in obj.get("e", ())),
            )
        except (KeyError, TypeError, OverflowError, json.JSONDecodeError, binascii.Error) as e:
            raise ValueError(f"malformed story features: {e}") from e
