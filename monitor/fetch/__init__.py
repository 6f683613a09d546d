"""The fetch stage: from a feed URL to ``Article`` values, and when to ask again.

==================  ===============================================================
module              what it does
==================  ===============================================================
``http``            ``Fetcher``: one shared httpx client, conditional GET, deadline,
                    size cap, hand-followed redirects, errors as ``FetchError``
``guard``           SSRF guard: only public addresses (plus ``poll.allow_networks``),
                    checked after DNS on the address connected to
``transport``       the network layer by ``poll.transport``: httpx's own, or
                    ``aiohttp_transport`` (httpx-aiohttp), both guarded
``decode``          Content-Encoding decoders bounded per step (gzip bombs stop at the cap)
``politeness``      per-host concurrency cap and spacing between request starts
``headers``         pure HTTP semantics: Retry-After, Cache-Control/Expires, HTTP dates
``parse``           ``parse_feed``: defused bytes -> feedparser -> ``Article`` (picklable)
``text``            HTML to plain text (selectolax/lexbor), whitespace, caps
``schedule``        pure scheduling maths: adaptive interval, clamps, back-off, jitter
``feedstate``       pure ``FeedState`` transitions after a poll (failing, gone, moved)
``feedlist``        YAML/OPML feed lists in, OPML out
``discover``        the feed behind a web page (link rel=alternate, common paths)
``websub``          pure WebSub subscriber logic: intent checks, signatures, renewals
``push``            WebSub I/O: callback server, subscription requests, subscription book
==================  ===============================================================

Only ``http``, ``politeness``, ``guard``/``transport`` (connecting) and ``push`` do I/O;
everything else is pure and takes ``now``.
"""
