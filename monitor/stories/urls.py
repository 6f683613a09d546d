"""Canonical URLs: one spelling per article, so the same page seen twice is one article.

w3lib does the RFC-level work (case, percent-encoding, sorted query, no
fragment); on top we drop what only tracks the reader and fold the variants
outlets publish of one page:

=====================  =========================================  ==========================
variant                example                                    becomes
=====================  =========================================  ==========================
scheme                 ``http://x.com/a``                         ``https://x.com/a``
``www.``/``m.``        ``https://m.x.com/a``                      ``https://x.com/a``
AMP                    ``/a/amp``, ``/amp/a``, ``/a.amp``, ``?amp``  ``/a``
trailing slash         ``/a/``                                    ``/a``
tracking parameters    ``utm_*``, ``fbclid``, ``gclid``, ...       removed
=====================  =========================================  ==========================
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

_TRACKING_EXACT = frozenset({
    "fbclid", "gclid", "dclid", "gclsrc", "msclkid", "yclid", "mc_cid", "mc_eid", "igshid",
    "_ga", "_gl", "ref", "ref_src", "ref_url", "cmpid", "cmp", "ito", "ns_mchannel",
    "ns_source", "ns_campaign", "ns_linkname", "ns_fee", "at_medium", "at_campaign",
    "at_custom1", "at_custom2", "at_custom3", "at_custom4", "rss", "feed", "from", "src",
    "amp", "output", "outputtype", "s_cid", "ocid", "smid", "partner", "xtor", "wt_mc",
    "wt.mc_id", "intcmp", "icid", "share", "sr_share", "via", "taid", "spm",
})
_TRACKING_PREFIXES = ("utm_", "at_", "pk_", "mtm_", "hsa_", "oly_", "vero_", "__")
_HOST_PREFIXES = ("www.", "m.", "mobile.", "amp.")
_AMP_PATH = re.compile(r"(?:/amp/?$|/amp(?=/)|\.amp(?=$|\.html?$))", re.IGNORECASE)


def _is_tracking(name: str) -> bool:
    low = name.lower()
    return low in _TRACKING_EXACT or low.startswith(_TRACKING_PREFIXES)


def canonical_url(url: str) -> str:
    """The canonical spelling of ``url``; a value that is not an http(s) URL comes back stripped."""
    raw = url.strip()
    try:
        parts = urlsplit(raw)
    except ValueError:
        return raw
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return raw
    host = (parts.hostname or "").lower().rstrip(".")
    for prefix in _HOST_PREFIXES:
        if host.startswith(prefix) and host.count(".") >= 2:
            host = host[len(prefix):]
            break
    try:
        port = parts.port
    except ValueError:   # ":99999", ":abc": not a URL one could fetch, so no canonical form
        return raw
    netloc = f"{host}:{port}" if port and port not in (80, 443) else host
    path = _AMP_PATH.sub("", parts.path) or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if not _is_tracking(k)])
    rebuilt = urlunsplit(SplitResult("https", netloc, path, query, ""))
    try:
        return str(canonicalize_url(rebuilt))
    except (ValueError, UnicodeError):
        return rebuilt
